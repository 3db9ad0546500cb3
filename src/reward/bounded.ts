// The hard time limit of the synchronous entry points (`verify`, `mathRewardSync`, `mathReward` without a pool):
// the same worker file as VerifierPool (worker.ts), driven synchronously. The caller posts the case, blocks in
// `Atomics.wait` on a shared counter until the worker bumps it or the limit passes, and reads the reply with
// `receiveMessageOnPort` (no event-loop turn needed). On expiry the worker is terminated (V8 TerminateExecution
// stops it even inside a BigInt loop) and a fresh one starts warming at once, so the next call waits at most for
// that warm-up. The budget starts when a warm worker receives the case, exactly as in the pool.
// Same technique as synckit (un-ts/synckit), written for this one request type.

import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { Verdict, VerifyOptions, WorkerReply, WorkerRequest } from './options.js';
import { workerSource } from './worker_source.js';

/** Default per-case time limit (ms) of every entry point: `verify`, the rewards, the pool, `ovr-train grade`. */
/** How long a fresh worker may take to load the CAS before the synchronous runner gives up (loaded machine, tsx). */
export const START_TIMEOUT_MS = 60_000;
/** Slots of the shared Int32Array: id of the last finished request, and the ready flag. */
const DONE = 0;
const READY = 1;

interface SyncWorker {
  worker: Worker;
  port: MessagePort;
  state: Int32Array;
}

let current: SyncWorker | null = null;
let nextId = 1;
let broken: string | null = null;

function spawn(): SyncWorker {
  const { src, eval: isEval } = workerSource();
  const state = new Int32Array(new SharedArrayBuffer(8));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(src, {
    eval: isEval,
    execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
    resourceLimits: { maxOldGenerationSizeMb: 512, stackSizeMb: 8 },
    workerData: { sync: { state: state.buffer, port: port2 } },
    transferList: [port2],
  });
  // An idle runner never keeps the process alive; errors surface as a start timeout or a crash verdict.
  worker.unref();
  port1.unref();
  worker.on('error', () => {});
  return { worker, port: port1, state };
}

/** Blocks until `cond()` or the deadline; returns whether `cond()` became true. */
function waitFor(state: Int32Array, index: number, cond: () => boolean, ms: number): boolean {
  const deadline = performance.now() + ms;
  while (!cond()) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(state, index, Atomics.load(state, index), Math.min(left, 50));
  }
  return true;
}

function replace(w: SyncWorker): void {
  w.port.close();
  void w.worker.terminate();
  current = spawn(); // starts warming now, while the caller goes on
}

function timeoutVerdict(reason: string, ms: number, timedOut: boolean): Verdict {
  return { equal: false, reason, gold: null, extracted: null, timedOut, ms };
}

/**
 * Runs one verification in the shared synchronous worker with a hard limit of `limitMs` (after warm-up).
 * Throws only when no worker can start at all (a broken install).
 */
export function verifyBounded(
  gold: string,
  prediction: string,
  opts: VerifyOptions,
  limitMs: number,
): Verdict {
  if (broken) throw new Error(broken);
  if (current === null) current = spawn();
  const w = current;
  if (!waitFor(w.state, READY, () => Atomics.load(w.state, READY) === 1, START_TIMEOUT_MS)) {
    broken = `verify: the verification worker did not start within ${START_TIMEOUT_MS / 1000} s; check the install or run \`npm run build\``;
    replace(w);
    throw new Error(broken);
  }
  const id = nextId++;
  const t0 = performance.now();
  w.port.postMessage({ id, gold, prediction, opts } satisfies WorkerRequest);
  const done = waitFor(w.state, DONE, () => Atomics.load(w.state, DONE) >= id, limitMs);
  const ms = performance.now() - t0;
  const msg = done ? receiveMessageOnPort(w.port) : undefined;
  if (!done || msg === undefined) {
    replace(w);
    return done
      ? timeoutVerdict('worker crashed', ms, false)
      : timeoutVerdict(`timeout after ${limitMs} ms`, ms, true);
  }
  const reply = msg.message as WorkerReply;
  if (!('id' in reply) || reply.id !== id) {
    replace(w);
    return timeoutVerdict('worker out of step', ms, false);
  }
  return { ...reply.result, ms };
}

/** Terminates the shared synchronous worker (it is unref'd, so this is only needed to free it early). */
export async function closeBounded(): Promise<void> {
  const w = current;
  current = null;
  if (w) {
    w.port.close();
    await w.worker.terminate();
  }
}

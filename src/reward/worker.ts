// Worker-thread entry of the reward's time limit, shared by VerifierPool (pool.ts, asynchronous: messages on
// parentPort) and the synchronous runner (bounded.ts: messages on a MessagePort in workerData, completion signalled
// through a shared Int32Array so the caller can block in Atomics.wait). Loads the CAS once, then answers
// `{ id, gold, prediction, opts }` with `{ id, result }`. A case that runs past its limit is not awaited here —
// the caller terminates this thread and starts a fresh one.

import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { Verdict, WorkerReply, WorkerRequest } from './options.js';
import { verifyInProcess, warmUp } from './verify.js';

function answer(m: WorkerRequest): Verdict {
  try {
    return verifyInProcess(m.gold, m.prediction, m.opts);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { equal: false, reason: `error: ${msg.slice(0, 200)}`, gold: null, extracted: null };
  }
}

const sync = (workerData as { sync?: { state: SharedArrayBuffer; port: MessagePort } } | null)?.sync;
if (sync) {
  const state = new Int32Array(sync.state);
  warmUp();
  sync.port.on('message', (m: WorkerRequest) => {
    sync.port.postMessage({ id: m.id, result: answer(m) } satisfies WorkerReply);
    Atomics.store(state, 0, m.id); // after the post: the reply is in the port's queue before the caller wakes
    Atomics.notify(state, 0);
  });
  Atomics.store(state, 1, 1);
  Atomics.notify(state, 1);
} else if (parentPort) {
  const port = parentPort;
  warmUp();
  port.on('message', (m: WorkerRequest) => {
    port.postMessage({ id: m.id, result: answer(m) } satisfies WorkerReply);
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}

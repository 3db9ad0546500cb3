// Worker-thread entry of VerifierPool (pool.ts): loads the CAS once, then answers
// `{ id, gold, prediction, opts }` with `{ id, result }`. A case that runs past its budget is not awaited here —
// the pool terminates this thread and starts a fresh one.

import { parentPort } from 'node:worker_threads';
import { type Verdict, type VerifyOptions, verify, warmUp } from './verify.js';

/** A request from the pool. */
export interface WorkerRequest {
  id: number;
  gold: string;
  prediction: string;
  opts: VerifyOptions;
}

/** A reply to the pool (`ready` once, after warm-up). */
export type WorkerReply = { ready: true } | { id: number; result: Verdict };

function answer(m: WorkerRequest): Verdict {
  try {
    return verify(m.gold, m.prediction, m.opts);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { equal: false, reason: `error: ${msg.slice(0, 200)}`, gold: null, extracted: null };
  }
}

if (parentPort) {
  const port = parentPort;
  warmUp();
  port.on('message', (m: WorkerRequest) => {
    port.postMessage({ id: m.id, result: answer(m) } satisfies WorkerReply);
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}

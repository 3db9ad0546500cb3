// A pool of warm worker threads that run verify() with a hard per-case time limit. A case that exceeds its budget
// (a pathological expression inside the CAS, e.g. `9^{9^9}` or 1 MB of digits — see
// ../shared/research/reward_libraries.md) gets a timeout verdict (equal: false, timedOut: true); its worker is
// terminated and a fresh one is started. The budget starts when a warm worker receives the case, so queueing
// and respawns never eat into it.
// We use node:worker_threads directly rather than piscina: we need "budget starts at dispatch to a warm worker"
// and "terminate exactly this worker", which is ~100 lines here and hard to express through a generic pool.
//
// Worker file: `worker.js` beside this file after `tsc` (dist/); from sources (vitest, tsx) there is only
// `worker.ts`, so the thread boots tsx's ESM loader first and then imports it.

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  DEFAULT_TIME_LIMIT_MS,
  timeLimitOf,
  type Verdict,
  type VerifyOptions,
  type WorkerReply,
  type WorkerRequest,
} from './options.js';
import { workerSource } from './worker_source.js';

export interface PoolOptions {
  /** Worker threads (default: min(2, cores)). */
  threads?: number;
  /** Per-case budget in ms (default 2000, `DEFAULT_TIME_LIMIT_MS`); a case's own `timeLimitMs` overrides it. */
  budgetMs?: number;
  /** Heap limit per worker in MB (default 512): a memory bomb kills only its worker. */
  maxMemoryMb?: number;
}

/** Counters since the pool was created. */
export interface PoolStats {
  done: number;
  timeouts: number;
  crashes: number;
  respawns: number;
}

const MAX_START_FAILURES = 3;

interface Task {
  id: number;
  req: WorkerRequest;
  resolve: (v: Verdict) => void;
  started: number;
  limitMs: number;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  task: Task | null;
  timer: NodeJS.Timeout | null;
}

/** Smallest accepted worker heap (old generation), in MB. */
export const MIN_WORKER_MEMORY_MB = 16;

/**
 * Warm worker threads running verify() with a hard time limit per case.
 * @example
 * const pool = new VerifierPool({ threads: 2, budgetMs: 2000 });
 * const v = await pool.verify('\\frac12', 'The answer is $\\boxed{0.5}$'); // v.equal === true
 * await pool.close();
 */
export class VerifierPool {
  readonly threads: number;
  readonly budgetMs: number;
  readonly stats: PoolStats = { done: 0, timeouts: 0, crashes: 0, respawns: 0 };
  private readonly maxMemoryMb: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 0;
  private closed = false;
  /** Consecutive workers that died before becoming ready; at MAX_START_FAILURES the pool is broken. */
  private startFailures = 0;
  private broken: string | null = null;
  /** Workers are unref'd so an idle pool never keeps the process alive; this handle does while cases are pending. */
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(opts: PoolOptions = {}) {
    this.threads = opts.threads ?? Math.max(1, Math.min(2, os.availableParallelism?.() ?? 2));
    this.budgetMs = opts.budgetMs ?? DEFAULT_TIME_LIMIT_MS;
    this.maxMemoryMb = opts.maxMemoryMb ?? 512;
    if (!Number.isInteger(this.threads) || this.threads < 1) {
      throw new Error(`VerifierPool: threads must be a positive integer, got ${opts.threads}`);
    }
    if (!(this.budgetMs > 0)) throw new Error(`VerifierPool: budgetMs must be > 0, got ${opts.budgetMs}`);
    // Below a few MB, Node 24 aborts the WHOLE process (fatal OOM while deserialising the worker's snapshot)
    // instead of failing the worker with ERR_WORKER_OUT_OF_MEMORY, so small limits are refused up front.
    if (!(this.maxMemoryMb >= MIN_WORKER_MEMORY_MB)) {
      throw new Error(
        `VerifierPool: maxMemoryMb must be >= ${MIN_WORKER_MEMORY_MB} (a smaller worker heap can crash the whole process on Node 24), got ${opts.maxMemoryMb}`,
      );
    }
    for (let i = 0; i < this.threads; i++) this.slots.push(this.spawn());
  }

  /** Resolves once every worker has loaded the CAS (optional: verify() waits for a warm worker anyway). */
  async ready(): Promise<void> {
    while (!this.closed && this.slots.some((s) => !s.ready)) await new Promise((r) => setTimeout(r, 20));
  }

  /** Verifies one pair within the budget; never rejects (a timeout or crash is a verdict with equal: false). */
  verify(gold: string, prediction: string, opts: VerifyOptions = {}): Promise<Verdict> {
    if (this.broken) return Promise.reject(new Error(this.broken));
    if (this.closed) return Promise.reject(new Error('VerifierPool: verify() after close()'));
    if (typeof gold !== 'string' || typeof prediction !== 'string') {
      return Promise.reject(new Error('VerifierPool.verify: gold and prediction must be strings'));
    }
    let limitMs: number;
    try {
      limitMs = timeLimitOf(opts, this.budgetMs);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.queue.push({ id, req: { id, gold, prediction, opts }, resolve, started: 0, limitMs });
      this.dispatch();
    });
  }

  /** Verifies many pairs, in order. */
  verifyMany(pairs: { gold: string; prediction: string; opts?: VerifyOptions }[]): Promise<Verdict[]> {
    return Promise.all(pairs.map((p) => this.verify(p.gold, p.prediction, p.opts)));
  }

  /** Terminates all workers; pending cases resolve as not equal. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.keepAlive !== null) clearInterval(this.keepAlive);
    this.keepAlive = null;
    for (const t of this.queue.splice(0)) t.resolve(verdictFor(t, 'pool closed', false));
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.timer) clearTimeout(s.timer);
        if (s.task) s.task.resolve(verdictFor(s.task, 'pool closed', false));
        s.task = null;
        await s.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    const { src, eval: isEval } = workerSource();
    const worker = new Worker(src, {
      eval: isEval,
      // Not inherited: flags such as --input-type (from `node -e`) make a file worker fail at start.
      execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      resourceLimits: { maxOldGenerationSizeMb: this.maxMemoryMb, stackSizeMb: 8 },
    });
    worker.unref();
    const slot: Slot = { worker, ready: false, task: null, timer: null };
    worker.on('message', (m: WorkerReply) => this.onMessage(slot, m));
    worker.on('error', (e) => this.onFailure(slot, `worker error: ${e.message.slice(0, 200)}`));
    worker.on('exit', (code) => this.onFailure(slot, `worker exited with code ${code}`));
    return slot;
  }

  private onMessage(slot: Slot, m: WorkerReply): void {
    if ('ready' in m) {
      slot.ready = true;
      this.startFailures = 0;
    } else if (slot.task && slot.task.id === m.id) {
      if (slot.timer) clearTimeout(slot.timer);
      const t = slot.task;
      slot.task = null;
      slot.timer = null;
      this.stats.done++;
      t.resolve({ ...m.result, ms: performance.now() - t.started });
    }
    this.dispatch();
  }

  private onFailure(slot: Slot, reason: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0 || this.closed) return;
    if (slot.timer) clearTimeout(slot.timer);
    if (slot.task) {
      this.stats.crashes++;
      this.stats.done++;
      slot.task.resolve(verdictFor(slot.task, reason, false));
      slot.task = null;
    }
    if (!slot.ready && ++this.startFailures >= MAX_START_FAILURES) {
      // Workers cannot start at all (bad install, missing build): fail loudly instead of respawning forever.
      this.broken = `VerifierPool: workers fail to start (${reason}); check the install or run \`npm run build\``;
      for (const t of this.queue.splice(0)) t.resolve(verdictFor(t, this.broken, false));
      void this.close();
      return;
    }
    this.replace(i);
  }

  private onTimeout(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0 || !slot.task) return;
    const t = slot.task;
    slot.task = null;
    slot.timer = null;
    this.stats.timeouts++;
    this.stats.done++;
    t.resolve(verdictFor(t, `timeout after ${t.limitMs} ms`, true));
    this.replace(i);
  }

  private replace(i: number): void {
    const old = this.slots[i];
    old.worker.removeAllListeners('exit');
    old.worker.removeAllListeners('error');
    old.worker.on('error', () => {});
    void old.worker.terminate();
    this.stats.respawns++;
    this.slots[i] = this.spawn();
    this.dispatch();
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (!slot.ready || slot.task || this.queue.length === 0) continue;
      const t = this.queue.shift()!;
      slot.task = t;
      t.started = performance.now();
      slot.timer = setTimeout(() => this.onTimeout(slot), t.limitMs);
      slot.worker.postMessage(t.req);
    }
    const pending = this.queue.length > 0 || this.slots.some((s) => s.task !== null);
    if (pending && this.keepAlive === null) this.keepAlive = setInterval(() => {}, 60_000);
    if (!pending && this.keepAlive !== null) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }
}

function verdictFor(t: Task, reason: string, timedOut: boolean): Verdict {
  return {
    equal: false,
    reason,
    gold: null,
    extracted: null,
    timedOut,
    ms: t.started > 0 ? performance.now() - t.started : 0,
  };
}

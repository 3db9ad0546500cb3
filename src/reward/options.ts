// What verify() takes and returns, and its time limit: shared by verify.ts (in-process and bounded), the bounded
// worker runner (bounded.ts), the async pool (pool.ts) and the worker thread (worker.ts), so none of them imports
// another's internals. Option names follow Math-Verify's where they exist.
import type { Target } from './extract.js';

/** Default hard time limit of one verification, ms. */
export const DEFAULT_TIME_LIMIT_MS = 2000;

/** Knobs, named after Math-Verify's where they exist. All optional. */
export interface VerifyOptions {
  /** Extraction targets for both sides (default both): `['latex']` or `['expr']`. */
  targets?: Target[];
  /** Compare closed numbers after rounding to this many decimals (Math-Verify `float_rounding`). */
  floatRounding?: number;
  /** Relative tolerance for closed numbers when `floatRounding` is not set (default 1e-9). */
  rtol?: number;
  /** false: variable names do not matter, `f(x)` = `f(y)` (default true). */
  strict?: boolean;
  /** A gold interval/set may match a predicted inequality chain (default false; the reverse is always on). */
  allowSetRelationComp?: boolean;
  /** Bare comma lists compare as unordered sets (default false: `4, 10, -2` ≠ `10, 4, -2`). */
  unorderedLists?: boolean;
  /** Allowed option letters for multiple choice (default A–E when the gold is a single capital letter). */
  choices?: string[];
  /**
   * Hard time limit per case in ms (default 2000), counted from when a warm worker receives the case. On expiry
   * the verdict is `{ equal: false, timedOut: true }`. In a VerifierPool it overrides the pool's `budgetMs`.
   */
  timeLimitMs?: number;
}

/** The outcome of one verification. `equal` is the reward bit; `reason` says why in a few words. */
export interface Verdict {
  equal: boolean;
  reason: string;
  /** The gold answer as extracted (null if none). */
  gold: string | null;
  /** The predicted answer as extracted (null if none). */
  extracted: string | null;
  /** Set when the case ran out of its time limit. */
  timedOut?: boolean;
  /** Wall time in ms from hand-over to a warm worker to its answer. */
  ms?: number;
}

/** The time limit an option set asks for; throws on a bad value. */
export function timeLimitOf(opts: VerifyOptions, fallback = DEFAULT_TIME_LIMIT_MS): number {
  const ms = opts.timeLimitMs ?? fallback;
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new Error(`verify: timeLimitMs must be a positive number of milliseconds, got ${opts.timeLimitMs}`);
  }
  return ms;
}

/** A request from the pool or the synchronous runner. */
export interface WorkerRequest {
  id: number;
  gold: string;
  prediction: string;
  opts: VerifyOptions;
}

/** A reply (`ready` once, after warm-up; the synchronous runner reads readiness from shared memory instead). */
export type WorkerReply = { ready: true } | { id: number; result: Verdict };

// The OVR / Open-Reasoner-Zero math reward: 1 if the completion's final answer equals the gold answer, else 0.
// Format gates come first (ORZ: the answer is the last \boxed{} inside <answer>…</answer>; a truncated generation,
// finishReason 'length', scores 0), then verify() — through a VerifierPool when one is given, else through the
// synchronous worker of bounded.ts. Both have the same hard per-case time limit (VerifyOptions.timeLimitMs).

import { answerTag, findBoxes } from './extract.js';
import type { VerifierPool } from './pool.js';
import { type Verdict, type VerifyOptions, verify } from './verify.js';

/** Where the answer must be. */
export type RewardFormat = 'orz' | 'boxed' | 'any';

export interface MathRewardInput {
  completion: string;
  gold: string;
  /** 'length' (truncated) scores 0. */
  finishReason?: string | null;
  /** Default 'orz'. */
  format?: RewardFormat;
}

export interface RewardOptions {
  /** Run verification in this pool (parallel); without one, verify() runs in the calling thread's own worker. */
  pool?: VerifierPool | null;
  verify?: VerifyOptions;
}

/** A reward with its explanation. */
export interface ScoredCompletion {
  reward: 0 | 1;
  reason: string;
  verdict: Verdict | null;
}

const FORMATS: RewardFormat[] = ['orz', 'boxed', 'any'];

/** The text handed to verify(), or a reason for 0 when the completion breaks the format. */
export function formatGate(c: MathRewardInput): { text: string } | { fail: string } {
  const format = c.format ?? 'orz';
  if (!FORMATS.includes(format))
    throw new Error(`mathReward: format must be one of ${FORMATS.join(', ')}, got '${format}'`);
  if (typeof c.completion !== 'string') throw new Error('mathReward: completion must be a string');
  if (typeof c.gold !== 'string') throw new Error('mathReward: gold must be a string');
  if (c.finishReason === 'length') return { fail: 'truncated (finishReason length)' };
  if (format === 'any') return { text: c.completion };
  const scope = format === 'orz' ? answerTag(c.completion) : c.completion;
  if (scope === null) return { fail: 'no <answer>…</answer> tag' };
  if (findBoxes(scope).length === 0)
    return { fail: format === 'orz' ? 'no \\boxed{} inside <answer>' : 'no \\boxed{}' };
  return { text: scope };
}

/**
 * Scores one completion, with the reason.
 * @example await scoreCompletion({ completion: '<answer>$\\boxed{2}$</answer>', gold: '2' }) // { reward: 1, ... }
 */
export async function scoreCompletion(
  c: MathRewardInput,
  opts: RewardOptions = {},
): Promise<ScoredCompletion> {
  const gate = formatGate(c);
  if ('fail' in gate) return { reward: 0, reason: gate.fail, verdict: null };
  const v = opts.pool
    ? await opts.pool.verify(c.gold, gate.text, opts.verify)
    : verify(c.gold, gate.text, opts.verify ?? {});
  return { reward: v.equal ? 1 : 0, reason: v.reason, verdict: v };
}

/**
 * The binary math reward: 0 | 1.
 * @example
 * const pool = new VerifierPool();
 * await mathReward({ completion: '<think>…</think><answer>\\boxed{\\frac12}</answer>', gold: '0.5' }, { pool }); // 1
 */
export async function mathReward(c: MathRewardInput, opts: RewardOptions = {}): Promise<0 | 1> {
  return (await scoreCompletion(c, opts)).reward;
}

/** Synchronous reward (blocks the caller up to the time limit, `verifyOpts.timeLimitMs`, default 2000 ms). */
export function mathRewardSync(c: MathRewardInput, verifyOpts: VerifyOptions = {}): 0 | 1 {
  const gate = formatGate(c);
  return 'fail' in gate ? 0 : verify(c.gold, gate.text, verifyOpts).equal ? 1 : 0;
}

export interface BatchRewardOptions extends RewardOptions {
  format?: RewardFormat;
  /** One per completion ('length' scores 0). */
  finishReasons?: (string | null | undefined)[];
  /** Called once per scored completion with its reason and verdict (timeouts: `verdict.timedOut`), for logging. */
  onScore?: (index: number, scored: ScoredCompletion) => void;
}

/**
 * TRL-style batch reward: `null` where there is no gold answer (the reward does not apply), else 0 or 1.
 * @example await mathRewardBatch(['\\boxed{1}', '\\boxed{2}'], ['1', null], { format: 'boxed' }) // [1, null]
 */
export async function mathRewardBatch(
  completions: string[],
  golds: (string | null | undefined)[],
  opts: BatchRewardOptions = {},
): Promise<(number | null)[]> {
  if (completions.length !== golds.length) {
    throw new Error(
      `mathRewardBatch: ${completions.length} completions but ${golds.length} golds; pass one gold per completion`,
    );
  }
  if (opts.finishReasons && opts.finishReasons.length !== completions.length) {
    throw new Error(
      `mathRewardBatch: finishReasons has ${opts.finishReasons.length} entries, expected ${completions.length}`,
    );
  }
  return Promise.all(
    completions.map(async (completion, i) => {
      const gold = golds[i];
      if (gold === null || gold === undefined || gold.trim() === '') return null;
      const input = { completion, gold, format: opts.format, finishReason: opts.finishReasons?.[i] };
      const scored = await scoreCompletion(input, opts);
      opts.onScore?.(i, scored);
      return scored.reward;
    }),
  );
}

import type { EncodedPrompt } from '../data/prompts.js';
import type { ModelInputs } from '../model/qwen2_5_vl.js';
import type { VerifierPool } from '../reward/pool.js';
import { mathRewardBatch, type RewardFormat } from '../reward/reward.js';
import { imageInputs } from '../rollout/local.js';

/** Context handed to a reward function, one entry per completion (TRL passes dataset columns as kwargs). */
export interface RewardContext {
  answers: (string | null)[];
  prompts: string[];
  promptIds: string[];
  finishReasons: ('stop' | 'length')[];
  completionIds: number[][];
}

/**
 * A TRL-like reward function: one number per completion, `null` where it does not apply (counted as 0).
 * @example const firstIsA: RewardFunction = (completions) => completions.map((c) => (c.startsWith('A') ? 1 : 0));
 */
export type RewardFunction = (
  completions: string[],
  ctx: RewardContext,
) => (number | null)[] | Promise<(number | null)[]>;

/** Padded [prompt | completion] rows for the loss; `targets`/`mask` cover the completion positions only. */
export interface TrainRows {
  inputs: ModelInputs;
  /** Padded prompt length: hidden state P - 1 + t predicts completion token t. */
  promptLen: number;
  /** [n][Tc] completion ids (0 on padding). */
  targets: number[][];
  /** [n][Tc] 1 on completion tokens (incl. a final EOS), 0 on padding. */
  mask: number[][];
}

/**
 * Builds loss rows for completions `tokens[i]` continuing `prompts[i]` (prompts left-, completions right-padded).
 * Owns a pixel tensor when prompts have images: dispose with `disposeRows`.
 * @example buildTrainRows([{ ids: [5, 6], pixels: null, gridThw: [] }], [[7]], 0).targets // [[7]]
 */
export function buildTrainRows(prompts: EncodedPrompt[], tokens: number[][], padId: number): TrainRows {
  if (prompts.length !== tokens.length)
    throw new Error(`buildTrainRows: ${prompts.length} prompts for ${tokens.length} completions`);
  const P = Math.max(...prompts.map((p) => p.ids.length));
  const Tc = Math.max(1, ...tokens.map((t) => t.length));
  const pad = (n: number, v: number) => new Array<number>(n).fill(v);
  const inputIds = prompts.map((p, i) => [
    ...pad(P - p.ids.length, padId),
    ...p.ids,
    ...tokens[i],
    ...pad(Tc - tokens[i].length, padId),
  ]);
  const attentionMask = prompts.map((p, i) => [
    ...pad(P - p.ids.length, 0),
    ...pad(p.ids.length + tokens[i].length, 1),
    ...pad(Tc - tokens[i].length, 0),
  ]);
  const targets = tokens.map((t) => [...t, ...pad(Tc - t.length, 0)]);
  const mask = tokens.map((t) => [...pad(t.length, 1), ...pad(Tc - t.length, 0)]);
  return { inputs: { inputIds, attentionMask, ...imageInputs(prompts) }, promptLen: P, targets, mask };
}

/** Frees the tensors a TrainRows owns. */
export const disposeRows = (rows: TrainRows): void => rows.inputs.pixelValues?.dispose();

/** Options of {@link scoreCompletions}. */
export interface ScoreOptions {
  /** Custom reward; default: the math reward (1 if the answer matches the gold answer). */
  rewardFn?: RewardFunction;
  format: RewardFormat;
  /** Verifier worker pool for the math reward (null: verify in this thread, no time limit). */
  pool?: VerifierPool | null;
}

/**
 * Rewards, one number per completion: `null` -> 0, and in ORZ mode a truncated completion (finishReason 'length')
 * scores 0 whatever the reward function says (ORZ). Returns the count of nulls too.
 * @example await scoreCompletions(['\\boxed{2}'], ctx, { format: 'boxed' }) // { rewards: [1], nulls: 0 }
 */
export async function scoreCompletions(
  completions: string[],
  ctx: RewardContext,
  o: ScoreOptions,
): Promise<{ rewards: number[]; nulls: number }> {
  const raw = o.rewardFn
    ? await o.rewardFn(completions, ctx)
    : await mathRewardBatch(completions, ctx.answers, {
        format: o.format,
        finishReasons: ctx.finishReasons,
        pool: o.pool,
      });
  if (!Array.isArray(raw) || raw.length !== completions.length) {
    throw new Error(
      `reward function returned ${Array.isArray(raw) ? raw.length : typeof raw} values for ${completions.length} completions; return one number (or null) per completion`,
    );
  }
  let nulls = 0;
  const rewards = raw.map((r, i) => {
    if (r === null || r === undefined) {
      nulls++;
      return 0;
    }
    if (typeof r !== 'number' || !Number.isFinite(r))
      throw new Error(`reward function returned ${r} for completion ${i}; return a finite number or null`);
    return o.format === 'orz' && ctx.finishReasons[i] === 'length' ? 0 : r;
  });
  return { rewards, nulls };
}

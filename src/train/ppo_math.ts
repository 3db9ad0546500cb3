// PPO-with-a-critic math as small pure functions: GAE over per-token values with a terminal reward, returns,
// batch- or group-level advantage normalisation, the (optionally clipped) value loss, and explained variance.
// References: Open-Reasoner-Zero `orz/ppo/utils.py` (get_advantages_and_returns, normalize_advantages) and
// `orz/ppo/actors.py` (ValueLoss: 0.5 * max((V_clip - R)^2, (V - R)^2), masked mean per sequence, mean over the
// batch); Schulman et al. 2016 (GAE); the OVR paper §3.2 eq. 1-3 (gamma = lambda = 1).
//
// Shapes: N = completions, T_i = length of completion i (ragged on the array side; padded [N, T] with a mask on the
// tensor side). values[i][t] is V(s_t), the critic's value of the state before completion token t is chosen.
//
// Where we differ from ORZ: ORZ's batch normalisation subtracts the mean over ALL positions (padding included) but
// divides by the masked std; on ragged arrays there is no padding, so both are over real tokens only.
import * as tf from '@tensorflow/tfjs-core';
import { aggregateLoss, maskedMean } from './grpo_math.js';

/** GAE discount factors. */
export interface GaeOptions {
  /** Discount gamma. Default 1 (ORZ / OVR). */
  gamma?: number;
  /** GAE lambda. Default 1 (ORZ / OVR): advantages are then returns minus values (Monte Carlo). */
  lambda?: number;
}

/** Per-token advantages and returns of one or many completions (same ragged shape as the values). */
export interface GaeResult {
  advantages: number[][];
  /** advantages + values: the critic's regression target. */
  returns: number[][];
}

function checkFactor(name: string, x: number): void {
  if (!(x >= 0 && x <= 1)) throw new Error(`gae: ${name} must be in [0, 1], got ${x}`);
}

/**
 * GAE of one completion: delta_t = r_t + gamma V_{t+1} - V_t (V_T = 0 after the last token),
 * A_t = delta_t + gamma lambda A_{t+1}; returns R_t = A_t + V_t. `reward` is either the terminal (sequence) reward,
 * placed on the last token as ORZ does, or one reward per token.
 * @example
 * gaeOne([0.5, 0.25, 0], 1) // advantages [0.5, 0.75, 1], returns [1, 1, 1]
 */
export function gaeOne(
  values: ArrayLike<number>,
  reward: number | ArrayLike<number>,
  opts: GaeOptions = {},
): { advantages: number[]; returns: number[] } {
  const gamma = opts.gamma ?? 1;
  const lambda = opts.lambda ?? 1;
  checkFactor('gamma', gamma);
  checkFactor('lambda', lambda);
  const T = values.length;
  const rewards = typeof reward === 'number' ? undefined : reward;
  if (rewards && rewards.length !== T) {
    throw new Error(`gae: ${rewards.length} per-token rewards but ${T} values; give one reward per token`);
  }
  if (typeof reward === 'number' && !Number.isFinite(reward)) {
    throw new Error(`gae: reward is ${reward}; map unscorable completions to a number (e.g. 0)`);
  }
  const advantages = new Array<number>(T);
  const returns = new Array<number>(T);
  let last = 0;
  for (let t = T - 1; t >= 0; t--) {
    const v = values[t];
    if (!Number.isFinite(v))
      throw new Error(`gae: value ${t} is ${v}; the critic produced a non-finite value`);
    const r = rewards ? rewards[t] : t === T - 1 ? (reward as number) : 0;
    const next = t + 1 < T ? values[t + 1] : 0;
    last = r + gamma * next - v + gamma * lambda * last;
    advantages[t] = last;
    returns[t] = last + v;
  }
  return { advantages, returns };
}

/**
 * GAE for a batch of completions (ragged: values[i] has one entry per completion token of i), one terminal reward
 * per completion. Empty completions give empty rows.
 * @example gae([[0, 0], [0.5]], [1, 0]).returns // [[1, 1], [0]]
 */
export function gae(
  values: readonly ArrayLike<number>[],
  rewards: ArrayLike<number>,
  opts: GaeOptions = {},
): GaeResult {
  if (values.length !== rewards.length) {
    throw new Error(
      `gae: ${values.length} value rows but ${rewards.length} rewards; one reward per completion`,
    );
  }
  const out: GaeResult = { advantages: [], returns: [] };
  values.forEach((v, i) => {
    const r = gaeOne(v, rewards[i], opts);
    out.advantages.push(r.advantages);
    out.returns.push(r.returns);
  });
  return out;
}

/** How advantages are normalised across tokens. */
export type AdvantageNorm = 'batch' | 'group' | 'none';

/** Mean and population std over the tokens of the given rows. */
function tokenStats(rows: readonly ArrayLike<number>[]): { mean: number; std: number; n: number } {
  let n = 0;
  let sum = 0;
  for (const r of rows) {
    n += r.length;
    for (let t = 0; t < r.length; t++) sum += r[t];
  }
  const mean = n ? sum / n : 0;
  let ss = 0;
  for (const r of rows) for (let t = 0; t < r.length; t++) ss += (r[t] - mean) ** 2;
  return { mean, std: n ? Math.sqrt(ss / n) : 0, n };
}

/**
 * Whitens per-token advantages: (A - mean) / max(std, sqrt(1e-8)), with mean and population std over every token of
 * the batch ('batch', ORZ `advantage_normalize`), or over the tokens of each group of `groupSize` consecutive
 * completions ('group'); 'none' returns a copy. A constant set becomes all zeros.
 * @example normalizeAdvantages([[1, 3]], 'batch') // [[-1, 1]]
 */
export function normalizeAdvantages(
  advantages: readonly ArrayLike<number>[],
  mode: AdvantageNorm,
  groupSize?: number,
): number[][] {
  const whiten = (rows: readonly ArrayLike<number>[]): number[][] => {
    const { mean, std } = tokenStats(rows);
    const r = 1 / Math.sqrt(Math.max(std * std, 1e-8));
    return rows.map((row) => Array.from(row, (a) => (a - mean) * r));
  };
  if (mode === 'none') return advantages.map((r) => Array.from(r));
  if (mode === 'batch') return whiten(advantages);
  if (mode !== 'group')
    throw new Error(`normalizeAdvantages: mode must be batch, group or none, got '${mode}'`);
  if (!groupSize || !Number.isInteger(groupSize) || groupSize < 1 || advantages.length % groupSize !== 0) {
    throw new Error(
      `normalizeAdvantages: 'group' needs groupSize dividing the ${advantages.length} completions, got ${groupSize}`,
    );
  }
  const out: number[][] = [];
  for (let g = 0; g < advantages.length; g += groupSize)
    out.push(...whiten(advantages.slice(g, g + groupSize)));
  return out;
}

/**
 * Explained variance 1 - Var(R - V) / Var(R) over all tokens (population variances): 1 for a perfect critic, 0 for
 * one that predicts the mean, negative when worse than the mean. NaN when the returns have no variance.
 * @example explainedVariance([[0, 1]], [[0, 1]]) // 1
 */
export function explainedVariance(
  values: readonly ArrayLike<number>[],
  returns: readonly ArrayLike<number>[],
): number {
  if (values.length !== returns.length) {
    throw new Error(`explainedVariance: ${values.length} value rows but ${returns.length} return rows`);
  }
  const resid = values.map((v, i) => {
    if (v.length !== returns[i].length) {
      throw new Error(`explainedVariance: row ${i} has ${v.length} values but ${returns[i].length} returns`);
    }
    return Array.from(v, (x, t) => returns[i][t] - x);
  });
  const varR = tokenStats(returns).std ** 2;
  if (!(varR > 0)) return Number.NaN;
  return 1 - tokenStats(resid).std ** 2 / varR;
}

/** Mean over all tokens of ragged rows (0 when empty). */
export function tokenMean(rows: readonly ArrayLike<number>[]): number {
  return tokenStats(rows).mean;
}

/**
 * Pads ragged rows to [N, T] (T = longest row, at least 1) with `fill`, plus the 0/1 mask.
 * @example padRows([[1, 2], [3]]) // { data: [[1, 2], [3, 0]], mask: [[1, 1], [1, 0]] }
 */
export function padRows(
  rows: readonly ArrayLike<number>[],
  fill = 0,
): { data: number[][]; mask: number[][] } {
  const T = Math.max(1, ...rows.map((r) => r.length));
  return {
    data: rows.map((r) => Array.from({ length: T }, (_, t) => (t < r.length ? r[t] : fill))),
    mask: rows.map((r) => Array.from({ length: T }, (_, t) => (t < r.length ? 1 : 0))),
  };
}

/** Inputs of the value loss. Tensors are borrowed (not disposed). */
export interface ValueLossInputs {
  /** Critic values with gradient. [N, T] */
  values: tf.Tensor;
  /** Values at rollout time (constant); needed when `clip` is set. [N, T] */
  oldValues?: tf.Tensor;
  /** GAE returns (constant). [N, T] */
  returns: tf.Tensor;
  /** 1 on completion tokens, 0 on padding. [N, T] */
  mask: tf.Tensor;
  /** Value clipping radius (ORZ `value_clip` 0.2): V_clip = old + clamp(V - old, -clip, clip). Off when undefined. */
  clip?: number;
  /** 'sequence' (ORZ: masked mean per completion, then mean) or 'token' (sum over tokens / token count). */
  aggregation?: 'token' | 'sequence';
  /** Denominator override (tokens or sequences of the whole step) for gradient accumulation. */
  normalizer?: number;
}

/**
 * Value loss 0.5 * (V - R)^2 per token (gradient V - R), or with `clip` the pessimistic
 * 0.5 * max((V_clip - R)^2, (V - R)^2), aggregated by `aggregation` (default 'sequence', as ORZ).
 * Also returns the fraction of tokens where the clipped branch is the larger one.
 * @example
 * valueLoss({ values: tf.tensor([[1, 3]]), returns: tf.tensor([[0, 0]]), mask: tf.ones([1, 2]) }).loss // 2.5
 */
export function valueLoss(x: ValueLossInputs): { loss: tf.Scalar; clipFraction: tf.Scalar } {
  const same = (a: tf.Tensor, n: string) => {
    if (a.shape.length !== x.values.shape.length || a.shape.some((d, i) => d !== x.values.shape[i])) {
      throw new Error(
        `valueLoss: ${n} has shape [${a.shape}] but values has [${x.values.shape}]; they must match`,
      );
    }
  };
  if (x.values.rank !== 2) throw new Error(`valueLoss: values must be [N, T], got [${x.values.shape}]`);
  same(x.returns, 'returns');
  same(x.mask, 'mask');
  if (x.clip !== undefined) {
    if (!(x.clip > 0)) throw new Error(`valueLoss: clip must be > 0 (or unset), got ${x.clip}`);
    if (!x.oldValues) throw new Error('valueLoss: clip needs oldValues (the critic values at rollout time)');
    same(x.oldValues, 'oldValues');
  }
  return tf.tidy(() => {
    const m = tf.cast(x.mask, 'float32');
    const unclipped = tf.square(tf.sub(x.values, x.returns));
    let perToken = unclipped;
    let clipFraction = tf.scalar(0);
    if (x.clip !== undefined && x.oldValues) {
      const c = x.clip;
      const vClip = tf.add(x.oldValues, tf.clipByValue(tf.sub(x.values, x.oldValues), -c, c));
      const clipped = tf.square(tf.sub(vClip, x.returns));
      perToken = tf.maximum(clipped, unclipped);
      clipFraction = maskedMean(tf.cast(tf.greater(clipped, unclipped), 'float32'), m);
    }
    const loss = tf.mul(
      aggregateLoss(perToken, m, x.aggregation ?? 'sequence', x.normalizer),
      0.5,
    ) as tf.Scalar;
    return { loss, clipFraction };
  });
}

// GRPO math as small pure functions: group-normalised advantages, the PPO-clipped surrogate with token- or
// sequence-level aggregation (DAPO clip-higher and token-level sum / total tokens), the k3 KL estimator and entropy.
// References: TRL `GRPOTrainer._generate_and_score_completions` (advantages) and `_compute_loss` (loss, clip ratios),
// DAPO (arXiv 2503.14476, eq. 8: token-level loss over all tokens of the batch, decoupled clip eps_low / eps_high).
//
// Shapes: N = completions in the (mini)batch (prompts x G), T = completion length (padded), V = vocabulary.
//   logprobs, oldLogprobs, refLogprobs, mask, entropy: [N, T]; advantages: [N]; logits: [..., V].
//
// Where we differ from TRL: the 'token' normaliser can be given explicitly (`normalizer`) so that gradient
// accumulation over minibatches divides by the token count of the whole batch, as TRL's `num_items_in_batch` does.
import * as tf from '@tensorflow/tfjs-core';

/** Options for group-normalised advantages. */
export interface GroupAdvantageOptions {
  /** Divide by (std + eps). TRL `scale_rewards`; Dr. GRPO turns it off. Default true. */
  scaleByStd?: boolean;
  /** Added to the std. Default 1e-4, as TRL. */
  eps?: number;
}

/** Per-completion advantages plus per-group statistics. */
export interface GroupAdvantages {
  /** (r - mean_g) / (std_g + eps), or r - mean_g without std scaling; exactly 0 in zero-variance groups. [N] */
  advantages: number[];
  groupMean: number[];
  /** Sample (unbiased, n - 1) standard deviation, as torch `.std()` in TRL. */
  groupStd: number[];
  /** Indices of groups whose rewards are all equal (std ~ 0): no learning signal; dynamic sampling drops these. */
  zeroVarianceGroups: number[];
}

/**
 * Group-normalised advantages over consecutive groups of `groupSize` rewards (one group per prompt).
 * The std is the sample std (Bessel-corrected, n - 1) because TRL uses torch `.std()`, which is unbiased.
 * A group counts as zero-variance when its std <= 1e-8 (torch.isclose(std, 0) with default atol), and its
 * advantages are set to exactly 0.
 * @example
 * groupAdvantages([1, 0, 0, 0, 1, 1, 1, 1], 4)
 * // advantages ~ [1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0], zeroVarianceGroups [1]
 */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  opts: GroupAdvantageOptions = {},
): GroupAdvantages {
  const scaleByStd = opts.scaleByStd ?? true;
  const eps = opts.eps ?? 1e-4;
  if (!Number.isInteger(groupSize) || groupSize < 2) {
    throw new Error(
      `groupAdvantages: groupSize must be an integer >= 2 (generations per prompt), got ${groupSize}`,
    );
  }
  if (rewards.length % groupSize !== 0) {
    throw new Error(`groupAdvantages: ${rewards.length} rewards is not a multiple of groupSize ${groupSize}`);
  }
  if (!(eps >= 0)) throw new Error(`groupAdvantages: eps must be >= 0, got ${eps}`);
  for (let i = 0; i < rewards.length; i++) {
    if (!Number.isFinite(rewards[i])) {
      throw new Error(
        `groupAdvantages: reward ${i} is ${rewards[i]}; map unscorable completions to a number (e.g. 0)`,
      );
    }
  }
  const out: GroupAdvantages = { advantages: [], groupMean: [], groupStd: [], zeroVarianceGroups: [] };
  for (let g = 0; g < rewards.length / groupSize; g++) {
    const r = Array.from({ length: groupSize }, (_, j) => rewards[g * groupSize + j]);
    const mean = r.reduce((a, b) => a + b, 0) / groupSize;
    const std = Math.sqrt(r.reduce((a, x) => a + (x - mean) ** 2, 0) / (groupSize - 1));
    const flat = std <= 1e-8;
    if (flat) out.zeroVarianceGroups.push(g);
    out.groupMean.push(mean);
    out.groupStd.push(std);
    for (const x of r) out.advantages.push(flat ? 0 : scaleByStd ? (x - mean) / (std + eps) : x - mean);
  }
  return out;
}

/**
 * Keeps the items of the listed groups (consecutive blocks of `groupSize`), in the listed order.
 * @example selectGroups(['a', 'b', 'c', 'd'], 2, [1]) // ['c', 'd']
 */
export function selectGroups<T>(items: readonly T[], groupSize: number, groups: readonly number[]): T[] {
  const n = items.length / groupSize;
  if (!Number.isInteger(n))
    throw new Error(`selectGroups: ${items.length} items is not a multiple of ${groupSize}`);
  return groups.flatMap((g) => {
    if (!Number.isInteger(g) || g < 0 || g >= n)
      throw new Error(`selectGroups: group ${g} out of range [0, ${n})`);
    return items.slice(g * groupSize, (g + 1) * groupSize);
  });
}

/**
 * Identity in the forward pass, zero gradient (torch `.detach()`); e.g. old log-probs when mu = 1.
 * @example const old = stopGradient(logprobs); // ratio exp(logprobs - old) == 1, d ratio = d logprobs
 */
export const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: (args[0] as tf.Tensor).clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as (x: tf.Tensor) => tf.Tensor;

/**
 * k3 estimator of KL(pi || ref) per token (Schulman): exp(ref - lp) - (ref - lp) - 1 >= 0, = 0 where equal.
 * @example klK3(tf.tensor([-1]), tf.tensor([-2])) // [exp(-1)] = [0.3679]
 */
export function klK3(logprobs: tf.Tensor, refLogprobs: tf.Tensor): tf.Tensor {
  assertSameShape(refLogprobs, logprobs, 'refLogprobs', 'logprobs');
  return tf.tidy(() => {
    const d = tf.sub(refLogprobs, logprobs);
    return tf.sub(tf.sub(tf.exp(d), d), 1);
  });
}

/**
 * Entropy of softmax(logits / temperature) along the last axis: [..., V] -> [...].
 * @example entropyFromLogits(tf.zeros([2, 4])) // [log 4, log 4]
 */
export function entropyFromLogits(logits: tf.Tensor, temperature = 1): tf.Tensor {
  if (!(temperature > 0)) throw new Error(`entropyFromLogits: temperature must be > 0, got ${temperature}`);
  return tf.tidy(() => {
    const lp = tf.logSoftmax(temperature === 1 ? logits : tf.div(logits, temperature));
    // NOTE: floor -Infinity (masked ids) so that p log p = 0 * finite = 0, in the forward and the gradient.
    return tf.neg(tf.sum(tf.mul(tf.exp(lp), tf.maximum(lp, -1e30)), -1));
  });
}

/** Mean of x over positions where mask = 1 (0 when the mask is empty). Scalar. */
export function maskedMean(x: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const m = tf.cast(mask, 'float32');
    return tf.div(tf.sum(tf.mul(x, m)), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
  });
}

/** Inputs of the clipped surrogate. Tensors are borrowed (not disposed). */
export interface PolicyLossInputs {
  /** log pi_theta(o_t) of the sampled tokens under the current policy, with gradient. [N, T] */
  logprobs: tf.Tensor;
  /** log-probs under the rollout policy (constant). [N, T] */
  oldLogprobs: tf.Tensor;
  /** One advantage per completion [N] (GRPO), or one per token [N, T] (PPO with a critic, GAE). */
  advantages: tf.Tensor;
  /** 1 on completion tokens to train (incl. EOS), 0 on padding. [N, T] */
  mask: tf.Tensor;
  /** Ratio floor is 1 - clipLow. Default 0.2. */
  clipLow?: number;
  /** Ratio ceiling is 1 + clipHigh (DAPO clip-higher uses 0.28). Default 0.2. */
  clipHigh?: number;
  /** 'token': sum over all tokens / token count (DAPO); 'sequence': mean per sequence, then mean (GRPO paper). */
  aggregation?: 'token' | 'sequence';
  /** Denominator override: total tokens ('token') or sequences ('sequence') of the whole batch, for accumulation. */
  normalizer?: number;
  /** Reference-model log-probs; with klCoef > 0 adds klCoef * k3 per token (TRL beta). [N, T] */
  refLogprobs?: tf.Tensor;
  klCoef?: number;
  /** Per-token entropy (entropyFromLogits); with entropyCoef > 0 subtracts entropyCoef * entropy per token. [N, T] */
  entropy?: tf.Tensor;
  entropyCoef?: number;
  /**
   * Importance weights of engine-sampled tokens (is_correction.ts), constant; multiply each token's clipped
   * policy-gradient term (not the KL or entropy terms), as TRL's vLLM correction does. [N, T]
   */
  isWeights?: tf.Tensor;
}

/** Statistics (scalars, masked token means) for logging; not meant to be differentiated. */
export type PolicyLossStats = {
  /** Fraction of tokens where clipping is active: (r < 1 - clipLow and A < 0) or (r > 1 + clipHigh and A > 0). */
  clipFraction: tf.Scalar;
  lowClipFraction: tf.Scalar;
  highClipFraction: tf.Scalar;
  /** k3 estimate of KL(old || current) = mean of r - 1 - log r. */
  approxKl: tf.Scalar;
  ratioMean: tf.Scalar;
  ratioMin: tf.Scalar;
  ratioMax: tf.Scalar;
  /** Mean k3 KL to the reference (0 without refLogprobs). */
  refKl: tf.Scalar;
  /** Mean entropy (0 without entropy). */
  entropy: tf.Scalar;
};

function assertSameShape(a: tf.Tensor, b: tf.Tensor, an: string, bn: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${an} has shape [${a.shape}] but ${bn} has [${b.shape}]; they must match`);
  }
}

function checkInputs(x: PolicyLossInputs): void {
  if (x.logprobs.rank !== 2)
    throw new Error(`clippedPolicyLoss: logprobs must be [N, T], got [${x.logprobs.shape}]`);
  assertSameShape(x.oldLogprobs, x.logprobs, 'oldLogprobs', 'logprobs');
  assertSameShape(x.mask, x.logprobs, 'mask', 'logprobs');
  const perToken = x.advantages.rank === 2;
  if (perToken) assertSameShape(x.advantages, x.logprobs, 'advantages', 'logprobs');
  else if (x.advantages.rank !== 1 || x.advantages.shape[0] !== x.logprobs.shape[0]) {
    throw new Error(
      `advantages must be [N] = [${x.logprobs.shape[0]}] or [N, T] = [${x.logprobs.shape}], got [${x.advantages.shape}]`,
    );
  }
  if ((x.klCoef ?? 0) > 0 && !x.refLogprobs)
    throw new Error('klCoef > 0 needs refLogprobs (load the reference model)');
  if ((x.entropyCoef ?? 0) > 0 && !x.entropy) throw new Error('entropyCoef > 0 needs the per-token entropy');
  if (x.refLogprobs) assertSameShape(x.refLogprobs, x.logprobs, 'refLogprobs', 'logprobs');
  if (x.entropy) assertSameShape(x.entropy, x.logprobs, 'entropy', 'logprobs');
  if (x.isWeights) assertSameShape(x.isWeights, x.logprobs, 'isWeights', 'logprobs');
  const lo = x.clipLow ?? 0.2;
  const hi = x.clipHigh ?? 0.2;
  if (!(lo >= 0 && lo < 1)) throw new Error(`clipLow must be in [0, 1), got ${lo}`);
  if (!(hi >= 0)) throw new Error(`clipHigh must be >= 0, got ${hi}`);
  if (x.normalizer !== undefined && !(x.normalizer > 0)) {
    throw new Error(`normalizer must be > 0 (token or sequence count of the batch), got ${x.normalizer}`);
  }
}

/** Reduces a masked per-token loss [N, T] to a scalar (see PolicyLossInputs.aggregation). */
export function aggregateLoss(
  perToken: tf.Tensor,
  mask: tf.Tensor,
  aggregation: 'token' | 'sequence',
  normalizer?: number,
): tf.Scalar {
  return tf.tidy(() => {
    const m = tf.cast(mask, 'float32');
    const masked = tf.mul(perToken, m);
    if (aggregation === 'token') {
      return tf.div(tf.sum(masked), normalizer ?? tf.maximum(tf.sum(m), 1)) as tf.Scalar;
    }
    const perSeq = tf.div(tf.sum(masked, 1), tf.maximum(tf.sum(m, 1), 1)); // [N]
    return tf.div(tf.sum(perSeq), normalizer ?? perSeq.shape[0]) as tf.Scalar;
  });
}

/** Masked min and max of x (+/-Infinity when the mask is empty). */
function maskedMinMax(x: tf.Tensor, m: tf.Tensor): [tf.Scalar, tf.Scalar] {
  const on = tf.greater(m, 0);
  const inf = tf.fill(x.shape, Number.POSITIVE_INFINITY);
  return [tf.min(tf.where(on, x, inf)), tf.max(tf.where(on, x, tf.neg(inf)))];
}

/**
 * PPO-clipped surrogate per token, -min(r A, clip(r, 1 - clipLow, 1 + clipHigh) A) with r = exp(lp - old),
 * plus optional klCoef * k3(ref) and - entropyCoef * entropy, aggregated by `aggregation`.
 * Gradient: for A > 0 it raises lp until r > 1 + clipHigh, for A < 0 it lowers lp until r < 1 - clipLow; beyond,
 * the clipped branch is the minimum and its gradient is 0.
 * Returns tensors owned by the caller. Inside tf.variableGrads only the returned loss survives the tidy, so keep
 * the stats there with tf.keep if you need them.
 * @example
 * const { value, grads } = tf.variableGrads(() => {
 *   const out = clippedPolicyLoss({ logprobs: lp(), oldLogprobs, advantages, mask });
 *   stats = tf.keep(out.stats.clipFraction);
 *   return out.loss;
 * });
 */
export function clippedPolicyLoss(x: PolicyLossInputs): { loss: tf.Scalar; stats: PolicyLossStats } {
  checkInputs(x);
  const lo = x.clipLow ?? 0.2;
  const hi = x.clipHigh ?? 0.2;
  return tf.tidy(() => {
    const m = tf.cast(x.mask, 'float32');
    const a = tf.cast(x.advantages, 'float32');
    const adv = a.rank === 2 ? a : tf.reshape(a, [-1, 1]); // [N, T] or [N, 1]
    const logRatio = tf.sub(x.logprobs, x.oldLogprobs);
    const ratio = tf.exp(logRatio);
    const unclipped = tf.mul(ratio, adv);
    const clipped = tf.mul(tf.clipByValue(ratio, 1 - lo, 1 + hi), adv);
    let perToken = tf.neg(tf.minimum(unclipped, clipped));
    if (x.isWeights) perToken = tf.mul(perToken, x.isWeights);
    const refKl = x.refLogprobs ? klK3(x.logprobs, x.refLogprobs) : undefined;
    if (refKl && (x.klCoef ?? 0) > 0) perToken = tf.add(perToken, tf.mul(refKl, x.klCoef ?? 0));
    if (x.entropy && (x.entropyCoef ?? 0) > 0)
      perToken = tf.sub(perToken, tf.mul(x.entropy, x.entropyCoef ?? 0));
    const loss = aggregateLoss(perToken, m, x.aggregation ?? 'token', x.normalizer);

    const low = tf.logicalAnd(tf.less(ratio, 1 - lo), tf.less(adv, 0));
    const high = tf.logicalAnd(tf.greater(ratio, 1 + hi), tf.greater(adv, 0));
    const [ratioMin, ratioMax] = maskedMinMax(ratio, m);
    const stats: PolicyLossStats = {
      clipFraction: maskedMean(tf.cast(tf.logicalOr(low, high), 'float32'), m),
      lowClipFraction: maskedMean(tf.cast(low, 'float32'), m),
      highClipFraction: maskedMean(tf.cast(high, 'float32'), m),
      approxKl: maskedMean(tf.sub(tf.sub(ratio, 1), logRatio), m),
      ratioMean: maskedMean(ratio, m),
      ratioMin,
      ratioMax,
      refKl: refKl ? maskedMean(refKl, m) : tf.scalar(0),
      entropy: x.entropy ? maskedMean(x.entropy, m) : tf.scalar(0),
    };
    return { loss, stats };
  });
}

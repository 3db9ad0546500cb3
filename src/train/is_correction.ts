// Off-policy correction for rollouts sampled by an engine other than the trainer (vLLM, SGLang, `ovr-train serve`, or
// weights a few updates old): importance weights on the engine/trainer mismatch, truncated or masked, as TRL
// (`vllm_importance_sampling_mode`: token_truncate | token_mask | sequence_truncate | sequence_mask, cap
// `vllm_importance_sampling_cap`/`clip_max`) and verl's rollout correction (TIS, MIS) do; background: Yao et al.,
// "Your efficient RL framework secretly brings you off-policy RL training" (fengyao.notion.site/off-policy-rl).
//
// With trainer log-probs lp (recomputed by the trainer, no gradient) and engine log-probs lq of the same sampled
// tokens, the per-token log ratio is d_t = lp_t - lq_t and
//   token_truncate:    w_t = min(exp(d_t), cap)                        (TIS)
//   token_mask:        w_t = exp(d_t) <= cap ? 1 : 0
//   sequence_truncate: w_t = min(exp(sum_t d_t), cap) for every token of the row
//   sequence_mask:     w_t = exp(sum_t d_t) <= cap ? 1 : 0             (MIS; TRL's default, cap 3)
// The weight multiplies the policy-gradient term of each token (not the KL term), as TRL does.
// Pure host math on ragged rows (one row per completion, one entry per real token).

import { IS_MODES, type IsMode } from '../rollout/config.js';

export { IS_MODES, type IsMode };

/** Weights and mismatch statistics of one batch. */
export interface IsCorrection {
  /** Per-token weights, same ragged shape as the inputs. */
  weights: number[][];
  /** Mean |lp - lq| over all tokens (0 for an empty batch). */
  meanAbsDiff: number;
  /** Max |lp - lq| over all tokens. */
  maxAbsDiff: number;
  /** Share of tokens whose weight was truncated (truncate modes) or masked (mask modes). */
  correctedFraction: number;
  /** Mean k3 estimate of KL(engine || trainer) per token: mean of exp(d) - 1 - d. */
  klEstimate: number;
}

/**
 * Importance weights for engine-sampled tokens.
 * @example
 * importanceWeights([[-1, -2]], [[-1, -2.5]], { mode: 'token_truncate', cap: 1.5 }).weights
 * // [[1, 1.5]]   (exp(0) = 1; exp(0.5) = 1.65 truncated to 1.5)
 */
export function importanceWeights(
  trainerLogprobs: number[][],
  engineLogprobs: number[][],
  o: { mode: IsMode; cap: number },
): IsCorrection {
  if (!(o.cap >= 1) || !Number.isFinite(o.cap))
    throw new Error(
      `importance-sampling cap must be a finite number >= 1 (TRL uses 3, verl 2), got ${o.cap}`,
    );
  if (!IS_MODES.includes(o.mode))
    throw new Error(`importance-sampling mode '${o.mode}' is not one of ${IS_MODES.join(', ')}`);
  if (trainerLogprobs.length !== engineLogprobs.length)
    throw new Error(
      `importanceWeights: ${trainerLogprobs.length} trainer rows but ${engineLogprobs.length} engine rows`,
    );
  let sumAbs = 0;
  let maxAbs = 0;
  let kl = 0;
  let tokens = 0;
  let corrected = 0;
  const weights = trainerLogprobs.map((lp, r) => {
    const lq = engineLogprobs[r];
    if (lp.length !== lq.length)
      throw new Error(
        `importanceWeights: row ${r} has ${lp.length} trainer and ${lq.length} engine log-probs`,
      );
    const d = lp.map((x, t) => x - lq[t]);
    for (const x of d) {
      if (!Number.isFinite(x))
        throw new Error(`importanceWeights: row ${r} has a non-finite log-prob difference (${x})`);
      sumAbs += Math.abs(x);
      maxAbs = Math.max(maxAbs, Math.abs(x));
      kl += Math.exp(x) - 1 - x;
    }
    tokens += d.length;
    const seq = Math.exp(d.reduce((a, x) => a + x, 0));
    const w = d.map((x) => {
      const rho = o.mode.startsWith('token') ? Math.exp(x) : seq;
      if (rho <= o.cap) return o.mode.endsWith('mask') ? 1 : rho;
      corrected++;
      return o.mode.endsWith('mask') ? 0 : o.cap;
    });
    return w;
  });
  const n = Math.max(tokens, 1);
  return {
    weights,
    meanAbsDiff: sumAbs / n,
    maxAbsDiff: maxAbs,
    correctedFraction: corrected / n,
    klEstimate: kl / n,
  };
}

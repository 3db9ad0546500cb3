// GRPO update step: the clipped-surrogate loss of one micro-batch as a Trainer loss closure (`policyLossClosure`),
// and `updatePolicy`, which runs ppoEpochs passes over the minibatches of a step's groups, each one `Trainer.update`
// (the shared accumulate -> clip -> guard -> AdamW path, at the RL step's lr), and averages the loss statistics. See grpo.ts for the trainer loop and
// for how the old log-probs are chosen (on-policy stop-gradient vs. a no-grad recompute).
// Shapes: n rows in a micro-batch, Tc completion length, D hidden, V vocabulary; G = numGenerations.
import * as tf from '@tensorflow/tfjs-core';
import type { EncodedPrompt, PromptExample } from '../data/prompts.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { withAdapterOff } from '../model/lora.js';
import { tokenLogprobsFromHidden } from '../model/loss.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { lmLogits } from '../model/text.js';
import { accumulateGrads, type LossClosure } from './accumulate.js';
import { type GrpoConfig, grpoBatchPlan } from './grpo_config.js';
import { isWeightsOf } from './grpo_engine.js';
import { clippedPolicyLoss, entropyFromLogits, type PolicyLossStats, stopGradient } from './grpo_math.js';
import type { TensorMap } from './optim.js';
import { buildTrainRows, disposeRows, type TrainRows } from './rollout.js';
import type { Trainer } from './trainer.js';

/** Loss settings of one update, from the config. */
export interface LossSettings {
  clipLow: number;
  clipHigh: number;
  aggregation: 'token' | 'sequence';
  klCoef: number;
  entropyCoef: number;
  temperature: number;
  recompute: boolean;
}

export const lossSettings = (c: GrpoConfig): LossSettings => ({
  clipLow: c.clipLow,
  clipHigh: c.clipHigh,
  aggregation: c.lossAggregation,
  klCoef: c.klCoef,
  entropyCoef: c.entropyCoef,
  temperature: c.temperature,
  recompute: c.recompute,
});

/** Completion hidden states [n, Tc, D] scaled by 1 / temperature (so h W^T = logits / T). */
function completionHidden(
  model: Qwen2_5_VL,
  rows: TrainRows,
  s: Pick<LossSettings, 'temperature' | 'recompute'>,
): tf.Tensor3D {
  return tf.tidy(() => {
    const hidden = model.hidden(rows.inputs, { recompute: s.recompute }).hidden;
    const [n, , D] = hidden.shape;
    const Tc = rows.targets[0].length;
    const h = tf.slice(hidden, [0, rows.promptLen - 1, 0], [n, Tc, D]) as tf.Tensor3D;
    return s.temperature === 1 ? h : (tf.div(h, s.temperature) as tf.Tensor3D);
  });
}

/**
 * log softmax(logits / T)[token] of each completion token [n, Tc] (the sampler's log-prob), from one forward.
 * @example const lp = completionLogprobs(model, rows, { temperature: 1, recompute: false });
 */
export function completionLogprobs(
  model: Qwen2_5_VL,
  rows: TrainRows,
  s: Pick<LossSettings, 'temperature' | 'recompute'>,
): tf.Tensor2D {
  return tf.tidy(() =>
    tokenLogprobsFromHidden(model.params, model.config, completionHidden(model, rows, s), rows.targets),
  );
}

/** A micro-batch of the update: loss rows, advantages, and the constant log-probs it needs. */
export interface MicroBatch {
  rows: TrainRows;
  advantages: number[];
  /** Per-token advantages [n][<= Tc] (PPO with GAE); padded with 0 to [n, Tc] for the loss. */
  tokenAdvantages?: number[][];
  /** Rollout-policy log-probs [n, Tc]; undefined = on-policy (stop-gradient of the current ones). */
  oldLogprobs?: tf.Tensor2D;
  refLogprobs?: tf.Tensor2D;
  /** Importance weights of engine-sampled tokens [n, Tc] (remote engines only; is_correction.ts). */
  isWeights?: tf.Tensor2D;
}

/** Host copies of the loss statistics of one micro-batch, with the token count they average over. */
export interface MicroStats {
  loss: number;
  tokens: number;
  stats: Record<keyof PolicyLossStats, number>;
  /** Current log-probs [n][Tc] (the forward of this micro-batch). */
  logprobs: number[][];
}

const STAT_KEYS = [
  'clipFraction',
  'lowClipFraction',
  'highClipFraction',
  'approxKl',
  'ratioMean',
  'ratioMin',
  'ratioMax',
  'refKl',
  'entropy',
] as const;

/**
 * The clipped surrogate of one micro-batch as a {@link LossClosure} for `Trainer.update` / `accumulateGrads`,
 * normalised by `normalizer` (tokens or sequences of the whole minibatch) so that summing micro-batch gradients gives
 * the minibatch gradient. The closure keeps its loss, log-probs and statistics; `read()` copies them to the host
 * (after the update) and frees them.
 * @example const p = policyLossClosure(model, mb, settings, 64); await trainer.update([p.closure]); const host = await p.read();
 */
export function policyLossClosure(
  model: Qwen2_5_VL,
  mb: MicroBatch,
  s: LossSettings,
  normalizer: number,
): { closure: LossClosure; read: () => Promise<MicroStats> } {
  let kept: tf.Tensor[] = [];
  const closure = () => {
    const h = completionHidden(model, mb.rows, s);
    const logprobs = tokenLogprobsFromHidden(model.params, model.config, h, mb.rows.targets);
    const entropy =
      s.entropyCoef > 0 ? entropyFromLogits(lmLogits(model.params, model.config, h)) : undefined;
    const out = clippedPolicyLoss({
      logprobs,
      oldLogprobs: mb.oldLogprobs ?? stopGradient(logprobs),
      advantages: mb.tokenAdvantages
        ? tf.tensor2d(mb.rows.mask.map((m, i) => m.map((_, t) => mb.tokenAdvantages![i][t] ?? 0)))
        : tf.tensor1d(mb.advantages),
      mask: tf.tensor2d(mb.rows.mask),
      clipLow: s.clipLow,
      clipHigh: s.clipHigh,
      aggregation: s.aggregation,
      normalizer,
      refLogprobs: mb.refLogprobs,
      klCoef: s.klCoef,
      entropy,
      entropyCoef: s.entropyCoef,
      isWeights: mb.isWeights,
    });
    // keep: read after the gradient tape's tidy ends; freed by read().
    kept = [tf.clone(out.loss), logprobs, ...STAT_KEYS.map((k) => out.stats[k])].map((t) => tf.keep(t));
    return out.loss;
  };
  const read = async (): Promise<MicroStats> => {
    if (kept.length === 0) throw new Error('policyLossClosure: read() before the closure ran');
    const [loss, lp, ...statVals] = kept;
    try {
      const statData = await Promise.all(statVals.map((t) => t.data()));
      const stats = {} as Record<keyof PolicyLossStats, number>;
      STAT_KEYS.forEach((k, i) => {
        stats[k] = statData[i][0];
      });
      return {
        loss: (await loss.data())[0],
        tokens: mb.rows.mask.flat().reduce((a, b) => a + b, 0),
        stats,
        logprobs: (await lp.array()) as number[][],
      };
    } finally {
      tf.dispose(kept);
      kept = [];
    }
  };
  return { closure, read };
}

/**
 * Gradients of the clipped surrogate of one micro-batch w.r.t. `vars` (keyed by param name), through the shared
 * `accumulateGrads`; for tests and analysis (training goes through `Trainer.update`). The caller owns `grads`.
 * @example const { grads, host } = await microBatchGrads(model, vars, mb, settings, 64);
 */
export async function microBatchGrads(
  model: Qwen2_5_VL,
  vars: Record<string, tf.Variable>,
  mb: MicroBatch,
  s: LossSettings,
  normalizer: number,
): Promise<{ grads: TensorMap; host: MicroStats }> {
  const p = policyLossClosure(model, mb, s, normalizer);
  const { loss, grads } = accumulateGrads([p.closure], vars);
  loss.dispose();
  return { grads, host: await p.read() };
}

/** One sampled group (a prompt and its G completions), with rewards and advantages. */
export interface Group {
  example: PromptExample;
  encoded: EncodedPrompt;
  tokens: number[][];
  texts: string[];
  genLogprobs: number[][];
  finish: ('stop' | 'length')[];
  rewards: number[];
  advantages: number[];
  /** Per-token advantages (advantage 'gae': GAE from the critic), used by the loss instead of `advantages`. */
  tokenAdvantages?: number[][];
  dropped: boolean;
}

/** What an update reads and changes: the policy (trained through `trainer`), the frozen reference, the tokenizer. */
export interface PolicyState {
  cfg: GrpoConfig;
  model: Qwen2_5_VL;
  /** Frozen reference for the KL penalty, or null when klCoef = 0. */
  ref: Qwen2_5_VL | null;
  tok: QwenTokenizer;
  trainer: Trainer;
}

/** Averaged statistics of one step's updates; `diff` is the largest sampler-vs-forward log-prob difference. */
export interface PolicyUpdate {
  loss: number;
  gradNorm: number;
  updates: number;
  skipped: number;
  stats: Record<string, number>;
  diff: number;
  /** Engine/trainer mismatch and its correction (remote engines only). */
  is?: { meanAbsDiff: number; maxAbsDiff: number; correctedFraction: number; klEstimate: number };
}

/** Splits groups into minibatches (whole groups) and those into micro-batches of batchSize completions. */
function planUpdate(cfg: GrpoConfig, groups: Group[], padId: number): MicroBatch[][] {
  const G = cfg.numGenerations;
  const plan = grpoBatchPlan(cfg);
  const perMini = plan.miniBatchSize / G;
  const minis: MicroBatch[][] = [];
  for (let m = 0; m < groups.length; m += perMini) {
    const rows = groups
      .slice(m, m + perMini)
      .flatMap((g) => g.tokens.map((t, j) => ({ g, t, a: g.advantages[j], ta: g.tokenAdvantages?.[j] })));
    const micro: MicroBatch[] = [];
    for (let i = 0; i < rows.length; i += cfg.batchSize) {
      const part = rows.slice(i, i + cfg.batchSize);
      micro.push({
        rows: buildTrainRows(
          part.map((r) => r.g.encoded),
          part.map((r) => r.t),
          padId,
        ),
        advantages: part.map((r) => r.a),
        tokenAdvantages: part.every((r) => r.ta) ? part.map((r) => r.ta as number[]) : undefined,
      });
    }
    minis.push(micro);
  }
  return minis;
}

/** Largest |generation log-prob - forward log-prob| over the real tokens of a micro-batch. */
function maxLogprobDiff(forward: number[][], gen: number[][]): number {
  let d = 0;
  gen.forEach((row, i) => {
    row.forEach((x, t) => {
      d = Math.max(d, Math.abs(x - forward[i][t]));
    });
  });
  return d;
}

type Totals = {
  loss: number;
  tokens: number;
  gradNorm: number;
  updates: number;
  skipped: number;
  stats: Record<string, number>;
};

/** Adds one micro-batch's host statistics to the totals: ratioMin/Max as min/max, the rest token-weighted sums. */
function addMicroStats(t: Totals, host: MicroStats): void {
  t.loss += host.loss;
  t.tokens += host.tokens;
  for (const [k, v] of Object.entries(host.stats)) {
    const agg = k === 'ratioMin' ? Math.min : k === 'ratioMax' ? Math.max : null;
    t.stats[k] = agg ? agg(t.stats[k] ?? v, v) : (t.stats[k] ?? 0) + v * host.tokens;
  }
}

/** The totals averaged: loss and gradNorm per update, stats per token (ratioMin/Max as they are). */
function averageTotals(t: Totals, diff: number): PolicyUpdate {
  const stats: Record<string, number> = {};
  for (const [k, v] of Object.entries(t.stats))
    stats[k] = k === 'ratioMin' || k === 'ratioMax' ? v : v / Math.max(t.tokens, 1);
  return {
    loss: t.loss / Math.max(t.updates, 1),
    gradNorm: t.gradNorm / Math.max(t.updates, 1),
    updates: t.updates,
    skipped: t.skipped,
    stats,
    diff,
  };
}

/**
 * One optimizer update from a minibatch through `Trainer.update` (micro-batch losses normalised over the whole
 * minibatch, accumulated, clipped, guarded, AdamW at `lr`). `onMicro` sees each micro-batch's host statistics.
 */
async function minibatchStep(
  ctx: PolicyState,
  mini: MicroBatch[],
  s: LossSettings,
  lr: number,
  t: Totals,
  onMicro: (mb: MicroBatch, host: MicroStats) => void,
): Promise<void> {
  const tokens = mini.reduce((a, mb) => a + mb.rows.mask.flat().reduce((x, y) => x + y, 0), 0);
  const normalizer =
    s.aggregation === 'token' ? Math.max(tokens, 1) : mini.reduce((a, mb) => a + mb.advantages.length, 0);
  const parts = mini.map((mb) => policyLossClosure(ctx.model, mb, s, normalizer));
  let u: Awaited<ReturnType<Trainer['update']>>;
  try {
    u = await ctx.trainer.update(
      parts.map((p) => p.closure),
      { lr },
    );
  } finally {
    // a failed update must not strand the kept statistics
    for (const [i, p] of parts.entries()) {
      const host = await p.read().catch(() => undefined);
      if (host) {
        onMicro(mini[i], host);
        addMicroStats(t, host);
      }
    }
  }
  if (u.skipped) t.skipped++;
  t.gradNorm += u.gradNorm;
  t.updates++;
}

/**
 * ppoEpochs passes of clipped updates over the minibatches of `groups`; returns averaged statistics. Off-policy
 * (ppoEpochs > 1 or several minibatches), the old log-probs come from a no-grad forward before the first update.
 * @example const upd = await updatePolicy(ctx, keptGroups, schedule(step));
 */
export async function updatePolicy(ctx: PolicyState, groups: Group[], lr: number): Promise<PolicyUpdate> {
  const { cfg, model } = ctx;
  const s = lossSettings(cfg);
  const minis = planUpdate(cfg, groups, ctx.tok.special.pad);
  const genRows = groups.flatMap((g) => g.genLogprobs);
  const micros = minis.flat();
  const genOf = (mi: number) => {
    const start = micros.slice(0, mi).reduce((a, m) => a + m.advantages.length, 0);
    return genRows.slice(start, start + micros[mi].advantages.length);
  };
  let diff = 0;
  // a remote engine's log-probs are not the trainer's: recompute the old ones and correct (TRL, verl)
  const remote = cfg.rollout.engine !== 'local';
  const offPolicy = cfg.ppoEpochs > 1 || minis.length > 1 || remote;
  const is = { sumAbs: 0, maxAbs: 0, corrected: 0, kl: 0, tokens: 0 };
  for (const [i, mb] of micros.entries()) {
    if (offPolicy) {
      mb.oldLogprobs = completionLogprobs(model, mb.rows, s);
      const old = (await mb.oldLogprobs.array()) as number[][];
      diff = Math.max(diff, maxLogprobDiff(old, genOf(i)));
      if (remote) mb.isWeights = isWeightsOf(old, genOf(i), cfg.rollout, is);
    }
    const ref = ctx.ref;
    if (ref === model)
      mb.refLogprobs = withAdapterOff(model.params, () => completionLogprobs(model, mb.rows, s));
    else if (ref) mb.refLogprobs = completionLogprobs(ref, mb.rows, s);
  }
  const t: Totals = { loss: 0, tokens: 0, gradNorm: 0, updates: 0, skipped: 0, stats: {} };
  try {
    for (let epoch = 0; epoch < cfg.ppoEpochs; epoch++) {
      for (const [m, mini] of minis.entries()) {
        await minibatchStep(ctx, mini, s, lr, t, (mb, host) => {
          if (!offPolicy && epoch === 0 && m === 0)
            diff = Math.max(diff, maxLogprobDiff(host.logprobs, genOf(micros.indexOf(mb))));
        });
      }
    }
  } finally {
    for (const mb of micros) {
      disposeRows(mb.rows);
      tf.dispose(
        [mb.oldLogprobs, mb.refLogprobs, mb.isWeights].filter((x): x is tf.Tensor2D => x !== undefined),
      );
    }
  }
  const res = averageTotals(t, diff);
  if (remote) {
    const n = Math.max(is.tokens, 1);
    res.is = {
      meanAbsDiff: is.sumAbs / n,
      maxAbsDiff: is.maxAbs,
      correctedFraction: is.corrected / n,
      klEstimate: is.kl / n,
    };
  }
  return res;
}

// GRPO trainer (Open-Reasoner-Zero / DAPO style): per RL step, sample promptsPerStep prompts x G completions
// (rollout.ts), score them, group-normalise the rewards (grpo_math.ts), optionally drop zero-variance groups and
// refill (DAPO dynamic sampling), then run ppoEpochs passes of PPO-clipped updates over minibatches (AdamW, clipping,
// schedules and checkpoints as in SFT). References: TRL `GRPOTrainer` (`_generate_and_score_completions`,
// `_compute_loss`), DAPO (arXiv 2503.14476), ORZ (no KL, no entropy bonus, truncated = 0).
//
// Old log-probs: with ppoEpochs = 1 and one minibatch the update is on-policy, and the old log-probs are the current
// ones with the gradient stopped (ratio == 1 exactly, plain policy gradient; TRL does the same). Otherwise they are
// recomputed by a no-grad forward of the policy before the first update (TRL `old_per_token_logps`): the sampler's
// log-probs come from KV-cached one-token steps, whose float32 rounding differs from a full forward. Both are the
// same distribution (log softmax(logits / temperature) over the full vocabulary); each step logs their largest
// difference as `logprobDiffMax`, and a test bounds it.
//
// `steps` counts RL steps (rollout + ppoEpochs x minibatch updates); the lr schedule advances once per RL step.
// Shapes: n rows in a micro-batch, Tc completion length, D hidden, V vocabulary; G = numGenerations.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { behaviorRates } from '../analysis/behaviors.js';
import { initBackend } from '../backend/index.js';
import { defaultTokenizer, type QwenTokenizer } from '../data/tokenizer.js';
import { saveWeights } from '../io/checkpoint.js';
import { QWEN_EOS_IDS } from '../model/generate.js';
import { tokenLogprobsFromHidden } from '../model/loss.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { QWEN_REAL_VOCAB, type SamplingOptions } from '../model/sampling.js';
import { lmLogits } from '../model/text.js';
import { VerifierPool } from '../reward/pool.js';
import { JsonlLogger, type StepRecord } from '../util/log.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { GrpoConfig, grpoBatchPlan } from './grpo_config.js';
import {
  clippedPolicyLoss,
  entropyFromLogits,
  groupAdvantages,
  type PolicyLossStats,
  stopGradient,
} from './grpo_math.js';
import { AdamW, clipByGlobalNorm, GradAccumulator, NonFiniteGuard, type TensorMap } from './optim.js';
import {
  buildTrainRows,
  disposeRows,
  type EncodedPrompt,
  encodePrompt,
  loadPrompts,
  type PromptExample,
  PromptStream,
  type RewardFunction,
  rolloutPrompts,
  scoreCompletions,
  type TrainRows,
} from './rollout.js';
import { warmupCosine } from './schedule.js';
import { loadModelSpec } from './sft.js';
import { latestCheckpoint, loadTrainState, resolveResume, saveTrainState, writeRunConfig } from './state.js';
import { assignWeights, selectTrainable } from './trainer.js';

/** What `trainGrpo` can be given instead of building it from the config. Tests and library users pass these. */
export interface GrpoDeps {
  /** Policy to train in place (default: from `config.model`). The caller keeps ownership. */
  model?: Qwen2_5_VL;
  /** Frozen reference for the KL penalty (default: loaded from refModel ?? model when klCoef > 0). */
  refModel?: Qwen2_5_VL;
  tokenizer?: QwenTokenizer;
  /** Reward instead of the math reward (TRL signature). */
  rewardFn?: RewardFunction;
  /** Prompts instead of reading `data.train`. */
  prompts?: PromptExample[];
  /** Extra sampling options, e.g. `allowedVocab` for a toy vocabulary (default: the real Qwen ids). */
  sampling?: Pick<SamplingOptions, 'allowedVocab' | 'repetitionPenalty'>;
  /** Ids that end a completion (default QWEN_EOS_IDS). */
  eosIds?: number[];
  /** Progress bar stream (default stderr); null for none. */
  progress?: ProgressStream | null;
  /** Called after every logged step. */
  onStep?: (record: GrpoStepRecord) => void;
}

/** One JSONL line per RL step. */
export interface GrpoStepRecord extends StepRecord {
  step: number;
  lr: number;
  loss: number;
  gradNorm: number;
  rewardMean: number;
  rewardStd: number;
  accuracy: number;
  responseLenMean: number;
  responseLenMax: number;
  truncatedFrac: number;
  clipFraction: number;
  approxKl: number;
  /** Mean k3 KL to the reference (0 when klCoef = 0). */
  refKl: number;
  /** Exact mean entropy of the policy on the completions when entropyCoef > 0, else null. */
  entropy: number | null;
  /** -mean log-prob of the sampled tokens: a cheap entropy estimate (exact in expectation for topP = 1, topK = 0). */
  entropySampled: number;
  droppedGroups: number;
  refills: number;
  groups: number;
  nullRewards: number;
  logprobDiffMax: number;
  behaviors: Record<string, number>;
  timeRolloutMs: number;
  timeRewardMs: number;
  timeUpdateMs: number;
  numTensors: number;
}

export interface GrpoResult {
  steps: number;
  records: GrpoStepRecord[];
  logFile: string;
  rolloutsFile: string;
  lastCheckpoint?: string;
}

/** The policy named by `config.model` ('tiny', a config.json path, or a model dir); shared with SFT. */
export { loadModelSpec };

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
  /** Rollout-policy log-probs [n, Tc]; undefined = on-policy (stop-gradient of the current ones). */
  oldLogprobs?: tf.Tensor2D;
  refLogprobs?: tf.Tensor2D;
}

/** Host copies of the loss statistics of one micro-batch, with the token count they average over. */
export interface MicroStats {
  loss: number;
  tokens: number;
  stats: Record<keyof PolicyLossStats, number>;
  /** Current log-probs [n][Tc] (the forward of this micro-batch). */
  logprobs: number[][];
}

/**
 * Gradients of the clipped surrogate of one micro-batch w.r.t. `vars` (keyed by param name), normalised by
 * `normalizer` (tokens or sequences of the whole minibatch) so that summing micro-batch gradients gives the
 * minibatch gradient. The caller owns and disposes `grads`.
 * @example const { grads, host } = await microBatchGrads(model, vars, mb, settings, 64);
 */
export async function microBatchGrads(
  model: Qwen2_5_VL,
  vars: Record<string, tf.Variable>,
  mb: MicroBatch,
  s: LossSettings,
  normalizer: number,
): Promise<{ grads: TensorMap; host: MicroStats }> {
  const byVarName = new Map(Object.entries(vars).map(([k, v]) => [v.name, k]));
  let kept: tf.Tensor[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const h = completionHidden(model, mb.rows, s);
    const logprobs = tokenLogprobsFromHidden(model.params, model.config, h, mb.rows.targets);
    const entropy =
      s.entropyCoef > 0 ? entropyFromLogits(lmLogits(model.params, model.config, h)) : undefined;
    const out = clippedPolicyLoss({
      logprobs,
      oldLogprobs: mb.oldLogprobs ?? stopGradient(logprobs),
      advantages: tf.tensor1d(mb.advantages),
      mask: tf.tensor2d(mb.rows.mask),
      clipLow: s.clipLow,
      clipHigh: s.clipHigh,
      aggregation: s.aggregation,
      normalizer,
      refLogprobs: mb.refLogprobs,
      klCoef: s.klCoef,
      entropy,
      entropyCoef: s.entropyCoef,
    });
    // keep: the stats and log-probs are read after variableGrads' tidy ends; disposed below.
    kept = [logprobs, ...Object.values(out.stats)].map((t) => tf.keep(t));
    return out.loss;
  }, Object.values(vars));
  const named: TensorMap = {};
  for (const [name, g] of Object.entries(grads)) named[byVarName.get(name) ?? name] = g;
  const [lp, ...statVals] = kept;
  const keys = [
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
  const stats = {} as Record<keyof PolicyLossStats, number>;
  const statData = await Promise.all(statVals.map((t) => t.data()));
  keys.forEach((k, i) => {
    stats[k] = statData[i][0];
  });
  const host: MicroStats = {
    loss: (await value.data())[0],
    tokens: mb.rows.mask.flat().reduce((a, b) => a + b, 0),
    stats,
    logprobs: (await lp.array()) as number[][],
  };
  tf.dispose([value, ...kept]);
  return { grads: named, host };
}

/** One sampled group (a prompt and its G completions), with rewards and advantages. */
interface Group {
  example: PromptExample;
  encoded: EncodedPrompt;
  tokens: number[][];
  texts: string[];
  genLogprobs: number[][];
  finish: ('stop' | 'length')[];
  rewards: number[];
  advantages: number[];
  dropped: boolean;
}

/** Everything a run keeps between steps. */
interface RunContext {
  cfg: GrpoConfig;
  model: Qwen2_5_VL;
  ref: Qwen2_5_VL | null;
  tok: QwenTokenizer;
  prompts: PromptExample[];
  stream: PromptStream;
  deps: GrpoDeps;
  pool: VerifierPool | null;
  vars: Record<string, tf.Variable>;
  opt: AdamW;
  guard: NonFiniteGuard;
}

/** Encodes the next `k` prompts that fit maxPromptLen (longer ones are skipped). */
async function nextPrompts(ctx: RunContext, k: number): Promise<{ ex: PromptExample; enc: EncodedPrompt }[]> {
  const out: { ex: PromptExample; enc: EncodedPrompt }[] = [];
  for (let tries = 0; out.length < k; tries++) {
    if (tries > 10 * ctx.prompts.length + k)
      throw new Error(`no prompt fits maxPromptLen (${ctx.cfg.maxPromptLen}): raise --max-prompt-len`);
    const ex = ctx.prompts[ctx.stream.next(1)[0]];
    const enc = await encodePrompt(ctx.tok, ex);
    if (enc.ids.length <= ctx.cfg.maxPromptLen) out.push({ ex, enc });
  }
  return out;
}

/** One sampling round: k prompts x G completions, scored, with group advantages. */
async function sampleRound(
  ctx: RunContext,
  k: number,
  rng: Rng,
  times: { rollout: number; reward: number },
): Promise<{ groups: Group[]; nulls: number }> {
  const { cfg } = ctx;
  const G = cfg.numGenerations;
  const t0 = performance.now();
  const picked = await nextPrompts(ctx, k);
  const gen = await rolloutPrompts(
    ctx.model,
    picked.map((p) => p.enc),
    {
      maxNewTokens: cfg.maxResponseLen,
      numSamples: G,
      temperature: cfg.temperature,
      topP: cfg.topP,
      topK: cfg.topK,
      allowedVocab: Math.min(ctx.model.config.vocab_size, QWEN_REAL_VOCAB),
      ...ctx.deps.sampling,
      rng,
      eosIds: ctx.deps.eosIds ?? QWEN_EOS_IDS,
      stopStrings: cfg.stopStrings,
      decode: (ids) => ctx.tok.decode(ids),
      padId: ctx.tok.special.pad,
    },
  );
  const t1 = performance.now();
  const texts = gen.texts ?? [];
  const of = (r: number) => picked[gen.promptIndex[r]].ex;
  const { rewards, nulls } = await scoreCompletions(
    texts,
    {
      answers: gen.promptIndex.map((b) => picked[b].ex.answer),
      prompts: gen.promptIndex.map((b) => picked[b].ex.prompt),
      promptIds: texts.map((_, r) => of(r).id),
      finishReasons: gen.finishReasons,
      completionIds: gen.tokens,
    },
    { rewardFn: ctx.deps.rewardFn, format: cfg.reward.format, pool: ctx.pool },
  );
  times.rollout += t1 - t0;
  times.reward += performance.now() - t1;
  const adv = groupAdvantages(rewards, G, { scaleByStd: cfg.scaleRewardsByStd });
  const flat = new Set(adv.zeroVarianceGroups);
  const slice = <T>(xs: T[], b: number) => xs.slice(b * G, (b + 1) * G);
  const groups = picked.map((p, b) => ({
    example: p.ex,
    encoded: p.enc,
    tokens: slice(gen.tokens, b),
    texts: slice(texts, b),
    genLogprobs: slice(gen.logprobs, b),
    finish: slice(gen.finishReasons, b),
    rewards: slice(rewards, b),
    advantages: slice(adv.advantages, b),
    dropped: cfg.dynamicSampling && flat.has(b),
  }));
  return { groups, nulls };
}

/** Samples the step's groups; with dynamic sampling drops zero-variance groups and refills up to maxRefills times. */
async function collectGroups(ctx: RunContext, step: number, times: { rollout: number; reward: number }) {
  const { cfg } = ctx;
  const root = new Rng(cfg.seed ?? 0).split('sampling').split(`step-${step}`);
  const all: Group[] = [];
  let nulls = 0;
  let refills = 0;
  for (let round = 0; ; round++) {
    const have = all.filter((g) => !g.dropped).length;
    const r = await sampleRound(ctx, cfg.promptsPerStep - have, root.split(`round-${round}`), times);
    all.push(...r.groups);
    nulls += r.nulls;
    const kept = all.filter((g) => !g.dropped).length;
    if (!cfg.dynamicSampling || kept >= cfg.promptsPerStep || round >= cfg.maxRefills) break;
    refills++;
  }
  const kept = all.filter((g) => !g.dropped).slice(0, cfg.promptsPerStep);
  return { all, kept, nulls, refills, dropped: all.filter((g) => g.dropped).length };
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
      .flatMap((g) => g.tokens.map((t, j) => ({ g, t, a: g.advantages[j] })));
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

/** ppoEpochs passes of clipped updates over the minibatches; returns averaged statistics. */
async function updatePolicy(ctx: RunContext, groups: Group[], lr: number) {
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
  const offPolicy = cfg.ppoEpochs > 1 || minis.length > 1;
  for (const [i, mb] of micros.entries()) {
    if (offPolicy) {
      mb.oldLogprobs = completionLogprobs(model, mb.rows, s);
      diff = Math.max(diff, maxLogprobDiff((await mb.oldLogprobs.array()) as number[][], genOf(i)));
    }
    if (ctx.ref) mb.refLogprobs = completionLogprobs(ctx.ref, mb.rows, s);
  }
  const t: Totals = { loss: 0, tokens: 0, gradNorm: 0, updates: 0, skipped: 0, stats: {} };
  try {
    for (let epoch = 0; epoch < cfg.ppoEpochs; epoch++) {
      for (const [m, mini] of minis.entries()) {
        const tokens = mini.reduce((a, mb) => a + mb.rows.mask.flat().reduce((x, y) => x + y, 0), 0);
        const normalizer =
          s.aggregation === 'token'
            ? Math.max(tokens, 1)
            : mini.reduce((a, mb) => a + mb.advantages.length, 0);
        const acc = new GradAccumulator();
        // A minibatch mixing image and text-only prompts: the vision tower gets no gradient from text-only
        // micro-batches, so give every param an entry (zeros) to keep the accumulated names consistent.
        const mixed = new Set(mini.map((mb) => mb.rows.inputs.pixelValues === undefined)).size > 1;
        try {
          for (const mb of mini) {
            const { grads, host } = await microBatchGrads(model, ctx.vars, mb, s, normalizer);
            if (mixed) for (const [k, v] of Object.entries(ctx.vars)) grads[k] ??= tf.zerosLike(v);
            acc.add(grads);
            tf.dispose(Object.values(grads));
            if (!offPolicy && epoch === 0 && m === 0)
              diff = Math.max(diff, maxLogprobDiff(host.logprobs, genOf(micros.indexOf(mb))));
            t.loss += host.loss;
            t.tokens += host.tokens;
            for (const [k, v] of Object.entries(host.stats)) {
              const agg = k === 'ratioMin' ? Math.min : k === 'ratioMax' ? Math.max : null;
              t.stats[k] = agg ? agg(t.stats[k] ?? v, v) : (t.stats[k] ?? 0) + v * host.tokens;
            }
          }
          const { grads, norm } = clipByGlobalNorm(acc.grads, cfg.maxGradNorm);
          const n = (await norm.data())[0];
          const verdict = ctx.guard.check(n);
          if (verdict === 'ok') ctx.opt.step(grads, lr);
          else t.skipped++;
          tf.dispose([norm, ...Object.values(grads)]);
          if (verdict === 'stop')
            throw new Error(
              `${ctx.guard.consecutive} updates in a row had a non-finite gradient norm (${n}); lower lr or check the data`,
            );
          t.gradNorm += n;
          t.updates++;
        } finally {
          acc.dispose();
        }
      }
    }
  } finally {
    for (const mb of micros) {
      disposeRows(mb.rows);
      tf.dispose([mb.oldLogprobs, mb.refLogprobs].filter((x): x is tf.Tensor2D => x !== undefined));
    }
  }
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

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const std = (xs: number[]): number => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
};

/** Step statistics over every completion sampled in the step (dropped groups included). */
function rolloutStats(all: Group[]) {
  const rewards = all.flatMap((g) => g.rewards);
  const lens = all.flatMap((g) => g.tokens.map((t) => t.length));
  const lps = all.flatMap((g) => g.genLogprobs.flat());
  return {
    rewardMean: mean(rewards),
    rewardStd: std(rewards),
    accuracy: mean(rewards.map((r) => (r >= 1 ? 1 : 0))),
    responseLenMean: mean(lens),
    responseLenMax: Math.max(0, ...lens),
    truncatedFrac: mean(all.flatMap((g) => g.finish.map((f) => (f === 'length' ? 1 : 0)))),
    entropySampled: -mean(lps),
    behaviors: behaviorRates(all.flatMap((g) => g.texts)),
    completionTokens: lens.reduce((a, b) => a + b, 0),
  };
}

/** Number of RL steps: `steps`, or epochs x prompts / promptsPerStep (1 epoch when neither is set). */
export function totalGrpoSteps(cfg: GrpoConfig, numPrompts: number): number {
  if (cfg.steps !== undefined) return cfg.steps;
  return Math.max(1, Math.ceil(((cfg.epochs ?? 1) * numPrompts) / cfg.promptsPerStep));
}

/** Greedy accuracy (mean reward) on the eval prompts. */
async function evaluate(ctx: RunContext, prompts: PromptExample[]): Promise<number> {
  const rewards: number[] = [];
  for (let i = 0; i < prompts.length; i += ctx.cfg.promptsPerStep) {
    const part = prompts.slice(i, i + ctx.cfg.promptsPerStep);
    const enc = await Promise.all(part.map((p) => encodePrompt(ctx.tok, p)));
    const gen = await rolloutPrompts(ctx.model, enc, {
      greedy: true,
      maxNewTokens: ctx.cfg.maxResponseLen,
      eosIds: ctx.deps.eosIds ?? QWEN_EOS_IDS,
      stopStrings: ctx.cfg.stopStrings,
      decode: (ids) => ctx.tok.decode(ids),
      padId: ctx.tok.special.pad,
      allowedVocab: Math.min(ctx.model.config.vocab_size, QWEN_REAL_VOCAB),
      ...ctx.deps.sampling,
    });
    const ctxR = {
      answers: part.map((p) => p.answer),
      prompts: part.map((p) => p.prompt),
      promptIds: part.map((p) => p.id),
      finishReasons: gen.finishReasons,
      completionIds: gen.tokens,
    };
    const opts = { rewardFn: ctx.deps.rewardFn, format: ctx.cfg.reward.format, pool: ctx.pool };
    rewards.push(...(await scoreCompletions(gen.texts ?? [], ctxR, opts)).rewards);
  }
  return mean(rewards);
}

/** Builds the run context: model, reference (only when klCoef > 0), tokenizer, prompts, optimizer, resume state. */
async function setup(cfg: GrpoConfig, deps: GrpoDeps) {
  const model = deps.model ?? (await loadModelSpec(cfg.model, cfg.seed ?? 0));
  const ref =
    cfg.klCoef > 0
      ? (deps.refModel ?? (await loadModelSpec(cfg.refModel ?? cfg.model, cfg.seed ?? 0)))
      : null;
  const tok = deps.tokenizer ?? (await defaultTokenizer());
  const prompts = deps.prompts ?? (await loadPrompts(cfg.data.train, cfg.data));
  const vars = selectTrainable(model.params, cfg.trainable);
  // NOTE: AdamW's constructor leaves its tf.zeros initial values undisposed (the moment Variables copy them); the
  // tidy frees those, while Variables are never freed by tidy.
  let opt: AdamW | undefined;
  tf.tidy(() => {
    opt = new AdamW(vars, { betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  });
  if (!opt) throw new Error('AdamW construction failed');
  const resumeDir = await resolveResume(cfg.resume, cfg.outDir);
  const existing = resumeDir ? undefined : await latestCheckpoint(cfg.outDir);
  if (existing) {
    throw new Error(
      `outDir ${cfg.outDir} already holds ${path.basename(existing)}: pass --resume latest to continue it, or choose another --out-dir`,
    );
  }
  const state = resumeDir ? await loadTrainState(resumeDir) : undefined;
  if (resumeDir && state) {
    await assignWeights(model, resumeDir);
    if (state.optimizerState) opt.importState(state.optimizerState);
  }
  const stream = new PromptStream(prompts.length, cfg.seed ?? 0, cfg.data.shuffle, state?.dataPosition);
  const pool =
    !deps.rewardFn && cfg.reward.workers > 0 ? new VerifierPool({ threads: cfg.reward.workers }) : null;
  const ctx: RunContext = {
    cfg,
    model,
    ref,
    tok,
    prompts,
    stream,
    deps,
    pool,
    vars,
    opt,
    guard: new NonFiniteGuard(cfg.maxConsecutiveNonFinite),
  };
  return { ctx, startStep: state?.step ?? 0 };
}

/** Saves weights (F32, exact resume), optimizer moments, data position and the resolved config. */
async function checkpoint(ctx: RunContext, step: number): Promise<string> {
  return saveTrainState(
    ctx.cfg.outDir,
    {
      step,
      dataPosition: ctx.stream.position,
      rng: new Rng(ctx.cfg.seed ?? 0).getState(),
      optimizerState: await ctx.opt.exportState(),
      resolvedConfig: ctx.cfg,
    },
    {
      writeWeights: async (d) =>
        void (await saveWeights(d, ctx.model.params, ctx.model.config, { dtype: 'F32' })),
      keepLast: ctx.cfg.keepLast,
    },
  );
}

/** Appends the step's completions (prompt id, completion, reward, advantage, ...) to rollouts.jsonl. */
function logRollouts(out: JsonlLogger, step: number, all: Group[]): void {
  for (const g of all) {
    g.texts.forEach((completion, j) => {
      out.log({
        step,
        promptId: g.example.id,
        sample: j,
        completion,
        reward: g.rewards[j],
        advantage: g.advantages[j],
        finishReason: g.finish[j],
        length: g.tokens[j].length,
        dropped: g.dropped,
      });
    });
  }
}

/**
 * Runs GRPO for `totalGrpoSteps` RL steps from a resolved config. Writes `log.jsonl`, `rollouts.jsonl`,
 * `training_config.json` and checkpoints into `config.outDir`.
 * @example
 * const res = await trainGrpo(GrpoConfig.parse({ model: 'tiny', data: { train: 'prompts.jsonl' }, steps: 10 }), {
 *   rewardFn: (completions, { answers }) => completions.map((c, i) => (c.includes(answers[i] ?? '?') ? 1 : 0)),
 * });
 * res.records.at(-1)?.rewardMean;
 */
export async function trainGrpo(config: GrpoConfig, deps: GrpoDeps = {}): Promise<GrpoResult> {
  const cfg = GrpoConfig.parse(config);
  await initBackend({ backend: cfg.backend, log: () => {} });
  const { ctx, startStep } = await setup(cfg, deps);
  const evalPrompts = cfg.evalEvery > 0 && cfg.data.eval ? await loadPrompts(cfg.data.eval, cfg.data) : [];
  const total = totalGrpoSteps(cfg, ctx.prompts.length);
  const schedule = warmupCosine({
    lr: cfg.lr,
    warmupSteps: cfg.warmupSteps,
    totalSteps: total,
    minLrRatio: cfg.minLrRatio,
  });
  await writeRunConfig(cfg.outDir, cfg);
  const log = new JsonlLogger(path.join(cfg.outDir, 'log.jsonl'));
  const rollLog = new JsonlLogger(path.join(cfg.outDir, 'rollouts.jsonl'));
  const bar = deps.progress === null ? null : new ProgressBar(total, deps.progress ?? process.stderr);
  const records: GrpoStepRecord[] = [];
  let lastCheckpoint: string | undefined;
  try {
    for (let step = startStep; step < total; step++) {
      const t0 = performance.now();
      const times = { rollout: 0, reward: 0 };
      const { all, kept, nulls, refills, dropped } = await collectGroups(ctx, step, times);
      const t1 = performance.now();
      const lr = schedule(step);
      const upd = kept.length > 0 ? await updatePolicy(ctx, kept, lr) : null;
      const timeUpdateMs = performance.now() - t1;
      const rs = rolloutStats(all);
      const st = upd?.stats ?? {};
      const rec: GrpoStepRecord = {
        step: step + 1,
        lr,
        loss: upd?.loss ?? 0,
        gradNorm: upd?.gradNorm ?? 0,
        ...rs,
        clipFraction: st.clipFraction ?? 0,
        approxKl: st.approxKl ?? 0,
        refKl: st.refKl ?? 0,
        entropy: cfg.entropyCoef > 0 ? (st.entropy ?? 0) : null,
        ratioMin: st.ratioMin ?? 1,
        ratioMax: st.ratioMax ?? 1,
        droppedGroups: dropped,
        refills,
        groups: kept.length,
        updates: upd?.updates ?? 0,
        skippedUpdates: upd?.skipped ?? 0,
        nullRewards: nulls,
        logprobDiffMax: upd?.diff ?? 0,
        timeRolloutMs: times.rollout,
        timeRewardMs: times.reward,
        timeUpdateMs,
        tokensPerSec: rs.completionTokens / ((performance.now() - t0) / 1000),
        numTensors: tf.memory().numTensors,
      };
      if (evalPrompts.length && (step + 1) % cfg.evalEvery === 0)
        rec.evalReward = await evaluate(ctx, evalPrompts);
      records.push(rec);
      logRollouts(rollLog, step + 1, all);
      if ((step + 1) % cfg.logEvery === 0 || step + 1 === total) log.log(rec);
      deps.onStep?.(rec);
      bar?.update({ step: step + 1, loss: rec.loss, lr, tokensPerSec: rec.tokensPerSec });
      if (cfg.saveEvery > 0 && (step + 1) % cfg.saveEvery === 0)
        lastCheckpoint = await checkpoint(ctx, step + 1);
    }
    if (total > startStep && !lastCheckpoint?.endsWith(String(total).padStart(8, '0')))
      lastCheckpoint = await checkpoint(ctx, total);
  } finally {
    bar?.done();
    log.close();
    rollLog.close();
    ctx.opt.dispose();
    await ctx.pool?.close();
    if (!deps.model) ctx.model.dispose();
    if (ctx.ref && !deps.refModel) ctx.ref.dispose();
  }
  return { steps: total - startStep, records, logFile: log.file, rolloutsFile: rollLog.file, lastCheckpoint };
}

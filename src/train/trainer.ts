// Shared optimizer-step machinery for the SFT and GRPO trainers: which params train, one optimizer step from loss
// closures (gradient accumulation, global-norm clipping, NaN/Inf guard, lr schedule), checkpoint save/resume, and the
// per-step JSONL log line + progress bar. The loop itself stays in the trainers (nanoGPT style); this file only holds
// the step. Follows mlx-lm tuner/trainer.py (loss closures, `(loss, ntoks)`) and minGPT's small generic Trainer.
//
// API
//   isTrainable(name, part) / selectTrainable(params, part)   which params get gradients ('all'|'lm'|'vision'|'lm+merger')
//   accumulateGrads(losses, vars)                             sum of micro-batch losses and their summed gradients
//   class Trainer                                             step(losses, {tokens}) -> StepResult; save(); resume(); dispose()
//
// Loss closures: each closure builds ONE micro-batch's loss (synchronously, inside tf.variableGrads). The step loss
// is the SUM of the closures' values, so each micro loss must already be normalised by the whole step (e.g. SFT passes
// numItemsInBatch = label tokens of all micro-batches of the step). That makes batch 4 x accum 1 == batch 1 x accum 4.
//
// Step numbering: `trainer.step` counts finished optimizer steps (applied or skipped); step s (0-based) uses lr
// schedule(s); the log line and checkpoint of that step carry s + 1. AdamW's own counter only counts applied updates
// (its bias correction), so a skipped NaN step does not advance it.
import * as tf from '@tensorflow/tfjs-core';
import { ensureGradients } from '../backend/gradients.js';
import { loadWeights, saveWeights } from '../io/checkpoint.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import type { JsonlLogger, StepRecord } from '../util/log.js';
import type { ProgressBar } from '../util/progress.js';
import type { Rng, RngState } from '../util/rng.js';
import type { CommonTrainConfig, TRAINABLE_PARTS } from './config.js';
import { AdamW, clipCoefficient, globalNorm, NonFiniteGuard, type TensorMap } from './optim.js';
import { type Schedule, warmupCosine } from './schedule.js';
import { type DataPosition, type LoadedTrainState, loadTrainState, saveTrainState } from './state.js';

/** Which parts of the model train. */
export type TrainablePart = (typeof TRAINABLE_PARTS)[number];

/**
 * Whether param `name` (legacy HF name) trains under `part`. `visual.merger.*` is the vision-to-text merger.
 * @example
 * isTrainable('visual.blocks.0.attn.qkv.weight', 'lm');        // false
 * isTrainable('visual.merger.mlp.0.weight', 'lm+merger');      // true
 * isTrainable('model.embed_tokens.weight', 'vision');          // false
 */
export function isTrainable(name: string, part: TrainablePart): boolean {
  const visual = name.startsWith('visual.');
  const merger = name.startsWith('visual.merger.');
  switch (part) {
    case 'all':
      return true;
    case 'lm':
      return !visual;
    case 'vision':
      return visual;
    case 'lm+merger':
      return !visual || merger;
    default:
      throw new Error(`unknown trainable part '${part}': use one of all, lm, vision, lm+merger`);
  }
}

/**
 * The trainable subset of a param record, as Variables (in the record's order).
 * @example const vars = selectTrainable(model.params, 'lm'); // every model.* param, no visual.*
 */
export function selectTrainable(
  params: Record<string, tf.Tensor>,
  part: TrainablePart,
): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [name, t] of Object.entries(params)) {
    if (!isTrainable(name, part)) continue;
    if (!(t instanceof tf.Variable))
      throw new Error(`param '${name}' is not a tf.Variable, so it cannot be trained`);
    out[name] = t;
  }
  if (Object.keys(out).length === 0) {
    throw new Error(`trainable '${part}' selects no parameter of this model; pick another --trainable`);
  }
  return out;
}

/** Loss of one micro-batch, built synchronously (it runs inside tf.variableGrads). */
export type LossClosure = () => tf.Scalar;

/**
 * Runs each closure under tf.variableGrads and sums values and gradients by param name. Caller owns `loss` and every
 * tensor of `grads`. A param no closure reaches (null gradient, e.g. the vision tower on text-only batches) gets no
 * entry, so AdamW leaves it untouched, as torch does for `p.grad is None`.
 * @example
 * const { loss, grads } = accumulateGrads([() => model.loss(a, la), () => model.loss(b, lb)], vars);
 */
export function accumulateGrads(
  losses: LossClosure[],
  vars: Record<string, tf.Variable>,
): { loss: tf.Scalar; grads: TensorMap } {
  if (losses.length === 0) throw new Error('accumulateGrads: no micro-batch loss closures');
  const names = Object.keys(vars);
  const list = names.map((n) => vars[n]);
  const sums: TensorMap = {};
  let loss: tf.Scalar = tf.scalar(0);
  try {
    for (const f of losses) {
      // tidy: when variableGrads throws (no connection), tfjs would otherwise strand the forward's loss tensor
      const { value, grads } = tf.tidy(() => tf.variableGrads(f, list));
      for (const n of names) {
        const g = grads[vars[n].name];
        if (!g) continue;
        const old = sums[n];
        sums[n] = old ? tf.add(old, g) : tf.clone(g);
        old?.dispose();
      }
      tf.dispose(Object.values(grads).filter((g) => g));
      const next = tf.add(loss, value) as tf.Scalar;
      tf.dispose([loss, value]);
      loss = next;
    }
    if (Object.keys(sums).length === 0) {
      throw new Error(
        'accumulateGrads: no trainable parameter received a gradient; check trainable vs the inputs',
      );
    }
  } catch (e) {
    // a failing closure (bad input, OOM) must not strand the sums of the micro-batches before it
    tf.dispose([loss, ...Object.values(sums)]);
    if (/Cannot find a connection between any variable/.test(String((e as Error)?.message))) {
      throw new Error(
        'accumulateGrads: no trainable parameter received a gradient; check trainable vs the inputs ' +
          "(e.g. trainable 'vision' on text-only rows)",
      );
    }
    throw e;
  }
  return { loss, grads: sums };
}

/** What the trainer needs from a config (SftConfig and GrpoConfig both fit). */
export type TrainerConfig = Pick<
  CommonTrainConfig,
  | 'lr'
  | 'minLrRatio'
  | 'warmupSteps'
  | 'weightDecay'
  | 'betas'
  | 'eps'
  | 'maxGradNorm'
  | 'trainable'
  | 'outDir'
  | 'keepLast'
  | 'logEvery'
  | 'maxConsecutiveNonFinite'
>;

/** Options of {@link Trainer}. */
export interface TrainerOptions {
  model: Qwen2_5_VL;
  config: TrainerConfig;
  /** Total optimizer steps of the run (for the schedule and the progress bar). */
  totalSteps: number;
  /** Saved with each checkpoint (training_config.json). Default: `config`. */
  resolvedConfig?: unknown;
  /** Random streams saved/restored with checkpoints, by name. */
  rngs?: Record<string, Rng>;
  logger?: JsonlLogger;
  progress?: ProgressBar;
  /** Learning-rate schedule; default warmupCosine from the config. */
  schedule?: Schedule;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

/** Outcome of one optimizer step. */
export interface StepResult {
  /** 1-based number of the step just finished. */
  step: number;
  /** Sum of the micro-batch losses. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  /** True when the gradient was NaN/Inf and the update was dropped. */
  skipped: boolean;
  tokensPerSec: number;
  numTensors: number;
}

/**
 * One optimizer, schedule, guard, logger and checkpoint writer around a model's trainable Variables.
 * @example
 * const trainer = new Trainer({ model, config: cfg, totalSteps: 100, logger, progress });
 * if (cfg.resume) pos = (await trainer.resume(dir)).dataPosition;
 * while (trainer.step < 100) {
 *   const r = await trainer.trainStep(micros.map((mb) => () => model.loss(mb.inputs, mb.labels, { numItemsInBatch })), { tokens });
 *   if (trainer.step % 10 === 0) await trainer.save(data.position);
 * }
 * trainer.dispose();
 */
export class Trainer {
  /** Optimizer steps finished (applied or skipped). */
  step = 0;
  readonly params: Record<string, tf.Variable>;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly guard: NonFiniteGuard;
  private readonly now: () => number;

  constructor(private readonly o: TrainerOptions) {
    const c = o.config;
    this.params = selectTrainable(o.model.params, c.trainable);
    this.optimizer = new AdamW(this.params, { betas: c.betas, eps: c.eps, weightDecay: c.weightDecay });
    this.schedule =
      o.schedule ??
      warmupCosine({
        lr: c.lr,
        warmupSteps: c.warmupSteps,
        totalSteps: o.totalSteps,
        minLrRatio: c.minLrRatio,
      });
    this.guard = new NonFiniteGuard(c.maxConsecutiveNonFinite);
    this.now = o.now ?? (() => performance.now());
  }

  /** Registers tfjs-core's gradients (backend/gradients.ts); call once before the first step (trainSft does). */
  static ready(): Promise<void> {
    return ensureGradients();
  }

  /**
   * One optimizer step over the micro-batch closures: accumulate, clip, guard, AdamW at schedule(step), log.
   * `tokens` (non-pad tokens processed) feeds tokens/s; `extra` fields join the log line (e.g. GRPO rewards).
   * Throws after `maxConsecutiveNonFinite` non-finite steps in a row.
   */
  async trainStep(
    losses: LossClosure[],
    info: { tokens: number; extra?: Record<string, unknown> } = { tokens: 0 },
  ): Promise<StepResult> {
    const t0 = this.now();
    const lr = this.schedule(this.step);
    const { loss, grads: raw } = accumulateGrads(losses, this.params);
    // Clip by folding torch's clip_grad_norm_ factor into AdamW's gradient read (no scaled copy of every gradient).
    const norm = globalNorm(raw);
    let lossV: number;
    let normV: number;
    let verdict: 'ok' | 'skip' | 'stop';
    try {
      [lossV, normV] = [(await loss.data())[0], (await norm.data())[0]];
      verdict = this.guard.check(normV);
      const gradScale = clipCoefficient(normV, this.o.config.maxGradNorm);
      if (verdict === 'ok') this.optimizer.step(raw, lr, { gradScale });
    } finally {
      tf.dispose([loss, norm, ...Object.values(raw)]);
    }
    this.step += 1;
    const sec = Math.max(1e-9, (this.now() - t0) / 1000);
    const r: StepResult = {
      step: this.step,
      loss: lossV,
      gradNorm: normV,
      lr,
      skipped: verdict !== 'ok',
      tokensPerSec: info.tokens / sec,
      numTensors: tf.memory().numTensors,
    };
    this.report(r, info.extra);
    if (verdict === 'stop') {
      throw new Error(
        `training stopped at step ${this.step}: ${this.guard.consecutive} steps in a row had a non-finite gradient ` +
          `norm (loss ${lossV}); lower lr, check the data for empty/garbage rows, or raise maxConsecutiveNonFinite`,
      );
    }
    return r;
  }

  /** Writes the log line (every logEvery steps, and every skipped step) and updates the progress bar. */
  private report(r: StepResult, extra?: Record<string, unknown>): void {
    if (r.step % this.o.config.logEvery === 0 || r.skipped || r.step === this.o.totalSteps) {
      const { step, loss, lr, gradNorm, tokensPerSec, numTensors } = r;
      const rec: StepRecord = { step, loss, lr, gradNorm, tokensPerSec, numTensors, ...extra };
      if (r.skipped) rec.skipped = true;
      this.o.logger?.log(rec);
    }
    this.o.progress?.update({ step: r.step, loss: r.loss, lr: r.lr, tokensPerSec: r.tokensPerSec });
  }

  /** Writes an arbitrary record (e.g. eval loss) to the JSONL log at the current step. */
  log(fields: Record<string, unknown>): void {
    this.o.logger?.log({ step: this.step, ...fields });
  }

  /**
   * Saves an atomic checkpoint `outDir/checkpoint-<step>`: F32 weights (exact resume) + config.json, AdamW moments,
   * step, data position, rng states, guard counters and the resolved config. Returns its directory.
   */
  async save(dataPosition: DataPosition, extra: Record<string, unknown> = {}): Promise<string> {
    const { model, config } = this.o;
    const rng: Record<string, RngState> = {};
    for (const [k, r] of Object.entries(this.o.rngs ?? {})) rng[k] = r.getState();
    return saveTrainState(
      config.outDir,
      {
        step: this.step,
        dataPosition,
        rng,
        optimizerState: await this.optimizer.exportState(),
        resolvedConfig: this.o.resolvedConfig ?? config,
        extra: { nonFiniteTotal: this.guard.total, nonFiniteConsecutive: this.guard.consecutive, ...extra },
      },
      {
        writeWeights: async (d) => {
          await saveWeights(d, model.params, model.config, { dtype: 'F32' });
        },
        keepLast: config.keepLast,
      },
    );
  }

  /**
   * Restores weights (assigned into the model's Variables), optimizer, step, rng streams and guard counters from a
   * checkpoint dir. Returns the loaded state (its `dataPosition` tells the data stream where to continue).
   */
  async resume(dir: string): Promise<LoadedTrainState> {
    const state = await loadTrainState(dir);
    await assignWeights(this.o.model, dir);
    if (!state.optimizerState)
      throw new Error(`resume: ${dir} has no optimizer state (weights-only checkpoint)`);
    this.optimizer.importState(state.optimizerState);
    this.step = state.step;
    for (const [k, r] of Object.entries(this.o.rngs ?? {})) {
      const s = Array.isArray(state.rng) ? undefined : state.rng[k];
      if (!s)
        throw new Error(
          `resume: ${dir} has no rng stream '${k}' (saved: ${Object.keys(state.rng).join(', ')})`,
        );
      r.setState(s);
    }
    this.guard.total = Number(state.extra?.nonFiniteTotal ?? 0);
    this.guard.consecutive = Number(state.extra?.nonFiniteConsecutive ?? 0);
    return state;
  }

  /** Frees the optimizer moments (the model's params stay with the model). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * Loads a checkpoint's weights and assigns them into the model's existing Variables (keeping their identity, so an
 * optimizer bound to them stays valid).
 * @example await assignWeights(model, 'runs/a/checkpoint-00000010');
 */
export async function assignWeights(model: Qwen2_5_VL, dir: string): Promise<void> {
  const loaded = await loadWeights(dir, model.config);
  try {
    for (const [name, v] of Object.entries(model.params)) {
      const src = loaded[name];
      if (!src) throw new Error(`assignWeights: ${dir} has no tensor for '${name}'`);
      (v as tf.Variable).assign(src);
    }
  } finally {
    tf.dispose(Object.values(loaded));
  }
}

// The one optimizer-step machinery of every trainer (SFT and GRPO): one accumulate -> clip -> guard -> AdamW -> log
// -> checkpoint -> resume path. The loops stay in the trainers (nanoGPT style); a trainer supplies its loss as
// micro-batch closures and gets the step. Follows mlx-lm tuner/trainer.py (loss closures, `(loss, ntoks)`) and
// minGPT's small generic Trainer. Gradient accumulation over micro-batch closures is accumulate.ts.
//
// API
//   class Trainer
//     update(losses, { lr })               ONE optimizer update (accumulate, clip, guard, AdamW); no step count, no log
//     endStep(record)                      counts the step, writes its log line (logEvery, skipped, last), progress bar
//     trainStep(losses, { tokens })        update at schedule(step) + endStep: one SFT step
//     save(dataPosition) / resume(dir)     checkpoints (weights, moments, rng streams, guard counters, config); resume
//                                          refuses a changed run (train/resume.ts) and truncates the logs to its step
//
// Loss closures: each closure builds ONE micro-batch's loss (synchronously, inside tf.variableGrads). The update's
// loss is the SUM of the closures' values, so each micro loss must already be normalised by the whole update (SFT:
// numItemsInBatch = label tokens of the step; GRPO: tokens or sequences of the minibatch). So batch 4 x accum 1 ==
// batch 1 x accum 4. GRPO runs several updates per RL step (ppoEpochs x minibatches), each at the step's explicit lr.
//
// Step numbering: `trainer.step` counts finished steps (SFT: optimizer steps; GRPO: RL steps); step s (0-based) uses
// lr schedule(s); its log line and checkpoint carry s + 1. AdamW's own counter only counts applied updates (its bias
// correction), so a skipped NaN update does not advance it.
import * as tf from '@tensorflow/tfjs-core';
import { ensureGradients } from '../backend/gradients.js';
import type { DataPosition } from '../data/batches.js';
import { damagedCheckpointError } from '../io/run_folder.js';
import { adapterOf } from '../model/lora.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { selectTrainable } from '../model/trainable.js';
import { assignWeights } from '../model/weights.js';
import { StopSignal } from '../util/interrupt.js';
import { type JsonlLogger, type StepRecord, truncateStepLog } from '../util/log.js';
import type { ProgressBar } from '../util/progress.js';
import type { Rng, RngState } from '../util/rng.js';
import { accumulateGrads, type LossClosure } from './accumulate.js';
import type { CommonTrainConfig } from './config.js';
import { restoreTrainedWeights, saveTrainedWeights, trainingClosures } from './lora.js';
import { AdamW, clipCoefficient, globalNorm, NonFiniteGuard } from './optim.js';
import { checkResumeConfig } from './resume.js';
import { type Schedule, warmupCosine } from './schedule.js';
import { type LoadedTrainState, loadTrainState, resolveResume, saveTrainState } from './state.js';

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
> & { allowConfigChange?: boolean };

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
  /** Writes more files into each checkpoint before it is committed (e.g. the PPO critic, train/critic.ts). */
  writeExtra?: (dir: string) => Promise<void>;
  /** More JSONL logs of the run (e.g. GRPO's rollouts.jsonl) that a resume truncates back to its step. */
  stepLogs?: string[];
  /** Info lines (e.g. the settings a resume was allowed to change); default console.error. */
  info?: (line: string) => void;
  /** Catch SIGINT/SIGTERM while the trainer lives, for a final checkpoint ({@link Trainer.stopRequested}); default true. */
  handleSignals?: boolean;
}

/** Outcome of one optimizer update ({@link Trainer.update}). */
export interface UpdateResult {
  /** Sum of the micro-batch losses. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  /** True when the gradient was NaN/Inf and the update was dropped. */
  skipped: boolean;
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
  /** Micro-batches run so far: the LoRA dropout key of the next one (saved, so a resume draws the same masks). */
  private microBatches = 0;
  /** Set when the guard stopped the run; thrown by endStep (after the log line) and by any later update. */
  private stopped: Error | undefined;
  private readonly signals: StopSignal | undefined;

  constructor(private readonly o: TrainerOptions) {
    const c = o.config;
    // Under LoRA (setupAdapter before the Trainer) only the adapter trains; the base is frozen.
    this.params = adapterOf(o.model.params)?.variables() ?? selectTrainable(o.model.params, c.trainable);
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
    this.signals = o.handleSignals === false ? undefined : StopSignal.install(o.info);
  }

  /**
   * The signal (SIGINT/SIGTERM) that asked the run to stop, if any: the loop then saves a checkpoint after the current
   * step and returns. A second signal exits at once.
   */
  get stopRequested(): 'SIGINT' | 'SIGTERM' | undefined {
    return this.signals?.requested;
  }

  /** Registers tfjs-core's gradients (backend/gradients.ts); call once before the first step (trainSft does). */
  static ready(): Promise<void> {
    return ensureGradients();
  }

  /**
   * One optimizer update over the micro-batch closures: accumulate, clip to maxGradNorm, guard, AdamW at `lr`
   * (default schedule(step)). Does not count a step or log. After `maxConsecutiveNonFinite` non-finite updates in a
   * row the run stops: `endStep` writes the step's log line, then throws (so does any further `update`).
   */
  async update(losses: LossClosure[], opts: { lr?: number } = {}): Promise<UpdateResult> {
    if (this.stopped) throw this.stopped;
    const lr = opts.lr ?? this.schedule(this.step);
    const adapter = adapterOf(this.o.model.params);
    const closures = trainingClosures(adapter, this.microBatches, losses);
    this.microBatches += losses.length;
    const { loss, grads: raw } = accumulateGrads(closures, this.params);
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
    // Yield to the event loop once per update: on a synchronous backend (cpu, wasm) every await above resolves as a
    // microtask, so a SIGINT/SIGTERM handler (and any I/O callback) would otherwise wait for the end of the run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (verdict === 'stop') {
      this.stopped = new Error(
        `training stopped at step ${this.step + 1}: ${this.guard.consecutive} steps in a row had a non-finite ` +
          `gradient norm (loss ${lossV}); lower lr, check the data for empty/garbage rows, or raise maxConsecutiveNonFinite`,
      );
    }
    return { loss: lossV, gradNorm: normV, lr, skipped: verdict !== 'ok' };
  }

  /**
   * One SFT-style step: {@link update} at schedule(step), then {@link endStep} with the standard log line.
   * `tokens` (non-pad tokens processed) feeds tokens/s; `extra` fields join the log line.
   */
  async trainStep(
    losses: LossClosure[],
    info: { tokens: number; extra?: Record<string, unknown> } = { tokens: 0 },
  ): Promise<StepResult> {
    const t0 = this.now();
    const u = await this.update(losses);
    const sec = Math.max(1e-9, (this.now() - t0) / 1000);
    const r: StepResult = {
      step: this.step + 1,
      loss: u.loss,
      gradNorm: u.gradNorm,
      lr: u.lr,
      skipped: u.skipped,
      tokensPerSec: info.tokens / sec,
      numTensors: tf.memory().numTensors,
    };
    const { step, loss, lr, gradNorm, tokensPerSec, numTensors } = r;
    const rec: StepRecord = { step, loss, lr, gradNorm, tokensPerSec, numTensors, ...info.extra };
    if (r.skipped) rec.skipped = true;
    this.endStep(rec, { skipped: r.skipped });
    return r;
  }

  /**
   * Counts a finished step (`record.step` must be step + 1) and writes its log line every logEvery steps, on a
   * skipped update and at the last step; updates the progress bar.
   */
  endStep(record: StepRecord, opts: { skipped?: boolean } = {}): void {
    if (record.step !== this.step + 1)
      throw new Error(`Trainer.endStep: record.step ${record.step}, expected ${this.step + 1}`);
    this.step += 1;
    const c = this.o.config;
    if (this.step % c.logEvery === 0 || opts.skipped || this.stopped || this.step === this.o.totalSteps)
      this.o.logger?.log(record);
    const { loss = Number.NaN, lr = 0, tokensPerSec = 0 } = record;
    this.o.progress?.update({ step: this.step, loss, lr, tokensPerSec });
    if (this.stopped) throw this.stopped;
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
        extra: {
          nonFiniteTotal: this.guard.total,
          nonFiniteConsecutive: this.guard.consecutive,
          microBatches: this.microBatches,
          ...extra,
        },
      },
      {
        // a LoRA run saves its PEFT adapter (the base stays the run's model), a full run every weight
        writeWeights: async (d) => {
          await saveTrainedWeights(d, model);
          await this.o.writeExtra?.(d);
        },
        keepLast: config.keepLast,
      },
    );
  }

  /**
   * Restores weights (assigned into the model's Variables), optimizer, step, rng streams and guard counters from a
   * checkpoint dir, after checking that the run's settings did not change (train/resume.ts) and before truncating
   * the step logs back to the checkpoint's step. Returns the loaded state (its `dataPosition` tells the data stream where to continue).
   */
  async resume(dir: string): Promise<LoadedTrainState> {
    const state = await loadTrainState(dir).catch((e) => {
      throw damagedCheckpointError(dir, e);
    });
    const now = this.o.resolvedConfig ?? this.o.config;
    const changed = checkResumeConfig(
      dir,
      state.resolvedConfig,
      now,
      this.o.config.allowConfigChange === true,
    );
    if (changed.length > 0)
      (this.o.info ?? console.error)(
        `resume from ${dir}: continuing with changed settings: ${changed.join('; ')}`,
      );
    await restoreTrainedWeights(this.o.model, dir, assignWeights).catch((e) => {
      throw damagedCheckpointError(dir, e);
    });
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
    this.microBatches = Number(state.extra?.microBatches ?? 0);
    // The steps after the checkpoint are run again: drop their old lines so each step is logged once.
    for (const f of [this.o.logger?.file, ...(this.o.stepLogs ?? [])]) if (f) truncateStepLog(f, state.step);
    return state;
  }

  /**
   * The run's `resume` setting applied: resumes from the resolved checkpoint (state.ts resolveResume), or, for
   * 'latest' in a run stopped before its first checkpoint, starts it again from step 0 (its log lines dropped).
   * Returns the checkpoint dir and its state, or undefined when the run starts from step 0.
   */
  async resumeFrom(
    resume: string | undefined,
    outDir: string,
  ): Promise<{ dir: string; state: LoadedTrainState } | undefined> {
    const dir = await resolveResume(resume, outDir);
    if (dir) return { dir, state: await this.resume(dir) };
    if (resume !== undefined) {
      for (const f of [this.o.logger?.file, ...(this.o.stepLogs ?? [])]) if (f) truncateStepLog(f, 0);
      (this.o.info ?? console.error)(
        `resume 'latest': ${outDir} has no complete checkpoint yet (the run stopped before its first save); starting it again from step 0`,
      );
    }
    return undefined;
  }

  /** Frees the optimizer moments (the model's params stay with the model). */
  dispose(): void {
    this.signals?.dispose();
    this.optimizer.dispose();
  }
}

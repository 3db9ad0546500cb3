// The PPO critic during RL (OVR / Open-Reasoner-Zero setting): values of the sampled completions at rollout time,
// GAE advantages and returns for the policy update (ppo_math.ts), and `updateSteps` critic optimizer steps per RL step
// on the value loss, with its own AdamW, learning rate and warm-up (ORZ: critic lr 5e-6, warm-up 50, constant). The
// critic is saved inside each policy checkpoint as `critic/` (backbone + value head + optimizer moments + step) and
// restored with it. When the policy trains a LoRA adapter the critic does too (model/value.ts `loraBackbone`): its
// own adapter on the policy's frozen base, swapped in for each forward and gradient, so only the critic adapter and the
// head train and `critic/` holds a PEFT adapter instead of full weights. The optimizer step uses the same pieces as
// train/trainer.ts (accumulateGrads, globalNorm + clipCoefficient folded into AdamW, NonFiniteGuard).
//
// Shapes: n completions in a micro-batch, Tc completion length (padded), D hidden.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { isTrainableParam as isTrainable, type TrainablePart } from '../model/trainable.js';
import { ValueModel } from '../model/value.js';
import { accumulateGrads } from './accumulate.js';
import { trainingClosures } from './lora.js';
import { AdamW, clipCoefficient, globalNorm, NonFiniteGuard } from './optim.js';
import {
  type AdvantageNorm,
  explainedVariance,
  gae,
  normalizeAdvantages,
  tokenMean,
  valueLoss,
} from './ppo_math.js';
import type { TrainRows } from './rollout.js';
import { constant, type Schedule } from './schedule.js';
import { optimizerTensors } from './state.js';

/** Critic hyperparameters (ppo_config.ts `critic` fields). */
export interface CriticSettings {
  lr: number;
  warmupSteps: number;
  updateSteps: number;
  valueClip?: number;
  maxGradNorm: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  trainable: TrainablePart;
  maxConsecutiveNonFinite: number;
  recompute: boolean;
}

/** GAE advantages and returns of a step's completions plus the critic statistics at rollout time. */
export interface PpoTargets {
  /** Normalised per-token advantages, ragged [completion][token]. */
  advantages: number[][];
  returns: number[][];
  /** Critic values at rollout time (ragged), the clipping anchor of the value loss. */
  values: number[][];
  explainedVariance: number;
  returnMean: number;
  valueMean: number;
}

/** Averaged statistics of the critic updates of one RL step. */
export interface CriticUpdate {
  valueLoss: number;
  valueClipFraction: number;
  criticGradNorm: number;
  criticLr: number;
  criticSkipped: number;
}

const SUBDIR = 'critic';
const OPTIM_FILE = 'optimizer.safetensors';
const STATE_FILE = 'critic_state.json';

/** Drops padding: row i keeps its first sum(mask[i]) entries. */
const ragged = (x: number[][], mask: number[][]): number[][] =>
  x.map((row, i) =>
    row.slice(
      0,
      mask[i].reduce((a, b) => a + b, 0),
    ),
  );
const padTo = (rows: number[][], T: number): number[][] =>
  rows.map((r) => Array.from({ length: T }, (_, t) => r[t] ?? 0));

/**
 * The critic of a PPO run: a ValueModel, its optimizer and schedule.
 * @example
 * const critic = Critic.fromPolicy(policy, settings, seed);
 * const targets = await critic.targets(microRows, rewards, { gamma: 1, lambda: 1, norm: 'batch' });
 * const upd = await critic.update(microRows, targets, rlStep);
 */
export class Critic {
  readonly optimizer: AdamW;
  readonly params: Record<string, tf.Variable>;
  readonly schedule: Schedule;
  readonly guard: NonFiniteGuard;
  /** Critic optimizer steps finished. */
  step = 0;

  constructor(
    readonly value: ValueModel,
    private readonly s: CriticSettings,
  ) {
    const named = value.backbone.named();
    // a LoRA critic trains its whole adapter (the policy's `trainable` does not apply to adapters either)
    this.params = value.backbone.adapter
      ? named
      : Object.fromEntries(Object.entries(named).filter(([k]) => isTrainable(k, s.trainable)));
    this.params['value_head.weight'] = value.head;
    let opt: AdamW | undefined;
    tf.tidy(() => {
      opt = new AdamW(this.params, { betas: s.betas, eps: s.eps, weightDecay: s.weightDecay });
    });
    this.optimizer = opt!;
    this.schedule = constant(s.lr, s.warmupSteps);
    this.guard = new NonFiniteGuard(s.maxConsecutiveNonFinite);
  }

  /** Critic initialised from the policy's current weights (OVR App. B) with a fresh head; LoRA if the policy is. */
  static fromPolicy(policy: Qwen2_5_VL, s: CriticSettings, seed = 0): Critic {
    return new Critic(ValueModel.fromPolicy(policy, seed), s);
  }

  /** Values of the completion tokens of each micro-batch (no gradient), ragged by the mask. */
  async rolloutValues(micro: readonly TrainRows[]): Promise<number[][]> {
    const out: number[][] = [];
    for (const rows of micro) {
      const v = this.value.completionValues(rows.inputs, rows.promptLen, rows.targets[0].length);
      const host = (await v.array()) as number[][];
      v.dispose();
      out.push(...ragged(host, rows.mask));
    }
    return out;
  }

  /**
   * GAE (gamma, lambda) from the rollout values and one terminal reward per completion, then advantage
   * normalisation ('batch' as ORZ, or per group of `groupSize`).
   */
  async targets(
    micro: readonly TrainRows[],
    rewards: readonly number[],
    o: { gamma: number; lambda: number; norm: AdvantageNorm; groupSize: number },
  ): Promise<PpoTargets> {
    const values = await this.rolloutValues(micro);
    const g = gae(values, rewards, { gamma: o.gamma, lambda: o.lambda });
    return {
      advantages: normalizeAdvantages(g.advantages, o.norm, o.groupSize),
      returns: g.returns,
      values,
      explainedVariance: explainedVariance(values, g.returns),
      returnMean: tokenMean(g.returns),
      valueMean: tokenMean(values),
    };
  }

  /**
   * `updateSteps` optimizer steps on the value loss over all micro-batches (gradient accumulation, each micro loss
   * normalised by the step's sequence count), lr = schedule(rlStep). `targets` rows follow the micro-batch order.
   */
  async update(micro: readonly TrainRows[], t: PpoTargets, rlStep: number): Promise<CriticUpdate> {
    const lr = this.schedule(rlStep);
    const nSeq = micro.reduce((a, r) => a + r.mask.length, 0);
    let loss = 0;
    let clip = 0;
    let norm = 0;
    let skipped = 0;
    for (let k = 0; k < this.s.updateSteps; k++) {
      let offset = 0;
      const clipParts: tf.Scalar[] = [];
      const losses = micro.map((rows) => {
        const n = rows.mask.length;
        const Tc = rows.targets[0].length;
        const ret = padTo(t.returns.slice(offset, offset + n), Tc);
        const old = padTo(t.values.slice(offset, offset + n), Tc);
        offset += n;
        return () => {
          const out = valueLoss({
            values: this.value.completionValues(rows.inputs, rows.promptLen, Tc, {
              recompute: this.s.recompute,
            }),
            oldValues: tf.tensor2d(old, [n, Tc]),
            returns: tf.tensor2d(ret, [n, Tc]),
            mask: tf.tensor2d(rows.mask, [n, Tc]),
            clip: this.s.valueClip,
            normalizer: nSeq,
          });
          clipParts.push(tf.keep(tf.mul(out.clipFraction, n / nSeq) as tf.Scalar));
          return out.loss;
        };
      });
      // LoRA: dropout keys from the critic's step (a resumed run replays the masks); the critic adapter swapped in
      const closures = trainingClosures(this.value.backbone.adapter, this.step * micro.length, losses);
      const { loss: l, grads } = this.value.backbone.run(() => accumulateGrads(closures, this.params));
      const gn = globalNorm(grads);
      try {
        const [lv, nv] = [(await l.data())[0], (await gn.data())[0]];
        const verdict = this.guard.check(nv);
        if (verdict === 'ok')
          this.optimizer.step(grads, lr, { gradScale: clipCoefficient(nv, this.s.maxGradNorm) });
        else skipped++;
        if (verdict === 'stop') {
          throw new Error(
            `critic: ${this.guard.consecutive} updates in a row had a non-finite gradient norm; lower critic.lr`,
          );
        }
        loss += lv;
        norm += nv;
        for (const c of clipParts) clip += (await c.data())[0];
      } finally {
        tf.dispose([l, gn, ...Object.values(grads), ...clipParts]);
      }
      this.step++;
    }
    const k = Math.max(this.s.updateSteps, 1);
    return {
      valueLoss: loss / k,
      valueClipFraction: clip / k,
      criticGradNorm: norm / k,
      criticLr: lr,
      criticSkipped: skipped,
    };
  }

  /** Writes `dir/critic/`: backbone (HF layout, or the PEFT adapter of a LoRA critic) + value head + moments + step. */
  async save(dir: string): Promise<string> {
    const d = path.join(dir, SUBDIR);
    await this.value.save(d);
    const st = await this.optimizer.exportState();
    await writeSafetensors(path.join(d, OPTIM_FILE), optimizerTensors(st));
    const state = { step: this.step, optimizerStep: st.step, nonFiniteTotal: this.guard.total };
    await writeFile(path.join(d, STATE_FILE), `${JSON.stringify(state)}\n`);
    return d;
  }

  /**
   * Restores a critic saved by {@link Critic.save} into this one's Variables (weights or adapter, head, moments, step).
   * @example await critic.resume('run/checkpoint-00000010');
   */
  async resume(dir: string): Promise<void> {
    const d = path.join(dir, SUBDIR);
    await this.value.restore(d).catch((e: Error) => {
      throw new Error(
        `resume: ${dir} has no usable critic/ folder (${e.message}); was it written by a GAE run?`,
      );
    });
    const tensors = await readSafetensors(path.join(d, OPTIM_FILE));
    const state = JSON.parse(await readFile(path.join(d, STATE_FILE), 'utf8'));
    const m = new Map();
    const v = new Map();
    for (const [k, t] of tensors) {
      if (k.startsWith('exp_avg_sq.')) v.set(k.slice(11), t);
      else if (k.startsWith('exp_avg.')) m.set(k.slice(8), t);
    }
    this.optimizer.importState({ step: state.optimizerStep, m, v });
    this.step = state.step;
    this.guard.total = state.nonFiniteTotal ?? 0;
  }

  /** Frees the critic model and its optimizer. */
  dispose(): void {
    this.optimizer.dispose();
    this.value.dispose();
  }
}

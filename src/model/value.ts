// The PPO critic: a scalar value head (Linear(D, 1), no bias) on the final hidden states of a language-model
// backbone initialised from the policy checkpoint. Follows Open-Reasoner-Zero `orz/ppo/models.py`
// (`_get_critic_model`: `value_head = nn.Linear(hidden_size, 1, bias=False)`, values = head(last_hidden_state);
// `get_llm_for_sequence_regression(init_value_head=True)` when the critic starts from the policy checkpoint:
// weight ~ N(0, std = 1 / (hidden_size + 1))) and the OVR paper (App. B: policy and critic both initialised from the
// cold-start model, separate weights, head without bias).
//
// Shape legend: B batch, T tokens, D hidden, Tc completion tokens.
// The value of completion token t (position p = promptLen + t) is read at hidden position p - 1: V(s_t) is the
// value of the state before the token is chosen, the same position whose logits give log pi(token).
//
// Backbones: `ValueBackbone` is what the critic needs from a language model (hidden states, trainable variables,
// save, restore, dispose). `copyBackbone(policy)` is a second full copy of the LM (the paper's setting).
// `loraBackbone(policy, adapter)` shares the policy's frozen base and computes with the critic's own LoRA adapter in
// place of the policy's (`withAdapter`, swapped in and back around each forward / gradient): the critic costs one
// adapter + head instead of a second model. Its folder is a PEFT adapter + the head.
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import { Rng } from '../util/rng.js';
import type { Qwen2_5_VLConfig } from './config.js';
import { adapterOf, type LoraAdapter, withAdapter } from './lora.js';
import { holdsAdapter, loadAdapter, restoreAdapter, saveAdapter } from './peft.js';
import { type ForwardOptions, type ModelInputs, Qwen2_5_VL } from './qwen2_5_vl.js';
import { assignWeights, saveWeights } from './weights.js';

/** Checkpoint key of the head (ORZ `value_head_prefix` + '.weight'), shape [1, D]. */
export const VALUE_HEAD_KEY = 'value_head.weight';
/** File holding the head beside the backbone's weights in a critic folder. */
export const VALUE_HEAD_FILE = 'value_head.safetensors';

/** What the critic needs from its language model. */
export interface ValueBackbone {
  readonly config: Qwen2_5_VLConfig;
  /** Last hidden state [B, T, D] (after the final norm); caller owns it. */
  hidden(inputs: ModelInputs, opts?: ForwardOptions): { hidden: tf.Tensor3D };
  /** The backbone's Variables by checkpoint name: every param of a full copy, or the critic adapter of a LoRA one. */
  named(): Record<string, tf.Variable>;
  /** The critic's own LoRA adapter on the policy's shared base (undefined for a full copy). */
  readonly adapter?: LoraAdapter;
  /** Runs synchronous `f` with the backbone's weights in place (a LoRA backbone swaps its adapter in and back). */
  run<T>(f: () => T): T;
  /** Writes the backbone (HF layout, or a PEFT adapter folder) into `dir`. */
  save(dir: string): Promise<void>;
  /** Assigns the weights saved by `save` into this backbone's Variables (their identity kept for the optimizer). */
  restore(dir: string): Promise<void>;
  dispose(): void;
}

/**
 * A full copy of the policy's weights as the critic backbone (separate Variables: training one never moves the other).
 * @example const critic = new ValueModel(copyBackbone(policy), initValueHead(D, seed));
 */
export function copyBackbone(policy: Qwen2_5_VL): ValueBackbone {
  const params = Object.fromEntries(
    Object.entries(policy.params).map(([k, t]) => [k, tf.tidy(() => tf.variable(t.clone(), true))]),
  );
  return modelBackbone(new Qwen2_5_VL(policy.config, params));
}

/** Wraps a loaded model as a critic backbone (it takes ownership). */
export function modelBackbone(model: Qwen2_5_VL): ValueBackbone {
  return {
    config: model.config,
    hidden: (inputs, opts) => model.hidden(inputs, opts),
    named: () =>
      Object.fromEntries(
        Object.entries(model.params).filter((e): e is [string, tf.Variable] => e[1] instanceof tf.Variable),
      ),
    run: (f) => f(),
    save: async (dir) => void (await saveWeights(dir, model.params, model.config, { dtype: 'F32' })),
    restore: (dir) => assignWeights(model, dir),
    dispose: () => model.dispose(),
  };
}

/**
 * A LoRA critic backbone: the policy's frozen base with `adapter` (the critic's, owned by the backbone) swapped in
 * for every forward and gradient. Only the adapter's Variables train; the policy and its adapter are never written.
 * @example const critic = new ValueModel(loraBackbone(policy, adapterOf(policy.params)!.copy()), initValueHead(D, 0));
 */
export function loraBackbone(policy: Qwen2_5_VL, adapter: LoraAdapter): ValueBackbone {
  const run = <T>(f: () => T): T => withAdapter(policy.params, adapter, f);
  return {
    config: policy.config,
    adapter,
    run,
    hidden: (inputs, opts) => run(() => policy.hidden(inputs, opts)),
    named: () => adapter.variables(),
    save: (dir) => saveAdapter(dir, adapter),
    restore: (dir) => restoreAdapter(adapter, dir, policy.config),
    dispose: () => adapter.dispose(),
  };
}

/**
 * The head as ORZ initialises it when the critic starts from the policy: weight [1, D] ~ N(0, (1 / (D + 1))^2),
 * seeded (stream `Rng(seed).split('value_head')`).
 * @example const head = initValueHead(2048, 0); // std 1/2049
 */
export function initValueHead(hiddenSize: number, seed = 0): tf.Variable {
  if (!Number.isInteger(hiddenSize) || hiddenSize < 1) {
    throw new Error(`initValueHead: hiddenSize must be a positive integer, got ${hiddenSize}`);
  }
  const rng = new Rng(seed).split('value_head');
  const std = 1 / (hiddenSize + 1);
  const data = Float32Array.from({ length: hiddenSize }, () => rng.normal() * std);
  return tf.tidy(() => tf.variable(tf.tensor2d(data, [1, hiddenSize]), true));
}

/**
 * Values `hidden [B, T, D] · w^T` -> [B, T] (no bias).
 * @example valuesFromHidden(tf.ones([1, 2, 3]), tf.tensor2d([[1, 2, 3]])) // [[6, 6]]
 */
export function valuesFromHidden(hidden: tf.Tensor3D, head: tf.Tensor2D): tf.Tensor2D {
  const [B, T, D] = hidden.shape;
  if (head.rank !== 2 || head.shape[0] !== 1 || head.shape[1] !== D) {
    throw new Error(`value head must be [1, ${D}] for hidden size ${D}, got [${head.shape}]`);
  }
  return tf.tidy(
    () => tf.reshape(tf.matMul(tf.reshape(hidden, [B * T, D]), head, false, true), [B, T]) as tf.Tensor2D,
  );
}

/** The critic: backbone + value head. Owns both (dispose frees them). */
export class ValueModel {
  constructor(
    readonly backbone: ValueBackbone,
    readonly head: tf.Variable,
  ) {
    const D = backbone.config.hidden_size;
    if (head.shape[0] !== 1 || head.shape[1] !== D) {
      throw new Error(
        `value head has shape [${head.shape}] but the backbone's hidden size is ${D}; expected [1, ${D}]`,
      );
    }
  }

  /**
   * Critic initialised from the policy (OVR App. B) with a fresh ORZ-initialised head: a full copy of its weights, or,
   * when the policy carries a LoRA adapter, a copy of that adapter on the shared base (same function at init, no
   * second model). `seed` seeds the head and the critic adapter's dropout masks.
   * @example const critic = ValueModel.fromPolicy(policy, cfg.seed);
   */
  static fromPolicy(policy: Qwen2_5_VL, seed = 0): ValueModel {
    const lora = adapterOf(policy.params);
    const backbone = lora ? loraBackbone(policy, lora.copy(seed)) : copyBackbone(policy);
    return new ValueModel(backbone, initValueHead(policy.config.hidden_size, seed));
  }

  /** Values at every position [B, T]. */
  values(inputs: ModelInputs, opts?: ForwardOptions): tf.Tensor2D {
    return tf.tidy(() =>
      valuesFromHidden(this.backbone.hidden(inputs, opts).hidden, this.head as tf.Tensor2D),
    );
  }

  /**
   * Values of the completion tokens [B, Tc]: rows are prompt (promptLen tokens, left-padded) + completion, and the
   * value of completion token t is read at position promptLen + t - 1 (the state before the token).
   */
  completionValues(inputs: ModelInputs, promptLen: number, Tc: number, opts?: ForwardOptions): tf.Tensor2D {
    if (!(promptLen >= 1)) throw new Error(`completionValues: promptLen must be >= 1, got ${promptLen}`);
    return tf.tidy(() => {
      const hidden = this.backbone.hidden(inputs, opts).hidden;
      const [B, T, D] = hidden.shape;
      if (promptLen - 1 + Tc > T) {
        throw new Error(`completionValues: promptLen ${promptLen} + Tc ${Tc} exceeds the ${T} input tokens`);
      }
      const h = tf.slice(hidden, [0, promptLen - 1, 0], [B, Tc, D]) as tf.Tensor3D;
      return valuesFromHidden(h, this.head as tf.Tensor2D);
    });
  }

  /** Variables: the backbone's (all, or without `visual.*`) plus the head. */
  variables(which: 'all' | 'text' = 'text'): tf.Variable[] {
    const named = Object.entries(this.backbone.named());
    return [
      ...named.filter(([k]) => which === 'all' || !k.startsWith('visual.')).map(([, v]) => v),
      this.head,
    ];
  }

  /** Writes the critic: the backbone's files plus `value_head.safetensors` (F32). */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await this.backbone.save(dir);
    const data = (await this.head.data()) as Float32Array;
    await writeSafetensors(path.join(dir, VALUE_HEAD_FILE), {
      [VALUE_HEAD_KEY]: { dtype: 'float32', shape: [...this.head.shape], data },
    });
  }

  /**
   * Loads a critic folder written by {@link ValueModel.save}: a full copy, or a LoRA critic (PEFT adapter + head) on
   * `base`, the policy's base model (shared, not owned).
   * @example const critic = await ValueModel.load('run/checkpoint-00000010/critic');
   */
  static async load(dir: string, base?: Qwen2_5_VL): Promise<ValueModel> {
    const head = await readHead(dir);
    let backbone: ValueBackbone | undefined;
    try {
      if (await holdsAdapter(dir)) {
        if (!base)
          throw new Error(
            `${dir} is a LoRA critic (PEFT adapter + head): pass the policy's base model to load it on`,
          );
        backbone = loraBackbone(base, await loadAdapter(dir, base.config));
      } else backbone = modelBackbone(await Qwen2_5_VL.load(dir));
      return new ValueModel(backbone, head);
    } catch (e) {
      backbone?.dispose();
      head.dispose();
      throw e;
    }
  }

  /**
   * Assigns a critic folder written by {@link ValueModel.save} into this critic's Variables (backbone + head). The
   * folder's kind (full copy or LoRA) must match this critic's; checked before anything is assigned.
   */
  async restore(dir: string): Promise<void> {
    const lora = await holdsAdapter(dir);
    if (lora !== Boolean(this.backbone.adapter)) {
      throw new Error(
        `${dir} holds a ${lora ? 'LoRA' : 'full-copy'} critic but this run's critic is ${lora ? 'a full copy' : 'LoRA'} ` +
          '(a LoRA policy gets a LoRA critic): resume with the same --lora / --adapter settings',
      );
    }
    const head = await readHead(dir);
    try {
      if (head.shape.join() !== this.head.shape.join())
        throw new Error(`${dir}: value head [${head.shape}] does not fit this critic's [${this.head.shape}]`);
      await this.backbone.restore(dir);
      this.head.assign(head);
    } finally {
      head.dispose();
    }
  }

  /** Frees the backbone and the head. */
  dispose(): void {
    this.backbone.dispose();
    this.head.dispose();
  }
}

/** The value head of a critic folder as a Variable. */
async function readHead(dir: string): Promise<tf.Variable> {
  const file = path.join(dir, VALUE_HEAD_FILE);
  if (!(await stat(file).catch(() => undefined))) {
    throw new Error(`${dir}: no ${VALUE_HEAD_FILE}; not a critic folder written by ValueModel.save`);
  }
  const f = await SafetensorsFile.open(file);
  try {
    const t = await f.read(VALUE_HEAD_KEY);
    return tf.tidy(() => tf.variable(tf.tensor(t.data as Float32Array, t.shape, 'float32'), true));
  } finally {
    await f.close();
  }
}

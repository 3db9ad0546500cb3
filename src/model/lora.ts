// LoRA adapters (Hu et al. 2021) on the linear layers of Qwen2.5-VL, as PEFT implements them: `y = W x + b +
// scale · B A dropout(x)` with A `[r, in]` Kaiming-uniform (a = √5, as nn.Linear and PEFT's `reset_lora_parameters`),
// B `[out, r]` zero, `scale = alpha / r` (or `alpha / √r` with rsLoRA), dropout on the adapter's input only.
// Mirrors peft `tuners/lora/layer.py` (`LoraLayer.update_layer`, `Linear.forward`, `get_delta_weight`) and
// `tuners/tuners_utils.py` (target matching: a module matches a target when its name equals it or ends in `.target`).
//
// The adapter rides on the model's param record under the ADAPTER symbol (layers.ts): `linear` is the only hook.
// Attaching freezes the base Variables (`trainable = false`), so recomputed layers treat them as constants and
// `variables()` of the adapter are the only tensors a trainer differentiates: no base-weight gradient is built.
// Switching `enabled` off gives the base model back (the GRPO KL reference) without a second copy of the weights.
//
// Shape legend: N rows, Din/Dout features of the adapted linear, r rank.
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { Rng } from '../util/rng.js';
import type { Qwen2_5_VLConfig } from './config.js';
import { ADAPTER, type LinearAdapter, matMulWT, type Params } from './layers.js';
import { paramShapes } from './params.js';

/** PEFT's names of the LM linears (every decoder layer). */
export const LM_TARGETS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;

/** LoRA settings (the `lora` block of SftConfig / GrpoConfig). */
export const LoraConfig = z
  .object({
    r: z.number().int().positive().default(8).describe('Rank of each adapter (PEFT r; PEFT default 8)'),
    alpha: z
      .number()
      .positive()
      .default(8)
      .describe(
        'lora_alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rslora); PEFT default 8',
      ),
    dropout: z
      .number()
      .min(0)
      .max(0.99)
      .default(0)
      .describe('Dropout on the adapter input during training (seeded; off in eval and generation)'),
    targetModules: z
      .array(z.string().min(1))
      .min(1)
      .default([...LM_TARGETS])
      .describe(
        "Module names as PEFT matches them (a module matches 'x' when its path is 'x' or ends in '.x'): " +
          'LM q_proj k_proj v_proj o_proj gate_proj up_proj down_proj; vision qkv proj gate_proj up_proj down_proj, merger.mlp.0/2',
      ),
    vision: z
      .boolean()
      .default(false)
      .describe('Also adapt matching modules of the vision tower (visual.*); default LM only'),
    rslora: z.boolean().default(false).describe('rsLoRA scaling alpha / sqrt(r) instead of alpha / r'),
  })
  .strict();
export type LoraConfig = z.infer<typeof LoraConfig>;

/** One adapted linear: module path (legacy HF name without `.weight`) and its weight's `[Dout, Din]`. */
export type LoraTarget = { module: string; in: number; out: number };

/** Modules `linear()` applies (the patch embedding is a Conv3d run as a matMul, embeddings/head are not linears). */
const LINEAR_MODULE =
  /^(model\.layers\.\d+\.(self_attn|mlp)\.\w+|visual\.blocks\.\d+\.(attn|mlp)\.\w+|visual\.merger\.mlp\.[02])$/;

/** Whether PEFT's list matching selects `module` for `target` (`module == target` or ends in `.target`). */
export const matchesTarget = (module: string, target: string): boolean =>
  module === target || module.endsWith(`.${target}`);

/**
 * Every linear a LoRA adapter can target: module path → weight shape `[Dout, Din]`, in checkpoint order.
 * @example linearModules(cfg).get('model.layers.0.self_attn.q_proj') // [hidden, hidden]
 */
export function linearModules(cfg: Qwen2_5_VLConfig): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const [name, shape] of paramShapes(cfg)) {
    if (!name.endsWith('.weight') || shape.length !== 2) continue;
    const module = name.slice(0, -'.weight'.length);
    if (LINEAR_MODULE.test(module)) out.set(module, [shape[0], shape[1]]);
  }
  return out;
}

/**
 * The adapted linears of a model for the settings, in checkpoint order. Throws when a target matches nothing.
 * @example loraTargets(cfg, LoraConfig.parse({})).length // 7 per decoder layer
 */
export function loraTargets(
  cfg: Qwen2_5_VLConfig,
  lora: Pick<LoraConfig, 'targetModules' | 'vision'>,
): LoraTarget[] {
  const out: LoraTarget[] = [];
  const used = new Set<string>();
  const all = linearModules(cfg);
  for (const [module, [dOut, dIn]] of all) {
    if (module.startsWith('visual.') && !lora.vision) continue;
    const hit = lora.targetModules.filter((t) => matchesTarget(module, t));
    if (hit.length === 0) continue;
    for (const t of hit) used.add(t);
    out.push({ module, in: dIn, out: dOut });
  }
  const unused = lora.targetModules.filter((t) => !used.has(t));
  if (unused.length > 0) {
    const names = [
      ...new Set(
        [...all.keys()].filter((m) => lora.vision || !m.startsWith('visual.')).map((m) => m.split('.').pop()),
      ),
    ];
    throw new Error(
      `lora.targetModules ${JSON.stringify(unused)} match no linear layer${lora.vision ? '' : ' of the LM (vision is off)'}; ` +
        `names available: ${names.join(', ')}${lora.vision ? '' : ' (set lora.vision true for visual.*)'}`,
    );
  }
  return out;
}

/** PEFT's scaling: `alpha / r`, or `alpha / √r` with rsLoRA. */
export const loraScale = (c: Pick<LoraConfig, 'r' | 'alpha' | 'rslora'>): number =>
  c.rslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;

/** Keys of an adapter's tensors: `<module>.lora_A.weight` `[r, Din]`, `<module>.lora_B.weight` `[Dout, r]` (PEFT minus its prefix). */
export const loraKeys = (module: string): { a: string; b: string } => ({
  a: `${module}.lora_A.weight`,
  b: `${module}.lora_B.weight`,
});

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * A set of LoRA adapters. Its tensors are Variables keyed by {@link loraKeys}; it owns them (`dispose`).
 * `training` turns dropout on; `dropoutKey` (set by the trainer per micro-batch) picks the masks, which depend only on
 * (seed, key, module), so a recomputed layer draws the same masks as its forward pass and resumes are exact.
 * @example
 * const lora = LoraAdapter.init(model.config, LoraConfig.parse({ r: 16, alpha: 32 }), 0);
 * attachAdapter(model.params, lora);           // forward now adds the adapters; the base is frozen
 * lora.enabled = false;                        // base model (e.g. KL reference); true again to train
 */
export class LoraAdapter implements LinearAdapter {
  enabled = true;
  training = false;
  dropoutKey = 0;
  readonly scale: number;

  constructor(
    readonly config: LoraConfig,
    readonly tensors: Record<string, tf.Tensor>,
    readonly seed = 0,
  ) {
    this.scale = loraScale(config);
  }

  /** PEFT's init: A ~ U(-1/√Din, 1/√Din) (Kaiming-uniform, a = √5), B = 0; each A from its own seeded stream. */
  static init(cfg: Qwen2_5_VLConfig, lora: LoraConfig, seed?: number): LoraAdapter {
    const root = new Rng(seed ?? 0).split('lora');
    const tensors: Record<string, tf.Variable> = {};
    for (const t of loraTargets(cfg, lora)) {
      const rng = root.split(t.module);
      const bound = 1 / Math.sqrt(t.in);
      const a = new Float32Array(lora.r * t.in);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
      const k = loraKeys(t.module);
      tensors[k.a] = tf.tidy(() => tf.variable(tf.tensor2d(a, [lora.r, t.in]), true));
      tensors[k.b] = tf.tidy(() => tf.variable(tf.zeros([t.out, lora.r]), true));
    }
    return new LoraAdapter(lora, tensors, seed ?? 0);
  }

  /** The adapter's tensors as Variables by key (what a trainer differentiates and AdamW updates). */
  variables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const [k, t] of Object.entries(this.tensors)) {
      if (!(t instanceof tf.Variable))
        throw new Error(`lora tensor ${k} is not a Variable, so it cannot train`);
      out[k] = t;
    }
    return out;
  }

  /** Adapted module paths, in key order. */
  modules(): string[] {
    return Object.keys(this.tensors)
      .filter((k) => k.endsWith('.lora_A.weight'))
      .map((k) => k.slice(0, -'.lora_A.weight'.length));
  }

  apply(prefix: string, x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
    if (!this.enabled) return y;
    const k = loraKeys(prefix);
    const a = this.tensors[k.a];
    if (!a) return y;
    return tf.tidy(() => {
      const xin = this.training && this.config.dropout > 0 ? this.drop(prefix, x) : x;
      const down = matMulWT(xin, a as tf.Tensor2D); // [N, r]
      const up = matMulWT(down, this.tensors[k.b] as tf.Tensor2D); // [N, Dout]
      return tf.add(y, tf.mul(up, this.scale)) as tf.Tensor2D;
    });
  }

  /** Inverted dropout with a mask fixed by (seed, dropoutKey, module). */
  private drop(prefix: string, x: tf.Tensor2D): tf.Tensor2D {
    const p = this.config.dropout;
    const seed = fnv1a(`${this.seed}:${this.dropoutKey}:${prefix}`);
    const keep = tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', seed), p), 'float32');
    return tf.mul(x, tf.mul(keep, 1 / (1 - p))) as tf.Tensor2D;
  }

  tensorsUnder(prefix: string): Record<string, tf.Tensor> {
    if (!this.enabled) return {};
    const out: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(this.tensors)) if (k.startsWith(prefix)) out[k] = t;
    return out;
  }

  rebind(replacements: Record<string, tf.Tensor>): LinearAdapter {
    const view = new LoraAdapter(this.config, { ...this.tensors, ...replacements }, this.seed);
    Object.assign(view, { enabled: this.enabled, training: this.training, dropoutKey: this.dropoutKey });
    return view;
  }

  /**
   * A separate adapter with copies of this one's tensors (new Variables) and the same settings, e.g. the PPO critic's
   * adapter initialised from the policy's. `seed` picks its dropout masks (default: this adapter's seed).
   * @example const criticLora = policyLora.copy(1);
   */
  copy(seed = this.seed): LoraAdapter {
    const tensors = Object.fromEntries(
      Object.entries(this.tensors).map(([k, t]) => [k, tf.tidy(() => tf.variable(t.clone(), true))]),
    );
    return new LoraAdapter(this.config, tensors, seed);
  }

  /** Frees the adapter's tensors. */
  dispose(): void {
    tf.dispose(Object.values(this.tensors));
  }
}

/** Sets the (non-enumerable) adapter slot of a param record. */
function putAdapter(params: Params, adapter: LinearAdapter): void {
  Object.defineProperty(params, ADAPTER, {
    value: adapter,
    enumerable: false,
    configurable: true,
    writable: true,
  });
}

/**
 * Puts `adapter` on a param record (its `linear`s add the adapter from now on) and freezes the base Variables.
 * Throws when the record already carries one. Undo with {@link detachAdapter}.
 * @example attachAdapter(model.params, LoraAdapter.init(model.config, LoraConfig.parse({}), 0));
 */
export function attachAdapter(params: Params, adapter: LoraAdapter): void {
  if (params[ADAPTER]) throw new Error('this model already carries an adapter: detach it first');
  for (const m of adapter.modules()) {
    const w = params[`${m}.weight`];
    const a = adapter.tensors[loraKeys(m).a];
    const b = adapter.tensors[loraKeys(m).b];
    if (!w) throw new Error(`adapter module ${m} is not a linear of this model`);
    if (a.shape[1] !== w.shape[1] || b.shape[0] !== w.shape[0] || a.shape[0] !== b.shape[1]) {
      throw new Error(
        `adapter ${m}: lora_A [${a.shape}] and lora_B [${b.shape}] do not fit the weight [${w.shape}] (want [r, ${w.shape[1]}] and [${w.shape[0]}, r])`,
      );
    }
  }
  putAdapter(params, adapter);
  for (const t of Object.values(params)) if (t instanceof tf.Variable) t.trainable = false;
}

/** The adapter a param record carries, if it is a LoRA adapter. */
export function adapterOf(params: Params): LoraAdapter | undefined {
  const a = params[ADAPTER];
  return a instanceof LoraAdapter ? a : undefined;
}

/** Removes the adapter from a param record (not disposed: the caller owns it) and unfreezes the base. */
export function detachAdapter(params: Params): LoraAdapter | undefined {
  const a = adapterOf(params);
  delete params[ADAPTER];
  if (a) for (const t of Object.values(params)) if (t instanceof tf.Variable) t.trainable = true;
  return a;
}

/**
 * Runs `f` with the adapter switched off (the base model), restoring the previous state even when `f` throws.
 * @example const refLogprobs = withAdapterOff(model.params, () => model.tokenLogprobs(inputs, targets));
 */
export function withAdapterOff<T>(params: Params, f: () => T): T {
  const a = adapterOf(params);
  if (!a) return f();
  const was = a.enabled;
  a.enabled = false;
  try {
    return f();
  } finally {
    a.enabled = was;
  }
}

/**
 * Runs `f` with `adapter` in place of the adapter the record carries (e.g. the PPO critic's adapter on the policy's
 * frozen base), then puts the previous one back (or none, unfreezing the base as {@link detachAdapter}), also when `f`
 * throws. `f` must be synchronous: across an `await` other code would see the swapped adapter.
 * @example const v = withAdapter(policy.params, criticLora, () => policy.hidden(inputs).hidden);
 */
export function withAdapter<T>(params: Params, adapter: LoraAdapter, f: () => T): T {
  const prev = params[ADAPTER];
  if (prev === adapter) return f();
  delete params[ADAPTER];
  try {
    attachAdapter(params, adapter);
  } catch (e) {
    if (prev) putAdapter(params, prev);
    throw e;
  }
  let out: T;
  try {
    out = f();
  } finally {
    if (prev) putAdapter(params, prev);
    else detachAdapter(params);
  }
  if (out instanceof Promise) throw new Error('withAdapter: f must be synchronous (it returned a Promise)');
  return out;
}

/**
 * Folds the adapter into the base weights in place: `W += scale · B A` (PEFT `merge_and_unload`).
 * The adapter is detached afterwards (the caller still owns and disposes it).
 * @example mergeAdapter(model.params); await saveWeights(out, model.params, model.config);
 */
export function mergeAdapter(params: Params): void {
  const a = adapterOf(params);
  if (!a) throw new Error('mergeAdapter: the model carries no LoRA adapter');
  detachAdapter(params);
  for (const m of a.modules()) {
    const k = loraKeys(m);
    const w = params[`${m}.weight`] as tf.Variable;
    tf.tidy(() => {
      const delta = tf.matMul(a.tensors[k.b] as tf.Tensor2D, a.tensors[k.a] as tf.Tensor2D); // [Dout, Din]
      w.assign(tf.add(w, tf.mul(delta, a.scale)));
    });
  }
}

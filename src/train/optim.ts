// AdamW with decoupled weight decay, the global norm and clip coefficient, and a non-finite guard (the Trainer's
// accumulate -> clip -> guard -> AdamW path is trainer.ts).
// Mirrors torch.optim.AdamW (Loshchilov & Hutter): the decay multiplies the weight by (1 - lr*wd) before the Adam
// update, and bias correction divides m and v by (1 - beta^t). tfjs's built-in Adam has neither a per-step lr nor
// decoupled decay, so we keep our own moments as tf.Variables.
// NOTE: sums over many tensors use pairwise tf.add, never tf.addN with many inputs (webgpu bug in 4.22).
import * as tf from '@tensorflow/tfjs-core';
import { newWasmTensor, ownedWasmView } from '../backend/wasm.js';

/** Gradients (or any tensors) by parameter name. */
export type TensorMap = Record<string, tf.Tensor>;

/** Host copy of one tensor, as written to safetensors. */
export interface HostF32Tensor {
  dtype: 'float32';
  shape: number[];
  data: Float32Array;
}

/** Optimizer state on the host, for checkpoints: step count and first/second moments by parameter name. */
export interface AdamWState {
  step: number;
  m: Map<string, HostF32Tensor>;
  v: Map<string, HostF32Tensor>;
}

/** Options of {@link AdamW}. */
export interface AdamWOptions {
  /** Moment decay rates (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** Added to sqrt(v_hat) (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Parameter names for which weight decay is skipped (default: {@link noDecayDefault}). */
  noDecay?: (name: string) => boolean;
}

/**
 * Default no-decay rule: biases, norm weights and the token embedding (HF Qwen2.5-VL names; in the tied 3B model that
 * is also the LM head). The vision patch embedding is a projection and is decayed.
 * @example
 * noDecayDefault('model.layers.0.input_layernorm.weight'); // true
 * noDecayDefault('model.layers.0.mlp.up_proj.weight');     // false
 */
export function noDecayDefault(name: string): boolean {
  return /\.bias$|norm|embed_tokens|\.ln_q\./i.test(name);
}

/** Options of one {@link AdamW.step}. */
export interface AdamWStepOptions {
  /**
   * Multiply every gradient by this before the update (default 1): pass {@link clipCoefficient} to clip by the
   * global norm without a scaled copy of every gradient.
   */
  gradScale?: number;
}

/**
 * AdamW over a record of tf.Variables. The learning rate is passed to every `step` so any schedule works.
 * @example
 * const opt = new AdamW(params, { weightDecay: 0.1 });
 * opt.step(grads, schedule(opt.stepCount)); // caller still owns and disposes `grads`
 * opt.dispose();
 */
export class AdamW {
  /** Number of updates applied so far (t in the bias correction is stepCount after the update). */
  stepCount = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly noDecay: (name: string) => boolean;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: Record<string, tf.Variable>,
    opts: AdamWOptions = {},
  ) {
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.noDecay = opts.noDecay ?? noDecayDefault;
    for (const b of [this.beta1, this.beta2]) {
      if (!(b >= 0 && b < 1))
        throw new Error(`AdamW: betas must be in [0, 1), got [${this.beta1}, ${this.beta2}]`);
    }
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be >= 0, got ${this.weightDecay}`);
    // tf.variable(t) keeps `t` alive as a second tracked tensor: build the zeros inside tidy so only the
    // variables (which tidy never frees) survive.
    tf.tidy(() => {
      for (const [name, p] of Object.entries(params)) {
        this.m.set(name, tf.variable(tf.zeros(p.shape), false, `adamw.m.${name}.${uid()}`));
        this.v.set(name, tf.variable(tf.zeros(p.shape), false, `adamw.v.${name}.${uid()}`));
      }
    });
  }

  /**
   * One update with learning rate `lr`. Parameters missing from `grads` are left untouched (no decay either, as in
   * torch when `p.grad is None`). Does not dispose `grads`.
   */
  step(grads: TensorMap, lr: number, opts: AdamWStepOptions = {}): void {
    if (!Number.isFinite(lr) || lr < 0)
      throw new Error(`AdamW.step: lr must be a finite number >= 0, got ${lr}`);
    const scale = opts.gradScale ?? 1;
    if (!(Number.isFinite(scale) && scale >= 0))
      throw new Error(`AdamW.step: gradScale must be a finite number >= 0, got ${scale}`);
    for (const [name, g] of Object.entries(grads)) {
      const p = this.params[name];
      if (!p)
        throw new Error(
          `AdamW.step: gradient for '${name}' but no such parameter; known: ${firstKeys(this.params)}`,
        );
      if (!sameShape(p.shape, g.shape)) {
        throw new Error(
          `AdamW.step: gradient '${name}' has shape [${g.shape}] but the parameter is [${p.shape}]`,
        );
      }
    }
    this.stepCount += 1;
    const t = this.stepCount;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    for (const [name, g] of Object.entries(grads)) {
      const wd = this.noDecay(name) ? 0 : this.weightDecay;
      this.update(this.params[name], this.m.get(name)!, this.v.get(name)!, g, { lr, wd, bc1, bc2, scale });
    }
  }

  /**
   * Fused update on wasm: one pass reading p, m, v, g that writes m and v in place (only this optimizer holds
   * them) and the new p into a fresh buffer that p is then assigned (a parameter is a matMul weight: XNNPACK
   * caches packed weights by tensor id, so it must not change in place). Other backends: three small tidies.
   */
  private update(p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, k: UpdateConsts): void {
    if (g.dtype === 'float32' && p.dtype === 'float32' && tf.getBackend() === 'wasm') {
      const out = newWasmTensor([...p.shape]);
      const be = tf.backend() as unknown as { typedArrayFromHeap(t: tf.Tensor): Float32Array };
      // Views after the allocation (a heap growth detaches older views).
      const [ov, mv, vv] = out ? [ownedWasmView(out), ownedWasmView(m), ownedWasmView(v)] : [];
      if (out && ov && mv && vv) {
        this.fusedLoop(be.typedArrayFromHeap(p), mv, vv, be.typedArrayFromHeap(g), ov, k);
        p.assign(out);
        out.dispose();
        return;
      }
      out?.dispose();
    }
    this.updateOps(p, m, v, g, k);
  }

  /**
   * `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²` in place and `out ← p (1 − lr·wd) − lr m̂ / (√v̂ + eps)`, with
   * `g` scaled by `k.scale` (arithmetic in float64, stored as float32).
   */
  private fusedLoop(
    p: Float32Array,
    m: Float32Array,
    v: Float32Array,
    g: Float32Array,
    out: Float32Array,
    k: UpdateConsts,
  ): void {
    const { beta1: b1, beta2: b2, eps } = this;
    const [c1, c2, s] = [1 - b1, 1 - b2, k.scale];
    const decay = 1 - k.lr * k.wd;
    const step = k.lr / k.bc1;
    const rbc2 = 1 / k.bc2;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * s;
      const mi = b1 * m[i] + c1 * gi;
      const vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      out[i] = p[i] * decay - (step * mi) / (Math.sqrt(vi * rbc2) + eps);
    }
  }

  /** The same update with tf ops (any backend): m, then v, then p, each in its own tidy (≤ 3 temporaries). */
  private updateOps(p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, k: UpdateConsts): void {
    const gs = (): tf.Tensor => {
      const g32 = tf.cast(g, 'float32');
      return k.scale === 1 ? g32 : tf.mul(g32, k.scale);
    };
    tf.tidy(() => m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(gs(), 1 - this.beta1))));
    tf.tidy(() => v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gs()), 1 - this.beta2))));
    // p <- p * (1 - lr*wd) - lr * m_hat / (sqrt(v_hat) + eps)
    tf.tidy(() => {
      const denom = tf.add(tf.sqrt(tf.div(v, k.bc2)), this.eps);
      const upd = tf.mul(tf.div(m, denom), k.lr / k.bc1);
      const decayed = k.wd > 0 ? tf.mul(p, 1 - k.lr * k.wd) : p;
      p.assign(tf.sub(decayed, upd));
    });
  }

  /** Copies step, m and v to the host (for checkpoints). */
  async exportState(): Promise<AdamWState> {
    const read = async (vars: Map<string, tf.Variable>) => {
      const out = new Map<string, HostF32Tensor>();
      for (const [name, x] of vars) {
        out.set(name, { dtype: 'float32', shape: [...x.shape], data: (await x.data()) as Float32Array });
      }
      return out;
    };
    return { step: this.stepCount, m: await read(this.m), v: await read(this.v) };
  }

  /** Restores a state from {@link exportState}; names and shapes must match the parameters exactly. */
  importState(state: AdamWState): void {
    const names = [...this.m.keys()];
    for (const [label, src] of [
      ['m', state.m],
      ['v', state.v],
    ] as const) {
      const missing = names.filter((n) => !src.has(n));
      const extra = [...src.keys()].filter((n) => !this.m.has(n));
      if (missing.length || extra.length) {
        throw new Error(
          `AdamW.importState: ${label} does not match the parameters (missing: ${missing.slice(0, 5).join(', ') || '-'}; ` +
            `unexpected: ${extra.slice(0, 5).join(', ') || '-'}); was the checkpoint saved with the same 'trainable'?`,
        );
      }
      for (const n of names) {
        const h = src.get(n)!;
        const want = this.m.get(n)!.shape;
        if (!sameShape(h.shape, want)) {
          throw new Error(
            `AdamW.importState: ${label}['${n}'] has shape [${h.shape}], parameter is [${want}]`,
          );
        }
      }
    }
    for (const n of names) {
      tf.tidy(() => {
        this.m.get(n)!.assign(tf.tensor(state.m.get(n)!.data, state.m.get(n)!.shape, 'float32'));
        this.v.get(n)!.assign(tf.tensor(state.v.get(n)!.data, state.v.get(n)!.shape, 'float32'));
      });
    }
    this.stepCount = state.step;
  }

  /** Frees the moment variables (not the parameters). */
  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

interface UpdateConsts {
  lr: number;
  wd: number;
  bc1: number;
  bc2: number;
  scale: number;
}

let uidCounter = 0;
/** Variable names must be unique per engine; several optimizers may coexist in tests. */
function uid(): number {
  uidCounter += 1;
  return uidCounter;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function firstKeys(r: Record<string, unknown>): string {
  const k = Object.keys(r);
  return k.slice(0, 5).join(', ') + (k.length > 5 ? `, ... (${k.length} total)` : '');
}

/**
 * Sum of tensors by pairwise tf.add (a balanced tree), never tf.addN. Call inside tf.tidy.
 * @example
 * tf.tidy(() => sumPairwise([a, b, c])); // a + b + c
 */
export function sumPairwise(xs: tf.Tensor[]): tf.Tensor {
  if (xs.length === 0) throw new Error('sumPairwise: no tensors to sum');
  let level = xs;
  while (level.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < level.length; i += 2)
      next.push(i + 1 < level.length ? tf.add(level[i], level[i + 1]) : level[i]);
    level = next;
  }
  return level[0];
}

/**
 * Global L2 norm over all gradients, as a float32 scalar the caller owns. NaN/Inf in any gradient makes it non-finite.
 * @example
 * const n = globalNorm({ a: tf.tensor([3]), b: tf.tensor([4]) }); // 5
 */
export function globalNorm(grads: TensorMap): tf.Scalar {
  const gs = Object.values(grads);
  if (gs.length === 0) throw new Error('globalNorm: no gradients (is every parameter frozen?)');
  // One tidy per gradient: only its scalar sum survives (never a squared copy of every gradient at once).
  return tf.tidy(
    () =>
      tf.sqrt(
        sumPairwise(gs.map((g) => tf.tidy(() => tf.sum(tf.square(tf.cast(g, 'float32')))))),
      ) as tf.Scalar,
  );
}

/**
 * The factor torch.nn.utils.clip_grad_norm_ multiplies every gradient by: `maxNorm / (norm + 1e-6)` capped at 1,
 * and 1 when `maxNorm <= 0` (clipping off). Pass it as `AdamW.step(grads, lr, { gradScale })` to clip without
 * a scaled copy of the gradients.
 * @example clipCoefficient(5, 1) // 0.19999996
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!Number.isFinite(maxNorm)) throw new Error(`clipCoefficient: maxNorm must be finite, got ${maxNorm}`);
  if (maxNorm <= 0) return 1;
  return Math.min(maxNorm / (norm + 1e-6), 1);
}

/**
 * Counts consecutive non-finite steps (NaN/Inf gradient norm): `'ok'` applies the step, `'skip'` drops it, `'stop'`
 * means `maxConsecutive` bad steps in a row and the run should end.
 * @example
 * const guard = new NonFiniteGuard(5);
 * if (guard.check(await norm.data()[0]) !== 'ok') ...
 */
export class NonFiniteGuard {
  consecutive = 0;
  total = 0;
  constructor(readonly maxConsecutive: number) {
    if (!Number.isInteger(maxConsecutive) || maxConsecutive < 1) {
      throw new Error(`NonFiniteGuard: maxConsecutive must be an integer >= 1, got ${maxConsecutive}`);
    }
  }

  check(norm: number): 'ok' | 'skip' | 'stop' {
    if (Number.isFinite(norm)) {
      this.consecutive = 0;
      return 'ok';
    }
    this.consecutive += 1;
    this.total += 1;
    return this.consecutive >= this.maxConsecutive ? 'stop' : 'skip';
  }
}

// Building blocks shared by the vision tower and the language model: Linear, RMSNorm, SwiGLU MLP,
// exact GELU and a row gather whose gradient is a scatter-add (portable to backends without
// UnsortedSegmentSum, e.g. wasm). Mirrors HF qwen2_5_vl: Qwen2RMSNorm, Qwen2_5_VLMLP, Qwen2MLP.
//
// Shape legend: N rows (tokens or patches), Din/Dout features, I MLP width, V vocabulary rows.
// Params are a flat record keyed by HF names; functions take the prefix (`model.layers.0.mlp`).
import * as tf from '@tensorflow/tfjs-core';

/**
 * Where a param record carries an adapter (LoRA, model/lora.ts): a symbol key, so `Object.keys/entries/values` of the
 * record (save, trainable selection, dispose) only ever see the base tensors.
 */
export const ADAPTER: unique symbol = Symbol('ovr.adapter');

/** An extra path added to `linear` outputs (LoRA). `linear` is its only hook into the forward. */
export interface LinearAdapter {
  /** `y` plus this adapter's term for the linear at `prefix` applied to `x [N, Din]`; `y` itself when it has none. */
  apply(prefix: string, x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D;
  /** This adapter's tensors whose module path starts with `prefix` (inputs of a recomputed layer's gradient). */
  tensorsUnder(prefix: string): Record<string, tf.Tensor>;
  /** The same adapter computing with `replacements` (same keys as `tensorsUnder`) in place of its own tensors. */
  rebind(replacements: Record<string, tf.Tensor>): LinearAdapter;
  /** Frees the adapter's tensors. */
  dispose(): void;
}

/** Flat parameter record keyed by legacy HF names (`model.norm.weight`, `visual.blocks.0.attn.qkv.bias`). */
export type Params = Record<string, tf.Tensor> & { [ADAPTER]?: LinearAdapter };

/** Fetch `params[key]`, with an error naming the key when it is missing. */
export function param(params: Params, key: string): tf.Tensor {
  const t = params[key];
  if (t === undefined)
    throw new Error(`missing parameter "${key}"; load a checkpoint that has it or use initWeights`);
  return t;
}

/**
 * `x [N, K] · W[O, K]^T` → `[N, O]`. When the weight outweighs x plus the output (`N·(K+O) < O·K`, e.g. decoding),
 * it is computed as `(W · x^T)^T`: the same dot products, but no transposed copy of the big operand.
 * NOTE: tfjs-wasm only reaches XNNPACK without transpose flags, so a transposed weight is copied on every call
 * (the LM head: 660 ms vs 90 ms per decode step at V=151936, D=256).
 * @example matMulWT(hidden2d, params['lm_head.weight']) // [N, V]
 */
export function matMulWT(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [N, K] = x.shape;
  const O = w.shape[0];
  if (N * (K + O) < O * K) return tf.tidy(() => tf.transpose(tf.matMul(w, x, false, true)) as tf.Tensor2D);
  return tf.matMul(x, w, false, true);
}

/**
 * `y = x W^T + b` for 2-D `x [N, Din]`, `W [Dout, Din]` (PyTorch layout), optional `b [Dout]`.
 * @example linear(params, 'model.layers.0.self_attn.q_proj', x2d, true) // [N, Dout]
 */
export function linear(params: Params, prefix: string, x: tf.Tensor, bias: boolean): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    const y = matMulWT(x as tf.Tensor2D, param(params, `${prefix}.weight`) as tf.Tensor2D);
    const out = bias ? (tf.add(y, param(params, `${prefix}.bias`)) as tf.Tensor2D) : y;
    const adapter = params[ADAPTER];
    return adapter ? adapter.apply(prefix, x as tf.Tensor2D, out) : out;
  });
}

/**
 * Qwen2RMSNorm over the last axis: `w * x / sqrt(mean(x²) + eps)`.
 * @example rmsNorm(x /*[N, D]*\/, params['model.norm.weight'], 1e-6)
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(weight, tf.mul(x, tf.rsqrt(tf.add(variance, eps))));
  });
}

/** SiLU `x * sigmoid(x)`. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** Exact (erf) GELU, `0.5 x (1 + erf(x / √2))`, as torch `nn.functional.gelu`. */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/**
 * SwiGLU MLP `down(silu(gate(x)) * up(x))` on `x [N, D]`; `bias` true for the vision tower, false for the LM.
 * @example swiglu(params, 'visual.blocks.0.mlp', x, true)
 */
export function swiglu(params: Params, prefix: string, x: tf.Tensor, bias: boolean): tf.Tensor2D {
  return tf.tidy(() => {
    const gate = silu(linear(params, `${prefix}.gate_proj`, x, bias));
    const up = linear(params, `${prefix}.up_proj`, x, bias);
    return linear(params, `${prefix}.down_proj`, tf.mul(gate, up), bias);
  });
}

/**
 * Rows `x[idx]` of a 2-D tensor (`idx` may repeat). Forward is `tf.gather`; the gradient is a
 * scatter-add (`scatterND`), which every backend has, instead of tfjs' UnsortedSegmentSum.
 * @example gatherRows(embedTokens /*[V, D]*\/, [5, 5, 7]) // [3, D]
 */
export function gatherRows(x: tf.Tensor, idx: number[] | Int32Array): tf.Tensor2D {
  const rows = x.shape[0];
  for (const i of idx) {
    if (!(Number.isInteger(i) && i >= 0 && i < rows)) {
      throw new Error(`gatherRows: index ${i} out of range [0, ${rows}); check token ids against vocab_size`);
    }
  }
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const index = tf.tensor1d(Int32Array.from(idx), 'int32');
    save([index]);
    return {
      value: tf.gather(input, index),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.scatterND(tf.expandDims(saved[0], 1), dy, input.shape),
    };
  });
  return op(x) as tf.Tensor2D;
}

// Qwen2.5-VL language model: token embeddings with image features spliced in, Qwen2 decoder layers
// (pre-norm, GQA with q/k/v biases, M-RoPE), final norm and the (tied or untied) LM head.
// Mirrors HF qwen2_5_vl 4.50: Qwen2_5_VLDecoderLayer, Qwen2_5_VLAttention (eager), Qwen2MLP,
// Qwen2_5_VLModel.forward (masked scatter of image embeds), lm_head (spec §4, §5).
//
// Shape legend: B batch, T new tokens, S keys (past + new), D hidden, H heads, Hkv kv heads, Dh head dim,
// I MLP width, V vocab rows, M image feature rows.
import * as tf from '@tensorflow/tfjs-core';
import { gqaAttention } from './attention.js';
import type { Qwen2_5_VLConfig } from './config.js';
import { ADAPTER, gatherRows, linear, matMulWT, type Params, param, rmsNorm, swiglu } from './layers.js';
import { applyRotary, mropeCosSin, ropeInvFreq } from './rope.js';
import type { Trace } from './vision.js';

/** Keys and values of one layer after rope, `[B, Hkv, S, Dh]`. */
export type LayerKV = { k: tf.Tensor4D; v: tf.Tensor4D };

/** Text rope tables broadcastable over heads: `[B, 1, T, Dh]`. */
export type RopeTables = { cos: tf.Tensor4D; sin: tf.Tensor4D };

/**
 * M-RoPE cos/sin tensors from 3-stream positions `[3][B][T]`.
 * @example const rope = ropeTables(cfg, getRopeIndex(ids, mask, null, cfg).positionIds)
 */
export function ropeTables(cfg: Qwen2_5_VLConfig, positionIds: number[][][]): RopeTables {
  const Dh = cfg.hidden_size / cfg.num_attention_heads;
  const { cos, sin, shape } = mropeCosSin(positionIds, ropeInvFreq(Dh, cfg.rope_theta), cfg.mrope_section);
  const s: [number, number, number, number] = [shape[0], 1, shape[1], shape[2]];
  return { cos: tf.tensor4d(cos, s), sin: tf.tensor4d(sin, s) };
}

/**
 * `embed_tokens(inputIds)` `[B, T, D]` with the rows of `<|image_pad|>` overwritten, in flattened (b, t) order,
 * by `imageFeatures [M, D]`. Throws when the pad count and M differ, naming both.
 * @example embedInputs(params, cfg, [[151652, 151655, 151653]], feats /*[1, D]*\/)
 */
export function embedInputs(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  inputIds: number[][],
  imageFeatures?: tf.Tensor2D | null,
): tf.Tensor3D {
  const B = inputIds.length;
  const T = inputIds[0]?.length ?? 0;
  if (inputIds.some((r) => r.length !== T))
    throw new Error('inputIds rows must all have the same length (pad them)');
  const flat = inputIds.flat();
  const pads = flat.reduce((n, id) => n + (id === cfg.image_token_id ? 1 : 0), 0);
  const rows = imageFeatures ? imageFeatures.shape[0] : 0;
  if (pads !== rows) {
    throw new Error(
      `image features and image tokens do not match: ${pads} <|image_pad|> tokens (id ${cfg.image_token_id}) but ${rows} feature rows; expand each image to prod(grid_thw)/4 pads`,
    );
  }
  return tf.tidy(() => {
    const embeds = gatherRows(param(params, 'model.embed_tokens.weight'), flat);
    if (!imageFeatures || rows === 0) return tf.reshape(embeds, [B, T, cfg.hidden_size]);
    let k = 0;
    const index = flat.map((id, p) => (id === cfg.image_token_id ? B * T + k++ : p));
    const spliced = gatherRows(tf.concat([embeds, imageFeatures], 0), index);
    return tf.reshape(spliced, [B, T, cfg.hidden_size]);
  });
}

/** Heads view: `[B*T, n*Dh]` → `[B, n, T, Dh]`. */
function toHeads(x: tf.Tensor, B: number, T: number, n: number, Dh: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, T, n, Dh]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/**
 * Self-attention of layer i on normed `x [B*T, D]`; appends to `past` when given. Returns `[B*T, D]` and the new k/v.
 * @example selfAttention(params, cfg, 0, normed, B, T, rope, mask)
 */
export function selfAttention(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  i: number,
  x: tf.Tensor2D,
  shape: [number, number],
  rope: RopeTables,
  mask: tf.Tensor4D,
  past?: LayerKV,
): { out: tf.Tensor2D; kv: LayerKV } {
  const [B, T] = shape;
  const { num_attention_heads: H, num_key_value_heads: Hkv, hidden_size: D } = cfg;
  const Dh = D / H;
  const p = `model.layers.${i}.self_attn`;
  const q = applyRotary(
    toHeads(linear(params, `${p}.q_proj`, x, true), B, T, H, Dh),
    rope.cos,
    rope.sin,
  ) as tf.Tensor4D;
  let k = applyRotary(
    toHeads(linear(params, `${p}.k_proj`, x, true), B, T, Hkv, Dh),
    rope.cos,
    rope.sin,
  ) as tf.Tensor4D;
  let v = toHeads(linear(params, `${p}.v_proj`, x, true), B, T, Hkv, Dh);
  if (past) {
    k = tf.concat([past.k, k], 2);
    v = tf.concat([past.v, v], 2);
  }
  const attn = tf.reshape(gqaAttention(q, k, v, mask), [B * T, D]);
  return { out: linear(params, `${p}.o_proj`, attn, false), kv: { k, v } };
}

/**
 * One pre-norm decoder layer on `x [B, T, D]`: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.
 * @example const { out, kv } = decoderLayer(params, cfg, 0, x, rope, mask);
 */
export function decoderLayer(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  i: number,
  x: tf.Tensor3D,
  rope: RopeTables,
  mask: tf.Tensor4D,
  past?: LayerKV,
): { out: tf.Tensor3D; kv: LayerKV } {
  return tf.tidy(() => {
    const [B, T, D] = x.shape;
    const p = `model.layers.${i}`;
    const x2 = tf.reshape(x, [B * T, D]) as tf.Tensor2D;
    const normed = rmsNorm(x2, param(params, `${p}.input_layernorm.weight`), cfg.rms_norm_eps) as tf.Tensor2D;
    const attn = selfAttention(params, cfg, i, normed, [B, T], rope, mask, past);
    const h = tf.add(x2, attn.out);
    const mlpIn = rmsNorm(h, param(params, `${p}.post_attention_layernorm.weight`), cfg.rms_norm_eps);
    const out = tf.reshape(tf.add(h, swiglu(params, `${p}.mlp`, mlpIn, false)), [B, T, D]) as tf.Tensor3D;
    return { out, kv: attn.kv };
  });
}

/**
 * Decoder layer whose activations are recomputed in the backward pass (`tf.customGrad`): only the layer
 * input is kept, and the gradients equal the plain layer's. No KV cache (training only). Frozen params
 * (Variables with `trainable` false, e.g. the base under LoRA) are constants of the recomputation, so no gradient
 * of theirs is computed; the adapter's tensors of the layer are inputs like the layer's trainable params.
 */
export function recomputedLayer(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  i: number,
  x: tf.Tensor3D,
  rope: RopeTables,
  mask: tf.Tensor4D,
): tf.Tensor3D {
  const prefix = `model.layers.${i}.`;
  const frozen = (t: tf.Tensor): boolean => t instanceof tf.Variable && !t.trainable;
  const names = Object.keys(params).filter((k) => k.startsWith(prefix) && !frozen(params[k]));
  const adapter = params[ADAPTER];
  const extra = adapter ? adapter.tensorsUnder(prefix) : {};
  const extraNames = Object.keys(extra);
  const run = (xs: tf.Tensor[]): tf.Tensor3D => {
    const local: Params = { ...params };
    names.forEach((n, j) => {
      local[n] = xs[4 + j];
    });
    const bound: Record<string, tf.Tensor> = {};
    extraNames.forEach((n, j) => {
      bound[n] = xs[4 + names.length + j];
    });
    if (adapter) local[ADAPTER] = adapter.rebind(bound);
    const r = { cos: xs[1] as tf.Tensor4D, sin: xs[2] as tf.Tensor4D };
    const { out, kv } = decoderLayer(local, cfg, i, xs[0] as tf.Tensor3D, r, xs[3] as tf.Tensor4D);
    tf.dispose([kv.k, kv.v]);
    return out;
  };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const inputs = args as tf.Tensor[];
    save(inputs);
    return {
      value: run(inputs),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        nestedGrads((...xs: tf.Tensor[]) => run(xs), saved, dy),
    };
  });
  const inputs = [
    x,
    rope.cos,
    rope.sin,
    mask,
    ...names.map((n) => params[n]),
    ...extraNames.map((n) => extra[n]),
  ];
  return op(...inputs) as tf.Tensor3D;
}

/**
 * `tf.grads` called from inside a backward pass. NOTE: tfjs keeps one global tape; a nested `tf.grads` during
 * backprop would replace the outer tape and then null it. We park the outer tape, let the inner call use and free
 * its own (so the recomputed activations die right after this layer's backward), then restore the outer one.
 */
function nestedGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = tf.engine().state;
  const outerTape = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outerTape;
  }
}

export interface TextForwardOptions {
  /** Per-layer k/v of earlier slots (decoding); the result's `present` extends them. */
  past?: LayerKV[];
  /** Recompute each layer's activations in backward (training memory saver; ignored with `past`). */
  recompute?: boolean;
  /** Records `text.layer{i}_out` and `text.last_hidden_state` clones (parity tests). */
  trace?: Trace;
}

/**
 * Decoder stack + final norm: `embeds [B, T, D]` → last hidden state `[B, T, D]` and per-layer k/v (`present`).
 * @example const { hidden } = textForward(params, cfg, embeds, ropeTables(cfg, pos), causalMask(mask, T, 0));
 */
export function textForward(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  embeds: tf.Tensor3D,
  rope: RopeTables,
  mask: tf.Tensor4D,
  opts: TextForwardOptions = {},
): { hidden: tf.Tensor3D; present: LayerKV[] } {
  const { past, recompute, trace } = opts;
  if (past && past.length !== cfg.num_hidden_layers) {
    throw new Error(`past has ${past.length} layers, the model has ${cfg.num_hidden_layers}`);
  }
  return tf.tidy(() => {
    let x = embeds;
    const present: LayerKV[] = [];
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      if (recompute && !past) {
        x = recomputedLayer(params, cfg, i, x, rope, mask);
      } else {
        const r = decoderLayer(params, cfg, i, x, rope, mask, past?.[i]);
        x = r.out;
        present.push(r.kv);
      }
      trace?.set(`text.layer${i}_out`, tf.keep(x.clone()));
    }
    const hidden = rmsNorm(x, param(params, 'model.norm.weight'), cfg.rms_norm_eps) as tf.Tensor3D;
    trace?.set('text.last_hidden_state', tf.keep(hidden.clone()));
    return { hidden, present };
  });
}

/** The LM head weight `[V, D]`: `lm_head.weight`, or `model.embed_tokens.weight` when tied. */
export function lmHeadWeight(params: Params, cfg: Qwen2_5_VLConfig): tf.Tensor2D {
  const key = cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return param(params, key) as tf.Tensor2D;
}

/**
 * Logits `hidden [B, T, D] · W^T` → `[B, T, V]`.
 * @example const logits = lmLogits(params, cfg, hidden);
 */
export function lmLogits(params: Params, cfg: Qwen2_5_VLConfig, hidden: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, T, D] = hidden.shape;
    const w = lmHeadWeight(params, cfg);
    return tf.reshape(matMulWT(tf.reshape(hidden, [B * T, D]) as tf.Tensor2D, w), [
      B,
      T,
      w.shape[0],
    ]) as tf.Tensor3D;
  });
}

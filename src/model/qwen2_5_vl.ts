// Qwen2.5-VL for conditional generation: vision tower + image splice + language model + head, with
// KV-cache decoding. Mirrors HF qwen2_5_vl 4.50: Qwen2_5_VLForConditionalGeneration.forward (incl. the
// rope-delta branch for cached decoding) and Qwen2_5_VLModel.get_rope_index (spec §3–§5).
//
// Shape legend: B batch, T new tokens, S = cached + new slots, D hidden, V vocab rows, N patches, M = N/4.
//
// Usage (call `await initBackend()` from src/backend first: it picks the backend and registers tfjs gradients):
//   const model = await Qwen2_5_VL.load('models/qwen2.5-vl-3b');        // config.json + safetensors (1 or n shards)
//   const { logits, ropeDeltas } = model.forward({ inputIds, attentionMask, pixelValues, imageGridThw });
//   // greedy decoding with a KV cache: prefill, then one token per step
//   const cache = new KVCache();
//   let out = model.forward({ inputIds, attentionMask, pixelValues, imageGridThw }, { cache, lastOnly: true });
//   for (let s = 0; s < 8; s++) {
//     const best = tf.argMax(out.logits, -1);                                   // [B, 1]
//     const next = (await best.array()) as number[][];
//     tf.dispose([best, out.logits]);
//     out = model.forward({ inputIds: next }, { cache });                      // positions = cache.length + ropeDelta
//   }
//   out.logits.dispose(); cache.dispose(); model.dispose();
// Packed training rows (several sequences per row, no cache) pass `segmentIds`: the mask becomes block-diagonal
// per sequence and positions restart per sequence, so the row computes what its sequences compute alone.
import * as tf from '@tensorflow/tfjs-core';
import type { LoadWeightsOptions } from '../io/checkpoint.js';
import { causalMask, packedCausalMask } from './attention.js';
import { loadConfig, type Qwen2_5_VLConfig } from './config.js';
import type { KVCache } from './kv_cache.js';
import type { Params } from './layers.js';
import { causalLmLossFromHidden, type LossOptions, tokenLogprobsFromHidden } from './loss.js';
import { initWeights } from './params.js';
import { getRopeIndex, packedRopeIndex } from './rope.js';
import { embedInputs, lmLogits, ropeTables, textForward } from './text.js';
import { selectTrainable, type TrainablePart } from './trainable.js';
import { type Trace, visionForward } from './vision.js';
import { loadWeights } from './weights.js';

/** Model inputs. Ids/masks given as tensors are read with `arraySync` (cpu/wasm); pass arrays on webgpu. */
export interface ModelInputs {
  inputIds: number[][] | tf.Tensor2D;
  attentionMask?: number[][] | tf.Tensor2D;
  /** Patches of all images of the batch, in reading order `[N, C·Tp·ps·ps]` (prefill only). */
  pixelValues?: tf.Tensor2D;
  /** `[t, h, w]` per image in patches, same order as `pixelValues`. */
  imageGridThw?: number[][];
  /**
   * Packed rows (training only, no cache): which sequence each token belongs to `[B][T]` (0, 1, ... in order; any
   * value on padding, e.g. -1). Each sequence then attends only to itself and its positions restart at 0 (images
   * included), so a packed row computes exactly what its sequences compute alone.
   */
  segmentIds?: number[][];
}

export interface ForwardOptions {
  /** KV cache: empty → prefill (filled here); non-empty → the inputs are new tokens after the cached slots. */
  cache?: KVCache;
  /** Rope deltas for cached decoding (default: the ones the cache stored at prefill). */
  ropeDeltas?: number[];
  /** Recompute decoder-layer activations in backward (no cache). */
  recompute?: boolean;
  /** Only compute logits for the last position (`[B, 1, V]`). */
  lastOnly?: boolean;
  /** Sink for intermediate tensors (parity tests). */
  trace?: Trace;
}

const toRows = (x: number[][] | tf.Tensor2D): number[][] =>
  x instanceof tf.Tensor ? (x.arraySync() as number[][]) : x;

/** Positions `[3][B][T]` of new tokens after `past` cached slots: `past + t + delta[b]` in all streams (HF rope-delta branch). */
export function decodePositions(B: number, T: number, past: number, ropeDeltas: number[]): number[][][] {
  if (ropeDeltas.length !== B)
    throw new Error(`ropeDeltas has ${ropeDeltas.length} rows, the batch has ${B}`);
  const rows = ropeDeltas.map((d) => Array.from({ length: T }, (_, t) => past + t + d));
  return [rows, rows, rows];
}

/**
 * Last hidden state `[B, T, D]` (after the final norm) and the rope deltas. Updates `opts.cache` when given.
 * @example const { hidden } = modelHidden(params, cfg, { inputIds: [[1, 2, 3]] });
 */
export function modelHidden(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  inputs: ModelInputs,
  opts: ForwardOptions = {},
): { hidden: tf.Tensor3D; ropeDeltas: number[] } {
  const ids = toRows(inputs.inputIds);
  const B = ids.length;
  const T = ids[0]?.length ?? 0;
  if (B === 0 || T === 0) throw new Error('inputIds must be a non-empty [B][T] array');
  const mask = inputs.attentionMask ? toRows(inputs.attentionMask) : ids.map((r) => r.map(() => 1));
  const cache = opts.cache;
  const pastLen = cache?.length ?? 0;
  const segs = inputs.segmentIds;
  if (segs && cache) {
    throw new Error(
      'segmentIds are for packed training rows and cannot be used with a KV cache: drop segmentIds to generate, or drop the cache to train',
    );
  }
  let positionIds: number[][][];
  let ropeDeltas: number[];
  if (segs) {
    ({ positionIds, ropeDeltas } = packedRopeIndex(ids, mask, segs, inputs.imageGridThw ?? null, cfg));
  } else if (cache && pastLen > 0) {
    if (cache.batch !== B) throw new Error(`cache holds ${cache.batch} rows but inputIds has ${B}`);
    if (inputs.pixelValues)
      throw new Error('pixelValues are only used at prefill; pass them with an empty cache');
    ropeDeltas = opts.ropeDeltas ?? cache.ropeDeltas ?? [];
    positionIds = decodePositions(B, T, pastLen, ropeDeltas);
  } else {
    ({ positionIds, ropeDeltas } = getRopeIndex(ids, mask, inputs.imageGridThw ?? null, cfg));
  }
  const fullMask = pastLen > 0 && cache ? cache.mask.map((r, b) => [...r, ...mask[b]]) : mask;
  const { hidden, present } = tf.tidy(() => {
    const { pixelValues, imageGridThw } = inputs;
    const feats = pixelValues
      ? visionForward(params, cfg.vision_config, pixelValues, imageGridThw ?? [], opts.trace)
      : null;
    const embeds = embedInputs(params, cfg, ids, feats);
    opts.trace?.set('text.inputs_embeds', tf.keep(embeds.clone()));
    const rope = ropeTables(cfg, positionIds);
    const past = pastLen > 0 ? cache?.layers : undefined;
    // Recomputation keeps no k/v, so it is a training-only option: off whenever a cache must be filled.
    const recompute = opts.recompute === true && !cache;
    const attnMask = segs ? packedCausalMask(mask, segs) : causalMask(fullMask, T, pastLen);
    return textForward(params, cfg, embeds, rope, attnMask, {
      ...opts,
      past,
      recompute,
    });
  });
  if (cache) {
    cache.update(present, fullMask);
    if (pastLen === 0) cache.ropeDeltas = ropeDeltas;
  } else {
    tf.dispose(present.flatMap(({ k, v }) => [k, v]));
  }
  return { hidden, ropeDeltas };
}

/**
 * Logits `[B, T, V]` (or `[B, 1, V]` with `lastOnly`) and rope deltas: the HF model forward.
 * @example const { logits } = modelForward(params, cfg, { inputIds, attentionMask, pixelValues, imageGridThw });
 */
export function modelForward(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  inputs: ModelInputs,
  opts: ForwardOptions = {},
): { logits: tf.Tensor3D; ropeDeltas: number[] } {
  const { hidden, ropeDeltas } = modelHidden(params, cfg, inputs, opts);
  const logits = tf.tidy(() => {
    const [B, T, D] = hidden.shape;
    const h = opts.lastOnly ? (tf.slice(hidden, [0, T - 1, 0], [B, 1, D]) as tf.Tensor3D) : hidden;
    return lmLogits(params, cfg, h);
  });
  hidden.dispose();
  return { logits, ropeDeltas };
}

/** A Qwen2.5-VL model: normalised config + flat param record (legacy HF names) of float32 tensors. */
export class Qwen2_5_VL {
  constructor(
    readonly config: Qwen2_5_VLConfig,
    readonly params: Params,
  ) {}

  /** Loads `<dir>/config.json` and the safetensors weights (single file or sharded; legacy or new names). */
  static async load(dir: string, opts?: LoadWeightsOptions): Promise<Qwen2_5_VL> {
    const cfg = await loadConfig(dir);
    return new Qwen2_5_VL(cfg, await loadWeights(dir, cfg, opts));
  }

  /** Random HF-style init (N(0, 0.02) weights, zero biases, unit norms), seeded. */
  static init(cfg: Qwen2_5_VLConfig, seed?: number): Qwen2_5_VL {
    return new Qwen2_5_VL(cfg, initWeights(cfg, seed ?? 0));
  }

  /** Logits and rope deltas; see `modelForward`. */
  forward(inputs: ModelInputs, opts?: ForwardOptions): { logits: tf.Tensor3D; ropeDeltas: number[] } {
    return modelForward(this.params, this.config, inputs, opts);
  }

  /** Last hidden state `[B, T, D]`; see `modelHidden`. */
  hidden(inputs: ModelInputs, opts?: ForwardOptions): { hidden: tf.Tensor3D; ropeDeltas: number[] } {
    return modelHidden(this.params, this.config, inputs, opts);
  }

  /** `log p(targets[b][t] | prefix up to t)` `[B, T]` without materialising logits for backward. */
  tokenLogprobs(inputs: ModelInputs, targets: number[][], opts?: ForwardOptions): tf.Tensor2D {
    return tf.tidy(() =>
      tokenLogprobsFromHidden(this.params, this.config, this.hidden(inputs, opts).hidden, targets),
    );
  }

  /** HF causal-LM loss (shift by one, ignore -100, mean). Use inside `tf.variableGrads`. */
  loss(inputs: ModelInputs, labels: number[][], opts?: ForwardOptions & LossOptions): tf.Scalar {
    return tf.tidy(() =>
      causalLmLossFromHidden(this.params, this.config, this.hidden(inputs, opts).hidden, labels, opts),
    );
  }

  /** Trainable variables of one part ({@link TRAINABLE_PARTS}: 'all', 'lm', 'vision', 'lm+merger'). */
  variables(part: TrainablePart = 'all'): tf.Variable[] {
    return Object.values(selectTrainable(this.params, part));
  }

  /** Frees every parameter. */
  dispose(): void {
    tf.dispose(Object.values(this.params));
  }
}

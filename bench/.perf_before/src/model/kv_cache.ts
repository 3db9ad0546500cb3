// KV cache for incremental decoding: owns each layer's rotated keys and values, the attention mask of
// every cached slot (padding included) and the rope deltas of the prefill (spec §4.4).
// Mirrors HF DynamicCache (concatenate along the sequence axis) plus Qwen2_5_VLModel.rope_deltas.
//
// Shape legend: B batch, Hkv kv heads, S cached slots, Dh head dim.
import * as tf from '@tensorflow/tfjs-core';
import type { LayerKV } from './text.js';

/**
 * Per-layer `k`/`v [B, Hkv, S, Dh]` of all slots seen so far. `forward(..., { cache })` fills it at prefill
 * and extends it at each decode step; call `dispose()` when the sequence is done.
 * @example
 * const cache = new KVCache();
 * const { logits } = model.forward({ inputIds, attentionMask }, { cache }); // prefill
 * model.forward({ inputIds: [[next]] }, { cache });                          // one decode step
 * cache.dispose();
 */
export class KVCache {
  /** Per-layer keys/values (empty before prefill). */
  layers: LayerKV[] = [];
  /** Attention mask of the cached slots `[B][S]`. */
  mask: number[][] = [];
  /** `rope_deltas` from the prefill's getRopeIndex, one per row. */
  ropeDeltas: number[] | null = null;

  /** Number of cached slots S (padding included) = the next token's `cache_position`. */
  get length(): number {
    return this.mask[0]?.length ?? 0;
  }

  /** Batch size of the cached rows (0 when empty). */
  get batch(): number {
    return this.mask.length;
  }

  /** Replaces the cached tensors by `present` (which extend the old ones) and the mask by `mask`. */
  update(present: LayerKV[], mask: number[][]): void {
    const old = this.layers;
    this.layers = present.map(({ k, v }) => ({ k: tf.keep(k), v: tf.keep(v) }));
    tf.dispose(old.flatMap(({ k, v }) => [k, v]));
    this.mask = mask.map((r) => [...r]);
  }

  /** Frees every cached tensor; the cache can be reused for a new prefill. */
  dispose(): void {
    tf.dispose(this.layers.flatMap(({ k, v }) => [k, v]));
    this.layers = [];
    this.mask = [];
    this.ropeDeltas = null;
  }
}

// Attention: additive causal + padding mask for the LM (block-diagonal per sequence for packed rows), grouped-query
// softmax attention, and the vision tower's segmented (block-diagonal) attention over `cu_seqlens`.
// Mirrors HF qwen2_5_vl 4.50: eager_attention_forward, repeat_kv, _update_causal_mask and
// Qwen2_5_VLVisionAttention (eager, dense block-diagonal mask). Scores are divided by sqrt(Dh) as HF does.
//
// Shape legend: B batch, T new tokens, S keys (past + new), H query heads, Hkv kv heads, g = H/Hkv,
// Dh head dim, N patches, Hv vision heads, L segment length.
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from './layers.js';

/**
 * Additive value for masked scores: finite, so fully masked rows give a uniform (finite) softmax as in HF.
 * NOTE: HF uses finfo(float32).min (-3.4028235e38); tfjs-webgpu's softmax starts its running max at -3.402823e38,
 * so a row made only of the exact minimum gives 0/0 = NaN there. -3e38 behaves the same everywhere else.
 */
export const MASK_MIN = -3e38;

/**
 * Additive mask `[B, 1, T, S]`: 0 where key j is visible to query i (`j <= pastLen + i` and
 * `attentionMask[b][j] == 1`), `MASK_MIN` elsewhere. `attentionMask` covers all S = pastLen + T slots.
 * @example causalMask([[0, 1, 1]], 3, 0) // row 0 fully masked, row 2 sees keys 1 and 2
 */
export function causalMask(attentionMask: number[][], queryLen: number, pastLen: number): tf.Tensor4D {
  const B = attentionMask.length;
  const S = pastLen + queryLen;
  const data = new Float32Array(B * queryLen * S);
  for (let b = 0; b < B; b++) {
    const row = attentionMask[b];
    if (row.length !== S) {
      throw new Error(
        `causalMask: attentionMask row ${b} has ${row.length} slots, expected pastLen + T = ${S}`,
      );
    }
    for (let i = 0; i < queryLen; i++)
      for (let j = 0; j < S; j++) {
        const visible = j <= pastLen + i && row[j] === 1;
        data[(b * queryLen + i) * S + j] = visible ? 0 : MASK_MIN;
      }
  }
  return tf.tensor4d(data, [B, 1, queryLen, S]);
}

/**
 * Block-diagonal causal mask `[B, 1, T, T]` for packed rows (no cache): key j is visible to query i iff `j <= i`,
 * both are real (`attentionMask` 1) and `segmentIds[b][j] === segmentIds[b][i]`. So each packed sequence sees only
 * itself, as if it ran alone; padded query rows are fully masked (finite, unused).
 * @example packedCausalMask([[1, 1, 1, 0]], [[0, 0, 1, -1]]) // query 2 sees key 2 only; query 3 sees nothing
 */
export function packedCausalMask(attentionMask: number[][], segmentIds: number[][]): tf.Tensor4D {
  const B = attentionMask.length;
  const T = attentionMask[0]?.length ?? 0;
  if (segmentIds.length !== B || segmentIds.some((r) => r.length !== T)) {
    throw new Error(
      `packedCausalMask: segmentIds must have the same [B, T] = [${B}, ${T}] shape as attentionMask`,
    );
  }
  const data = new Float32Array(B * T * T).fill(MASK_MIN);
  for (let b = 0; b < B; b++) {
    const [m, seg] = [attentionMask[b], segmentIds[b]];
    if (m.length !== T)
      throw new Error(`packedCausalMask: attentionMask row ${b} has ${m.length} slots, expected ${T}`);
    for (let i = 0; i < T; i++) {
      if (m[i] !== 1) continue;
      for (let j = 0; j <= i; j++) if (m[j] === 1 && seg[j] === seg[i]) data[(b * T + i) * T + j] = 0;
    }
  }
  return tf.tensor4d(data, [B, 1, T, T]);
}

/**
 * Grouped-query attention. Query head h reads kv head ⌊h·Hkv/H⌋: instead of repeating k/v (`repeat_kv`)
 * the g query heads of one kv head are stacked along the row axis, which gives the same dot products.
 * `q [B, H, T, Dh]`, `k`/`v [B, Hkv, S, Dh]`, `mask [B, 1, T, S]` → `[B, T, H*Dh]`.
 * @example gqaAttention(q, k, v, causalMask(mask, T, 0))
 */
export function gqaAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, H, T, Dh] = q.shape;
    const [, Hkv, S] = k.shape;
    if (H % Hkv !== 0)
      throw new Error(`num_attention_heads ${H} must be a multiple of num_key_value_heads ${Hkv}`);
    const g = H / Hkv;
    const q3 = tf.reshape(q, [B * Hkv, g * T, Dh]);
    const scores = tf.div(tf.matMul(q3, tf.reshape(k, [B * Hkv, S, Dh]), false, true), Math.sqrt(Dh));
    const probs = tf.softmax(tf.add(tf.reshape(scores, [B, H, T, S]), mask));
    const out = tf.matMul(tf.reshape(probs, [B * Hkv, g * T, S]), tf.reshape(v, [B * Hkv, S, Dh]));
    return tf.reshape(tf.transpose(tf.reshape(out, [B, H, T, Dh]), [0, 2, 1, 3]), [B, T, H * Dh]);
  });
}

/** Host-side layout packing variable-length segments into `[nSeg, Lmax]` slots. */
export interface SegmentLayout {
  nSeg: number;
  maxLen: number;
  /** Source row for each padded slot `[nSeg*Lmax]` (padding slots point to row 0). */
  gather: Int32Array;
  /** Padded slot of each real row `[N]`. */
  scatter: Int32Array;
  /** Additive key mask `[nSeg*Lmax]`, 0 for real keys, MASK_MIN for padding; null when no padding. */
  keyMask: Float32Array | null;
}

/**
 * Segments from `cu_seqlens` (`[0, e1, e2, ..., N]`, strictly increasing after de-duplication).
 * @example segmentLayout([0, 3, 4]) // nSeg 2, maxLen 3, second segment padded with 2 slots
 */
export function segmentLayout(cuSeqlens: number[]): SegmentLayout {
  const nSeg = cuSeqlens.length - 1;
  let maxLen = 0;
  for (let s = 0; s < nSeg; s++) {
    const len = cuSeqlens[s + 1] - cuSeqlens[s];
    if (!(len > 0))
      throw new Error(`segmentLayout: cu_seqlens must be strictly increasing, got ${cuSeqlens}`);
    maxLen = Math.max(maxLen, len);
  }
  const N = cuSeqlens[nSeg];
  const gather = new Int32Array(nSeg * maxLen);
  const scatter = new Int32Array(N);
  const keyMask = new Float32Array(nSeg * maxLen).fill(MASK_MIN);
  for (let s = 0; s < nSeg; s++)
    for (let r = cuSeqlens[s]; r < cuSeqlens[s + 1]; r++) {
      const slot = s * maxLen + (r - cuSeqlens[s]);
      gather[slot] = r;
      scatter[r] = slot;
      keyMask[slot] = 0;
    }
  const padded = nSeg * maxLen !== N;
  return { nSeg, maxLen, gather, scatter, keyMask: padded ? keyMask : null };
}

/**
 * Softmax attention inside each segment only (no causal mask), as HF's dense block-diagonal mask does.
 * `q`/`k`/`v [N, Hv, Dh]` → `[N, Hv*Dh]`. Segments are packed to `[nSeg, Lmax]`, so cost is nSeg·Lmax², not N².
 * @example segmentedAttention(q, k, v, segmentLayout([0, 16, 24]))
 */
export function segmentedAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  layout: SegmentLayout,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [N, Hv, Dh] = q.shape;
    const { nSeg, maxLen: L, keyMask } = layout;
    const pack = (x: tf.Tensor3D): tf.Tensor3D => {
      const rows = tf.reshape(x, [N, Hv * Dh]);
      const packed = keyMask ? gatherRows(rows, layout.gather) : rows;
      return tf.reshape(tf.transpose(tf.reshape(packed, [nSeg, L, Hv, Dh]), [0, 2, 1, 3]), [
        nSeg * Hv,
        L,
        Dh,
      ]);
    };
    const scores = tf.div(tf.matMul(pack(q), pack(k), false, true), Math.sqrt(Dh));
    let scores4 = tf.reshape(scores, [nSeg, Hv, L, L]);
    if (keyMask) scores4 = tf.add(scores4, tf.tensor4d(keyMask, [nSeg, 1, 1, L]));
    const probs = tf.reshape(tf.softmax(scores4), [nSeg * Hv, L, L]);
    const out = tf.matMul(probs, pack(v));
    const rows = tf.reshape(tf.transpose(tf.reshape(out, [nSeg, Hv, L, Dh]), [0, 2, 1, 3]), [
      nSeg * L,
      Hv * Dh,
    ]);
    return keyMask ? gatherRows(rows, layout.scatter) : (rows as tf.Tensor2D);
  });
}

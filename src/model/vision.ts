// Qwen2.5-VL vision tower: patch embedding (as a matMul, no conv), 2-D rope, window permutation,
// windowed / full-attention blocks, patch merger, un-permutation.
// Mirrors HF qwen2_5_vl 4.50: Qwen2_5_VisionPatchEmbed, rot_pos_emb, get_window_index,
// Qwen2_5_VLVisionBlock, Qwen2_5_VLPatchMerger, Qwen2_5_VisionTransformerPretrainedModel.forward (spec §3).
//
// Shape legend: N patches (all images), M = N/4 merged tokens, Dv vision width, Hv heads, Dhv head dim,
// P = C·Tp·ps·ps patch vector width (1176), D text width (merger output).
import * as tf from '@tensorflow/tfjs-core';
import { type SegmentLayout, segmentedAttention, segmentLayout } from './attention.js';
import type { Qwen2_5_VLConfig, VisionConfig } from './config.js';
import { gatherRows, geluErf, linear, matMulWT, type Params, param, rmsNorm, swiglu } from './layers.js';
import { applyRotary, duplicatedCosSin, ropeInvFreq, visionRotaryAngles } from './rope.js';

/** The vision RMSNorm eps is hard-coded in HF (not read from the config). */
export const VISION_EPS = 1e-6;
/** Width of one `pixelValues` row: C·tp·P·P = 3·2·14·14 (Qwen2.5-VL's processor: RGB, 2 frames, 14-pixel patches). */
export const PATCH_WIDTH = 3 * 2 * 14 * 14;
/** HF Qwen2_5_VisionRotaryEmbedding theta. */
export const VISION_ROPE_THETA = 10000;

/** Optional sink for intermediate tensors (parity tests). Values are kept clones the caller disposes. */
export type Trace = Map<string, tf.Tensor>;

/** Window permutation (merged-token level) and attention segments (patch level), spec §3.3. */
export interface WindowPlan {
  windowIndex: number[];
  cuWindowSeqlens: number[];
  cuSeqlens: number[];
}

/**
 * HF `get_window_index` + `cu_seqlens`, on plain arrays. Empty windows are skipped (== unique_consecutive).
 * @example windowPlan([[1, 12, 10]], cfg.vision_config).cuWindowSeqlens // with window_size 112: [0, 64, 80, 112, 120]
 */
export function windowPlan(gridThw: number[][], v: VisionConfig): WindowPlan {
  const m = v.spatial_merge_size;
  const unit = m * m;
  const vw = Math.floor(Math.floor(v.window_size / m) / v.patch_size);
  const windowIndex: number[] = [];
  const cuWindowSeqlens = [0];
  const cuSeqlens = [0];
  let base = 0;
  for (const [t, h, w] of gridThw) {
    const [lh, lw] = [h / m, w / m];
    const [nwh, nww] = [Math.floor((lh + vw - (lh % vw)) / vw), Math.floor((lw + vw - (lw % vw)) / vw)];
    for (let f = 0; f < t; f++) {
      for (let wr = 0; wr < nwh; wr++)
        for (let wc = 0; wc < nww; wc++) {
          let count = 0;
          for (let r = wr * vw; r < Math.min((wr + 1) * vw, lh); r++)
            for (let c = wc * vw; c < Math.min((wc + 1) * vw, lw); c++) {
              windowIndex.push(base + f * lh * lw + r * lw + c);
              count++;
            }
          if (count > 0) cuWindowSeqlens.push(cuWindowSeqlens[cuWindowSeqlens.length - 1] + count * unit);
        }
      cuSeqlens.push(cuSeqlens[cuSeqlens.length - 1] + h * w);
    }
    base += t * lh * lw;
  }
  return { windowIndex, cuWindowSeqlens, cuSeqlens };
}

/**
 * Conv3d patch embedding as `pixels [N, P] · W[Dv, P]^T` (kernel == stride, so it is one dot product per patch).
 * @example patchEmbed(params, pixelValues) // [N, Dv]
 */
export function patchEmbed(params: Params, pixelValues: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const w = param(params, 'visual.patch_embed.proj.weight');
    const flat = tf.reshape(w, [w.shape[0], -1]) as tf.Tensor2D;
    if (flat.shape[1] !== pixelValues.shape[1]) {
      throw new Error(
        `pixelValues rows have ${pixelValues.shape[1]} values but the patch embed expects ${flat.shape[1]} (C·Tp·ps·ps)`,
      );
    }
    return matMulWT(pixelValues, flat);
  });
}

/** Rows of 4-patch groups reordered by a merged-token permutation: `out[k*u+i] = in[perm[k]*u+i]`. */
export function expandPermutation(perm: number[], unit: number): Int32Array {
  const out = new Int32Array(perm.length * unit);
  perm.forEach((p, k) => {
    for (let i = 0; i < unit; i++) out[k * unit + i] = p * unit + i;
  });
  return out;
}

/** Host rows of a `[n, width]` array reordered by `perm`. */
function permuteHostRows(x: Float32Array, width: number, perm: Int32Array): Float32Array {
  const out = new Float32Array(perm.length * width);
  perm.forEach((p, r) => {
    out.set(x.subarray(p * width, (p + 1) * width), r * width);
  });
  return out;
}

/** Inverse permutation (argsort of a permutation). */
export function inversePermutation(perm: number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, k) => {
    inv[p] = k;
  });
  return inv;
}

/** One vision block: `h = x + proj(attn(norm1(x)))`, `x = h + mlp(norm2(h))`. `x [N, Dv]`, cos/sin `[N, 1, Dhv]`. */
export function visionBlock(
  params: Params,
  v: VisionConfig,
  i: number,
  x: tf.Tensor2D,
  cos: tf.Tensor,
  sin: tf.Tensor,
  layout: SegmentLayout,
): tf.Tensor2D {
  return tf.tidy(() => {
    const p = `visual.blocks.${i}`;
    const [N, Dv] = x.shape;
    const Hv = v.num_heads;
    const Dh = Dv / Hv;
    const normed = rmsNorm(x, param(params, `${p}.norm1.weight`), VISION_EPS);
    const qkv = tf.reshape(linear(params, `${p}.attn.qkv`, normed, true), [N, 3, Hv, Dh]);
    const part = (j: number): tf.Tensor3D =>
      tf.reshape(tf.slice(qkv, [0, j, 0, 0], [N, 1, Hv, Dh]), [N, Hv, Dh]);
    const q = applyRotary(part(0), cos, sin) as tf.Tensor3D;
    const k = applyRotary(part(1), cos, sin) as tf.Tensor3D;
    const attn = segmentedAttention(q, k, part(2), layout);
    const h = tf.add(x, linear(params, `${p}.attn.proj`, attn, true));
    return tf.add(
      h,
      swiglu(params, `${p}.mlp`, rmsNorm(h, param(params, `${p}.norm2.weight`), VISION_EPS), true),
    );
  });
}

/** Patch merger: ln_q per patch, concat the 4 patches of a group, Linear → GELU(erf) → Linear. `[N, Dv]` → `[M, D]`. */
export function patchMerger(params: Params, v: VisionConfig, x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const unit = v.spatial_merge_size ** 2;
    const normed = rmsNorm(x, param(params, 'visual.merger.ln_q.weight'), VISION_EPS);
    const grouped = tf.reshape(normed, [x.shape[0] / unit, x.shape[1] * unit]);
    return linear(
      params,
      'visual.merger.mlp.2',
      geluErf(linear(params, 'visual.merger.mlp.0', grouped, true)),
      true,
    );
  });
}

/**
 * Full vision tower: `pixelValues [N, P]` for the images `gridThw` (`[t, h, w]` in patches, in order) →
 * image embeddings `[M, D]` in merged raster order, images in input order (HF `model.visual(...)`).
 * Images of different sizes can share one call; attention never crosses images.
 * `cfg` is the model config or its `vision_config`.
 * @example const feats = visionForward(params, cfg, pixelValues, [[1, 4, 6]]); // [6, D]
 */
export function visionForward(
  params: Params,
  cfg: VisionConfig | Qwen2_5_VLConfig,
  pixelValues: tf.Tensor2D,
  gridThw: number[][],
  trace?: Trace,
): tf.Tensor2D {
  const v = 'vision_config' in cfg ? cfg.vision_config : cfg;
  const N = gridThw.reduce((s, [t, h, w]) => s + t * h * w, 0);
  if (N !== pixelValues.shape[0]) {
    throw new Error(
      `pixelValues has ${pixelValues.shape[0]} patch rows but imageGridThw ${JSON.stringify(gridThw)} needs ${N}`,
    );
  }
  const Dh = v.hidden_size / v.num_heads;
  const unit = v.spatial_merge_size ** 2;
  const plan = windowPlan(gridThw, v);
  const perm = expandPermutation(plan.windowIndex, unit);
  const angles = visionRotaryAngles(gridThw, v.spatial_merge_size, ropeInvFreq(Dh / 2, VISION_ROPE_THETA));
  const { cos, sin } = duplicatedCosSin(angles, Dh / 2);
  const full = segmentLayout(plan.cuSeqlens);
  const windowed = segmentLayout(plan.cuWindowSeqlens);
  const record = (name: string, t: tf.Tensor): void => {
    trace?.set(name, tf.keep(t.clone()));
  };
  return tf.tidy(() => {
    const embedded = patchEmbed(params, pixelValues);
    record('vision.patch_embed_out', embedded);
    let x = gatherRows(embedded, perm);
    const cosT = tf.tensor3d(permuteHostRows(cos, Dh, perm), [N, 1, Dh]);
    const sinT = tf.tensor3d(permuteHostRows(sin, Dh, perm), [N, 1, Dh]);
    for (let i = 0; i < v.depth; i++) {
      const layout = v.fullatt_block_indexes.includes(i) ? full : windowed;
      x = visionBlock(params, v, i, x, cosT, sinT, layout);
      record(`vision.block${i}_out_windowed`, x);
    }
    const merged = patchMerger(params, v, x);
    record('vision.merger_out_windowed', merged);
    return gatherRows(merged, inversePermutation(plan.windowIndex));
  });
}

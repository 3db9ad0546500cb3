// Rotary position embeddings for Qwen2.5-VL: the vision tower's 2-D rope, the text M-RoPE and
// `getRopeIndex` (3-stream position ids for mixed text/image sequences), all on plain arrays.
// Mirrors HF qwen2_5_vl (transformers 4.50): Qwen2_5_VisionRotaryEmbedding, rot_pos_emb,
// Qwen2_5_VLRotaryEmbedding, apply_multimodal_rotary_pos_emb, Qwen2_5_VLModel.get_rope_index.
//
// Shape legend: B batch, T text length, Dh text head dim, N patches, Dhv vision head dim.
// Angles are float32 products (`Math.fround(pos * invFreq)`), as HF computes them (spec §8.15).
import * as tf from '@tensorflow/tfjs-core';

/** The subset of the text config that rope needs (HF field names). */
export interface RopeTextConfig {
  rope_theta: number;
  mrope_section: [number, number, number];
  image_token_id: number;
  video_token_id: number;
  vision_start_token_id: number;
  vision_config: { spatial_merge_size: number };
}

/**
 * HF `inv_freq[j] = 1 / theta^(2j/dim)` in float32, j = 0..dim/2-1.
 * @example ropeInvFreq(16, 1e6)[0] === 1
 */
export function ropeInvFreq(dim: number, theta: number): Float32Array {
  if (!(dim > 0 && dim % 2 === 0))
    throw new Error(`ropeInvFreq: dim (${dim}) must be a positive even number`);
  const out = new Float32Array(dim / 2);
  for (let j = 0; j < dim / 2; j++) {
    const exponent = Math.fround((2 * j) / dim);
    out[j] = 1 / Math.fround(theta ** exponent);
  }
  return out;
}

/**
 * Per-patch vision angles `[θh(Dhv/4), θw(Dhv/4)]`, rows in processor order (2×2 merge groups, frames repeated).
 * Returns `[N, 2*invFreq.length]` row-major. `invFreq` is `ropeInvFreq(Dhv/2, 10000)`.
 * @example visionRotaryAngles([[1, 2, 2]], 2, inv) // 4 rows: (0,0) (0,1) (1,0) (1,1)
 */
export function visionRotaryAngles(
  gridThw: number[][],
  mergeSize: number,
  invFreq: Float32Array,
): Float32Array {
  const f = invFreq.length;
  const rows: number[][] = [];
  for (const [t, h, w] of gridThw) {
    const pairs = mergeOrderPositions(h, w, mergeSize);
    for (let k = 0; k < t; k++) rows.push(...pairs);
  }
  const out = new Float32Array(rows.length * 2 * f);
  rows.forEach(([r, c], n) => {
    for (let j = 0; j < f; j++) {
      out[n * 2 * f + j] = Math.fround(r * invFreq[j]);
      out[n * 2 * f + f + j] = Math.fround(c * invFreq[j]);
    }
  });
  return out;
}

/** (row, col) of each patch in the processor's merge-grouped order: [h/m, w/m, m, m] flattened. */
export function mergeOrderPositions(h: number, w: number, m: number): [number, number][] {
  if (h % m !== 0 || w % m !== 0) {
    throw new Error(`grid ${h}x${w} is not divisible by spatial_merge_size ${m}; check image_grid_thw`);
  }
  const out: [number, number][] = [];
  for (let br = 0; br < h / m; br++)
    for (let bc = 0; bc < w / m; bc++)
      for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) out.push([br * m + i, bc * m + j]);
  return out;
}

/**
 * cos/sin of duplicated angles: `[N, F]` angles → `[N, 2F]` as `[a, a]` (HF `cat((emb, emb), -1)`).
 * @example duplicatedCosSin(new Float32Array([0]), 1) // { cos: [1, 1], sin: [0, 0] }
 */
export function duplicatedCosSin(
  angles: Float32Array,
  width: number,
): { cos: Float32Array; sin: Float32Array } {
  const n = angles.length / width;
  const cos = new Float32Array(n * 2 * width);
  const sin = new Float32Array(n * 2 * width);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < width; j++) {
      const a = angles[r * width + j];
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[r * 2 * width + j] = c;
      cos[r * 2 * width + width + j] = c;
      sin[r * 2 * width + j] = s;
      sin[r * 2 * width + width + j] = s;
    }
  return { cos, sin };
}

/**
 * Text M-RoPE cos/sin `[B, T, Dh]` from 3-stream positions `[3][B][T]` (contiguous `mrope_section` over the
 * first half, repeated for the second half; spec §4.2).
 * @example mropeCosSin([[[0]], [[0]], [[0]]], ropeInvFreq(16, 1e6), [2, 3, 3]).cos // 16 ones
 */
export function mropeCosSin(
  positionIds: number[][][],
  invFreq: Float32Array,
  mropeSection: [number, number, number],
): { cos: Float32Array; sin: Float32Array; shape: [number, number, number] } {
  const half = invFreq.length;
  const [s0, s1, s2] = mropeSection;
  if (s0 + s1 + s2 !== half) {
    throw new Error(`mrope_section ${JSON.stringify(mropeSection)} must sum to head_dim/2 = ${half}`);
  }
  const stream = (j: number): number => (j < s0 ? 0 : j < s0 + s1 ? 1 : 2);
  const B = positionIds[0].length;
  const T = positionIds[0][0]?.length ?? 0;
  const angles = new Float32Array(B * T * half);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let j = 0; j < half; j++) {
        angles[(b * T + t) * half + j] = Math.fround(positionIds[stream(j)][b][t] * invFreq[j]);
      }
  return { ...duplicatedCosSin(angles, half), shape: [B, T, 2 * half] };
}

/**
 * Rotate-half rope: `x*cos + [-x2, x1]*sin`, pairing dim i with i + Dh/2 (not GPT-J pairs).
 * `cos`/`sin` broadcast against `x` on all but the last axis.
 * @example applyRotary(q /*[B,H,T,Dh]*\/, cos /*[B,1,T,Dh]*\/, sin)
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1];
    const begin1 = x.shape.map(() => 0);
    const size1 = [...x.shape.slice(0, -1), d / 2];
    const x1 = tf.slice(x, begin1, size1);
    const x2 = tf.slice(x, [...begin1.slice(0, -1), d / 2], size1);
    const rotated = tf.concat([tf.neg(x2), x1], x.rank - 1);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  });
}

/** Position ids `[3][B][T]` and per-row `rope_deltas` (spec §4.3). */
export interface RopeIndex {
  positionIds: number[][][];
  ropeDeltas: number[];
}

/**
 * HF `get_rope_index` for text and images (videos are not supported). Padded slots (mask 0) get position 1.
 * `imageGridThw` lists the images of the whole batch in reading order; null means text only.
 * @example getRopeIndex([[1, 2, 3]], [[1, 1, 1]], null, cfg) // positions 0,1,2 in all streams, delta 0
 */
export function getRopeIndex(
  inputIds: number[][],
  attentionMask: number[][] | null,
  imageGridThw: number[][] | null,
  cfg: RopeTextConfig,
): RopeIndex {
  const B = inputIds.length;
  const mask = attentionMask ?? inputIds.map((row) => row.map(() => 1));
  if (mask.length !== B || mask.some((m, b) => m.length !== inputIds[b].length)) {
    throw new Error('getRopeIndex: attentionMask must have the same [B, T] shape as inputIds');
  }
  if (imageGridThw === null) return textOnlyRopeIndex(mask);
  const positionIds = [0, 1, 2].map(() => inputIds.map((row) => row.map(() => 1)));
  const ropeDeltas: number[] = [];
  const cursor = { image: 0 };
  for (let b = 0; b < B; b++) {
    const real = inputIds[b].map((_, t) => t).filter((t) => mask[b][t] === 1);
    const tokens = real.map((t) => inputIds[b][t]);
    const pos = samplePositions(tokens, imageGridThw, cursor, cfg);
    real.forEach((t, k) => {
      for (let s = 0; s < 3; s++) positionIds[s][b][t] = pos[s][k];
    });
    const max = Math.max(...pos[0], ...pos[1], ...pos[2]);
    ropeDeltas.push((real.length > 0 ? max : -1) + 1 - inputIds[b].length);
  }
  if (cursor.image !== imageGridThw.length) {
    throw new Error(
      `getRopeIndex: imageGridThw has ${imageGridThw.length} images but the batch has ${cursor.image} <|vision_start|><|image_pad|> pairs`,
    );
  }
  return { positionIds, ropeDeltas };
}

/**
 * `getRopeIndex` for packed rows: the real tokens of row b with the same `segmentIds[b][t]` form one sequence, and
 * each sequence gets the positions it would get alone (restarting at 0; images get their 3-D positions inside it).
 * Segments must be contiguous: real tokens' ids are integers >= 0, non-decreasing along the row. Padded slots get 1.
 * `ropeDeltas` follow HF's formula over the whole row but mean nothing for decoding (packed rows have no cache).
 * @example packedRopeIndex([[5, 6, 7, 0]], [[1, 1, 1, 0]], [[0, 0, 1, -1]], null, cfg).positionIds[0] // [[0, 1, 0, 1]]
 */
export function packedRopeIndex(
  inputIds: number[][],
  attentionMask: number[][] | null,
  segmentIds: number[][],
  imageGridThw: number[][] | null,
  cfg: RopeTextConfig,
): RopeIndex {
  const mask = attentionMask ?? inputIds.map((row) => row.map(() => 1));
  const sameShape = (x: number[][]) =>
    x.length === inputIds.length && x.every((r, b) => r.length === inputIds[b].length);
  if (!sameShape(mask) || !sameShape(segmentIds)) {
    throw new Error(
      'packedRopeIndex: attentionMask and segmentIds must have the same [B, T] shape as inputIds',
    );
  }
  const positionIds = [0, 1, 2].map(() => inputIds.map((row) => row.map(() => 1)));
  const cursor = { image: 0 };
  const ropeDeltas = inputIds.map((ids, b) => {
    for (const [seg, slots] of segmentSlots(mask[b], segmentIds[b], b)) {
      const tokens = slots.map((t) => ids[t]);
      const pos =
        imageGridThw === null
          ? [0, 1, 2].map(() => slots.map((_, k) => k))
          : samplePositions(tokens, imageGridThw, cursor, cfg);
      if (pos[0].length !== slots.length) {
        throw new Error(
          `packedRopeIndex: row ${b} segment ${seg} has ${slots.length} tokens but its text and images take ${pos[0].length} positions; an image's <|image_pad|> run must lie whole inside one segment and match imageGridThw`,
        );
      }
      slots.forEach((t, k) => {
        for (let s = 0; s < 3; s++) positionIds[s][b][t] = pos[s][k];
      });
    }
    return Math.max(...positionIds.map((p) => Math.max(...p[b]))) + 1 - ids.length;
  });
  if (imageGridThw !== null && cursor.image !== imageGridThw.length) {
    throw new Error(
      `packedRopeIndex: imageGridThw has ${imageGridThw.length} images but the batch has ${cursor.image} <|vision_start|><|image_pad|> pairs`,
    );
  }
  return { positionIds, ropeDeltas };
}

/** Slots of each segment of one row (real tokens only), in order; throws on non-contiguous or negative ids. */
function segmentSlots(mask: number[], seg: number[], b: number): Map<number, number[]> {
  const out = new Map<number, number[]>();
  let last = -1;
  mask.forEach((m, t) => {
    if (m !== 1) return;
    const s = seg[t];
    if (!Number.isInteger(s) || s < 0 || s < last) {
      throw new Error(
        `segmentIds row ${b}: token ${t} has segment ${s} after segment ${last}; real tokens need integer ids >= 0 that never decrease (one contiguous run per packed sequence, -1 only on padding)`,
      );
    }
    last = s;
    const slots = out.get(s);
    if (slots) slots.push(t);
    else out.set(s, [t]);
  });
  return out;
}

/** Text-only batch: `cumsum(mask) - 1`, padded slots 1, `delta = max + 1 - T` (max includes the 1s, as HF). */
function textOnlyRopeIndex(mask: number[][]): RopeIndex {
  const rows = mask.map((m) => {
    let c = 0;
    return m.map((v) => {
      c += v;
      return v === 1 ? c - 1 : 1;
    });
  });
  const ropeDeltas = rows.map((r) => (r.length ? Math.max(...r) : -1) + 1 - r.length);
  return { positionIds: [rows, rows.map((r) => [...r]), rows.map((r) => [...r])], ropeDeltas };
}

/** Positions `[3][n]` for one unpadded sample; advances the batch-wide image cursor. */
function samplePositions(
  tokens: number[],
  grids: number[][],
  cursor: { image: number },
  cfg: RopeTextConfig,
): number[][] {
  const m = cfg.vision_config.spatial_merge_size;
  let images = 0;
  for (let i = 0; i + 1 < tokens.length; i++) {
    if (tokens[i] === cfg.vision_start_token_id && tokens[i + 1] === cfg.video_token_id) {
      throw new Error('getRopeIndex: videos are not supported (found <|vision_start|><|video_pad|>)');
    }
    if (tokens[i] === cfg.vision_start_token_id && tokens[i + 1] === cfg.image_token_id) images++;
  }
  const out: number[][] = [[], [], []];
  let st = 0;
  let lastMax = -1;
  const pushText = (len: number): void => {
    const start = lastMax + 1;
    for (let k = 0; k < len; k++) for (let s = 0; s < 3; s++) out[s].push(start + k);
    if (len > 0) lastMax = start + len - 1;
  };
  for (let i = 0; i < images; i++) {
    const ed = tokens.indexOf(cfg.image_token_id, st);
    const grid = grids[cursor.image];
    if (grid === undefined)
      throw new Error(`getRopeIndex: imageGridThw has only ${grids.length} images; more found in inputIds`);
    cursor.image++;
    const [lt, lh, lw] = [grid[0], grid[1] / m, grid[2] / m];
    const textLen = ed - st;
    pushText(textLen);
    const base = lastMax + 1;
    for (let f = 0; f < lt; f++)
      for (let r = 0; r < lh; r++)
        for (let c = 0; c < lw; c++) {
          out[0].push(base);
          out[1].push(base + r);
          out[2].push(base + c);
        }
    lastMax = base + Math.max(0, lh - 1, lw - 1);
    st = ed + lt * lh * lw;
  }
  if (st < tokens.length) pushText(tokens.length - st);
  return out;
}

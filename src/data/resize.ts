// Image sizing for Qwen2.5-VL: HF `smart_resize` (spec §2.2) and Pillow's BICUBIC resampler (spec §2.3).
// Mirrors transformers 4.50 `image_processing_qwen2_vl.smart_resize` and Pillow `src/libImaging/Resample.c`
// (standard Pillow, 8 bits per channel, fixed point; not Pillow-SIMD).
//
// Layout legend: images are HWC uint8, `data[(y * w + x) * c + ch]`.
import { z } from 'zod';

/** Options of {@link smartResize}. Defaults are the Hub `preprocessor_config.json` values. */
export interface SmartResizeOptions {
  /** Both output sides are multiples of this (patch 14 × merge 2). */
  factor?: number;
  /** Lower bound on h·w after resizing (Hub: 3136 = 56·56). */
  minPixels?: number;
  /** Upper bound on h·w after resizing (Hub: 12845056 = 16384·28·28). */
  maxPixels?: number;
}

/** Largest allowed aspect ratio, as in HF and qwen-vl-utils (`MAX_RATIO`). */
export const MAX_ASPECT_RATIO = 200;

/**
 * Python's `round()`: round half to even (banker's rounding), on float64.
 * @example roundHalfEven(2.5) // 2
 * @example roundHalfEven(3.5) // 4
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Target (height, width) of an image, exactly as HF `smart_resize` (float64, banker's rounding).
 * Throws on sides below `factor` or an aspect ratio above 200, naming the size.
 * @example smartResize(70, 100) // [56, 112]  (70/28 = 2.5 rounds to 2)
 * @example smartResize(1080, 1920) // [1092, 1932]
 */
export function smartResize(height: number, width: number, opts: SmartResizeOptions = {}): [number, number] {
  const factor = opts.factor ?? 28;
  const minPixels = opts.minPixels ?? 3136;
  const maxPixels = opts.maxPixels ?? 12845056;
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new Error(`smartResize: image size (h=${height}, w=${width}) must be positive integers`);
  }
  if (!(minPixels > 0 && maxPixels >= minPixels)) {
    throw new Error(`smartResize: need 0 < minPixels (${minPixels}) <= maxPixels (${maxPixels})`);
  }
  if (height < factor || width < factor) {
    throw new Error(
      `image of size (h=${height}, w=${width}) is too small: both sides must be >= ${factor} px. ` +
        `Upscale or pad the image to at least ${factor}x${factor} before processing.`,
    );
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new Error(
      `image of size (h=${height}, w=${width}) has aspect ratio ${ratio.toFixed(1)} > ${MAX_ASPECT_RATIO}. ` +
        'Crop or pad the image to a less extreme aspect ratio.',
    );
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.floor(height / beta / factor) * factor;
    wBar = Math.floor(width / beta / factor) * factor;
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}

/** A packed HWC uint8 image. */
export interface RawImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** Pillow's fixed-point precision: 32 - 8 - 2 bits. */
const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** Keys cubic convolution kernel with a = -0.5 (Pillow `bicubic_filter`). */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Per-output-pixel source window and fixed-point weights of one axis. */
interface Coeffs {
  ksize: number;
  /** [outSize * 2]: first source index, tap count. */
  bounds: Int32Array;
  /** [outSize * ksize] fixed-point weights (may be negative); |sum| stays in int32 like Pillow's C ints. */
  weights: Int32Array;
}

/** Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `inSize` → `outSize` (whole box). */
export function bicubicCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      k[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < n; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // C `(int)(±0.5 + w * 2^22)`: truncation toward zero = round half away from zero.
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = n;
  }
  return { ksize, bounds, weights };
}

/** Pillow `clip8`: arithmetic shift by 22 then clamp to [0, 255]. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return Math.min(Math.max(v, 0), 255);
}

/** Horizontal pass over source rows [y0, y1): output is (y1 - y0) × outW. */
function resampleRows(img: RawImage, outW: number, y0: number, y1: number, cf: Coeffs): RawImage {
  const { data, width, channels: c } = img;
  const out = new Uint8Array((y1 - y0) * outW * c);
  const acc = new Int32Array(c);
  for (let y = y0; y < y1; y++) {
    const rowIn = y * width * c;
    const rowOut = (y - y0) * outW * c;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = cf.bounds[xx * 2];
      const n = cf.bounds[xx * 2 + 1];
      const kOff = xx * cf.ksize;
      if (c === 3) {
        // Fast path for RGB (the processor's case): three scalar accumulators.
        let a0 = HALF;
        let a1 = HALF;
        let a2 = HALF;
        for (let x = 0; x < n; x++) {
          const w = cf.weights[kOff + x];
          const p = rowIn + (xmin + x) * 3;
          a0 = (a0 + data[p] * w) | 0;
          a1 = (a1 + data[p + 1] * w) | 0;
          a2 = (a2 + data[p + 2] * w) | 0;
        }
        const q = rowOut + xx * 3;
        out[q] = clip8(a0);
        out[q + 1] = clip8(a1);
        out[q + 2] = clip8(a2);
        continue;
      }
      acc.fill(HALF);
      for (let x = 0; x < n; x++) {
        const w = cf.weights[kOff + x];
        const p = rowIn + (xmin + x) * c;
        for (let ch = 0; ch < c; ch++) acc[ch] += data[p + ch] * w;
      }
      for (let ch = 0; ch < c; ch++) out[rowOut + xx * c + ch] = clip8(acc[ch]);
    }
  }
  return { data: out, height: y1 - y0, width: outW, channels: c };
}

/** Vertical pass; `offset` is the first source row held by `img` (Pillow shifts the bounds). */
function resampleCols(img: RawImage, outH: number, offset: number, cf: Coeffs): RawImage {
  const { data, width, channels: c } = img;
  const stride = width * c;
  const out = new Uint8Array(outH * stride);
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = cf.bounds[yy * 2] - offset;
    const n = cf.bounds[yy * 2 + 1];
    acc.fill(HALF);
    // Row-major accumulation (same integer sums as Pillow's per-pixel loop, cache-friendly order).
    for (let y = 0; y < n; y++) {
      const w = cf.weights[yy * cf.ksize + y];
      const src = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i] + data[src + i] * w) | 0;
    }
    for (let i = 0; i < stride; i++) out[yy * stride + i] = clip8(acc[i]);
  }
  return { data: out, height: outH, width, channels: c };
}

/**
 * Resize a uint8 HWC image like Pillow 9.x `Image.resize((w, h), Image.BICUBIC)`: separable fixed-point
 * bicubic, horizontal pass first (only over the source rows the vertical pass reads), uint8 between passes;
 * an axis whose size is unchanged is not resampled.
 * @example resizeBicubic({ data, height: 70, width: 100, channels: 3 }, 56, 112).data.length // 56*112*3
 */
export function resizeBicubic(img: RawImage, outH: number, outW: number): RawImage {
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0)) {
    throw new Error(`resizeBicubic: target size (h=${outH}, w=${outW}) must be positive integers`);
  }
  if (img.data.length !== img.height * img.width * img.channels) {
    throw new Error(
      `resizeBicubic: data length ${img.data.length} != h*w*c = ${img.height}*${img.width}*${img.channels}`,
    );
  }
  const needH = outW !== img.width;
  const needV = outH !== img.height;
  let cur = img;
  let offset = 0;
  const vert = needV ? bicubicCoeffs(img.height, outH) : null;
  if (needH) {
    const horiz = bicubicCoeffs(img.width, outW);
    const y0 = vert ? vert.bounds[0] : 0;
    const y1 = vert ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : img.height;
    cur = resampleRows(img, outW, y0, y1, horiz);
    offset = y0;
  }
  if (vert) cur = resampleCols(cur, outH, offset, vert);
  if (cur === img) return { ...img, data: img.data.slice() };
  return cur;
}

/** The processor's image-size settings as config/CLI fields (HF max_pixels / min_pixels, Hub defaults). */
export const imageSizeFields = {
  maxPixels: z
    .number()
    .int()
    .min(3136)
    .default(12845056)
    .describe(
      "Upper bound on an image's pixels after resizing (HF max_pixels; Hub default 12845056 = 16384*28*28); an image takes at most maxPixels/784 tokens, e.g. 1003520 = 1280*28*28 -> 1280 tokens",
    ),
  minPixels: z
    .number()
    .int()
    .min(784)
    .default(3136)
    .describe("Lower bound on an image's pixels after resizing (HF min_pixels; Hub default 3136 = 56*56)"),
};

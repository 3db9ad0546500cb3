// Image preprocessing for Qwen2.5-VL: decode (sharp) → RGB → smart_resize + Pillow bicubic → rescale →
// normalise → temporal duplication + patchify. Mirrors transformers 4.50 `Qwen2VLImageProcessor` (slow/PIL
// path, spec §2.3–2.4) and, for `alpha: 'white'`, qwen-vl-utils `to_rgb`.
//
// Shape legend: H W image height/width after resizing; C = 3 channels; P = 14 patch; tp = 2 temporal patch;
// m = 2 merge; N = grid_t·(H/14)·(W/14) patches; one pixelValues row = C·tp·P·P = 1176 floats.
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { type RawImage, resizeBicubic, type SmartResizeOptions, smartResize } from './resize.js';

/** An image given as a file path or its encoded bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF, ...). */
export type ImageInput = string | Uint8Array;

/** CLIP mean/std of the Hub `preprocessor_config.json`. */
export const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711] as const;
export const PATCH_SIZE = 14;
export const TEMPORAL_PATCH_SIZE = 2;
export const MERGE_SIZE = 2;
/** Floats per pixelValues row: C·tp·P·P. */
export const PATCH_DIM = 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE;
/** Pillow's decompression-bomb error threshold (2 × `Image.MAX_IMAGE_PIXELS`). */
export const DEFAULT_MAX_INPUT_PIXELS = 178_956_970;

/** How to turn an image with an alpha channel into RGB. */
export type AlphaMode = 'drop' | 'white';

export interface LoadImageOptions {
  /** 'drop' (HF `convert("RGB")`, default) or 'white' (composite on white with alpha as mask, qwen-vl-utils). */
  alpha?: AlphaMode;
  /** Refuse images with more pixels than this (decompression-bomb guard). */
  maxInputPixels?: number;
}

export interface ImageProcessorOptions extends LoadImageOptions, SmartResizeOptions {}

/** One processed image: rows of {@link PATCH_DIM} floats in HF order. */
export interface ProcessedImage {
  /** [N, 1176] row-major. */
  pixelValues: Float32Array;
  /** [grid_t, grid_h, grid_w] in patch units. */
  gridThw: [number, number, number];
  /** Size after smart_resize, [H, W]. */
  resized: [number, number];
}

function describe(input: ImageInput): string {
  return typeof input === 'string' ? `'${input}'` : `<Buffer of ${input.byteLength} bytes>`;
}

/** Pillow `paste(rgba, mask=alpha)` onto white: DIV255(255·(255-a) + c·a) with Pillow's rounding. */
function blendOnWhite(c: number, a: number): number {
  const tmp = 255 * (255 - a) + c * a + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

/** Raw 1–4 channel uint8 pixels → packed RGB. Gray is replicated; alpha dropped or composited on white. */
export function toRgb(img: RawImage, alpha: AlphaMode = 'drop'): RawImage {
  const { data, height, width, channels: c } = img;
  if (c < 1 || c > 4) throw new Error(`toRgb: unsupported channel count ${c} (expected 1-4)`);
  if (c === 3) return img; // already packed RGB: no copy (a 100 MP photo is 300 MB)
  const hasAlpha = c === 2 || c === 4;
  const color = c >= 3;
  const out = new Uint8Array(height * width * 3);
  for (let i = 0; i < height * width; i++) {
    const a = hasAlpha ? data[i * c + c - 1] : 255;
    for (let ch = 0; ch < 3; ch++) {
      const v = data[i * c + (color ? ch : 0)];
      out[i * 3 + ch] = alpha === 'white' && hasAlpha ? blendOnWhite(v, a) : v;
    }
  }
  return { data: out, height, width, channels: 3 };
}

/**
 * Decode an image file or buffer to packed RGB uint8 (HWC), like HF `convert_to_rgb` (alpha dropped) or,
 * with `alpha: 'white'`, qwen-vl-utils `to_rgb`. Palette and gray images become RGB. Like Pillow: no EXIF
 * rotation and no ICC colour management (stored pixel values are used as they are).
 * @example const rgb = await loadImage('cat.png'); // { data, height, width, channels: 3 }
 */
export async function loadImage(input: ImageInput, opts: LoadImageOptions = {}): Promise<RawImage> {
  const limit = opts.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  const bytes = await readBytes(input);
  await readHeader(input, bytes, limit);
  try {
    // keepIccProfile: no colour management, like Pillow (sharp would otherwise convert an embedded profile to sRGB).
    const { data, info } = await sharp(bytes, { limitInputPixels: limit, failOn: 'error' })
      .keepIccProfile()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const raw = { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), ...dims(info) };
    return toRgb(raw, opts.alpha ?? 'drop');
  } catch (e) {
    throw new Error(
      `cannot decode image ${describe(input)} (corrupt or unsupported format): ${(e as Error).message}`,
    );
  }
}

async function readBytes(input: ImageInput): Promise<Uint8Array> {
  try {
    return typeof input === 'string' ? await readFile(input) : input;
  } catch (e) {
    throw new Error(`cannot read image ${describe(input)}: ${(e as Error).message}`);
  }
}

/** Size from the file header only (no pixel decoding); refuses more than `limit` pixels, naming the image. */
async function readHeader(input: ImageInput, bytes: Uint8Array, limit: number): Promise<[number, number]> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new Error(
      `cannot decode image ${describe(input)} (corrupt or unsupported format): ${(e as Error).message}`,
    );
  }
  // Multi-page formats (GIF, TIFF): the first page is decoded, like Pillow.
  const height = meta.pageHeight ?? meta.height ?? 0;
  const width = meta.width ?? 0;
  const pixels = width * height;
  if (pixels > limit) {
    throw new Error(
      `image ${describe(input)} is ${width}x${height} = ${pixels} pixels, over the limit of ${limit} ` +
        '(decompression-bomb guard). Downscale it first or raise maxInputPixels if you trust the file.',
    );
  }
  return [height, width];
}

/** What an image will become, known from its header alone. */
export interface ImageProbe {
  /** Stored size [H, W]. */
  size: [number, number];
  /** Size after smart_resize, [H, W]. */
  resized: [number, number];
  /** [grid_t, grid_h, grid_w] in patch units. */
  gridThw: [number, number, number];
  /** `<|image_pad|>` tokens the image takes in the prompt: t·h·w / merge². */
  tokens: number;
}

/**
 * Reads only the header of an image (file path or bytes) and returns its size, smart_resize target, grid and token
 * count, without decoding pixels: a 100-megapixel photo is sized in milliseconds. Errors name the image.
 * @example (await probeImage('photo.jpg', { maxPixels: 1280 * 28 * 28 })).tokens // <= 1280
 */
export async function probeImage(input: ImageInput, opts: ImageProcessorOptions = {}): Promise<ImageProbe> {
  const bytes = await readBytes(input);
  const size = await readHeader(input, bytes, opts.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  let resized: [number, number];
  try {
    resized = smartResize(size[0], size[1], opts);
  } catch (e) {
    throw new Error(`image ${describe(input)}: ${(e as Error).message}`);
  }
  const gridThw: [number, number, number] = [1, resized[0] / PATCH_SIZE, resized[1] / PATCH_SIZE];
  return { size, resized, gridThw, tokens: (gridThw[1] * gridThw[2]) / MERGE_SIZE ** 2 };
}

function dims(info: OutputInfo): { height: number; width: number; channels: number } {
  return { height: info.height, width: info.width, channels: info.channels };
}

/**
 * Rescale by 1/255 (float64 then float32) and normalise per channel in float32; HWC uint8 → CHW float32.
 * Bit-identical to numpy float32 (`Math.fround` after each op).
 * @example rescaleNormalize(rgb).length // 3 * H * W
 */
export function rescaleNormalize(img: RawImage): Float32Array {
  const { data, height, width } = img;
  if (img.channels !== 3) throw new Error(`rescaleNormalize: expected 3 channels, got ${img.channels}`);
  const hw = height * width;
  const out = new Float32Array(3 * hw);
  for (let ch = 0; ch < 3; ch++) {
    const mean = Math.fround(IMAGE_MEAN[ch]);
    const std = Math.fround(IMAGE_STD[ch]);
    for (let i = 0; i < hw; i++) {
      const x = Math.fround(data[i * 3 + ch] * (1 / 255));
      out[ch * hw + i] = Math.fround(Math.fround(x - mean) / std);
    }
  }
  return out;
}

/**
 * Duplicate one CHW frame to tp = 2 frames and patchify in HF order (spec §2.4): rows ordered
 * (merged row, merged col, 2×2 sub-position), columns `c*392 + t*196 + py*14 + px`.
 * @example patchify(chw, 56, 84).gridThw // [1, 4, 6]
 */
export function patchify(chw: Float32Array, height: number, width: number): Omit<ProcessedImage, 'resized'> {
  const P = PATCH_SIZE;
  const m = MERGE_SIZE;
  if (height % (P * m) !== 0 || width % (P * m) !== 0) {
    throw new Error(
      `patchify: size (h=${height}, w=${width}) must be multiples of ${P * m}; use smartResize first`,
    );
  }
  const gh = height / P;
  const gw = width / P;
  const hw = height * width;
  const out = new Float32Array(gh * gw * PATCH_DIM);
  let row = 0;
  for (let bh = 0; bh < gh / m; bh++) {
    for (let bw = 0; bw < gw / m; bw++) {
      for (let sh = 0; sh < m; sh++) {
        for (let sw = 0; sw < m; sw++) {
          const y0 = (bh * m + sh) * P;
          const x0 = (bw * m + sw) * P;
          const base = row * PATCH_DIM;
          for (let c = 0; c < 3; c++) {
            for (let t = 0; t < TEMPORAL_PATCH_SIZE; t++) {
              const colBase = base + c * 392 + t * 196;
              for (let py = 0; py < P; py++) {
                const src = c * hw + (y0 + py) * width + x0;
                const dst = colBase + py * P;
                for (let px = 0; px < P; px++) out[dst + px] = chw[src + px];
              }
            }
          }
          row++;
        }
      }
    }
  }
  return { pixelValues: out, gridThw: [1, gh, gw] };
}

/**
 * Full slow-processor pipeline for an RGB image already in memory: smart_resize → Pillow bicubic (skipped
 * when the size is a fixed point) → rescale/normalise → patchify.
 * @example processRgb(rgb, { maxPixels: 12544 }).gridThw // [1, 8, 6] for a 168x112 image
 */
export function processRgb(rgb: RawImage, opts: SmartResizeOptions = {}): ProcessedImage {
  const [h, w] = smartResize(rgb.height, rgb.width, opts);
  const resized = h === rgb.height && w === rgb.width ? rgb : resizeBicubic(rgb, h, w);
  return { ...patchify(rescaleNormalize(resized), h, w), resized: [h, w] };
}

/**
 * Decode and preprocess one image (path or bytes) into `pixelValues [N, 1176]` and `gridThw`.
 * @example const { pixelValues, gridThw } = await processImage('images/img_h56_w84.png'); // gridThw [1, 4, 6]
 */
export async function processImage(
  input: ImageInput,
  opts: ImageProcessorOptions = {},
): Promise<ProcessedImage> {
  const rgb = await loadImage(input, opts);
  try {
    return processRgb(rgb, opts);
  } catch (e) {
    throw new Error(`image ${describe(input)}: ${(e as Error).message}`);
  }
}

/** Concatenate processed images HF-style: `pixelValues [ΣN_i, 1176]`, one grid row per image. */
export function concatImages(images: ProcessedImage[]): {
  pixelValues: Float32Array;
  imageGridThw: number[][];
} {
  const total = images.reduce((s, im) => s + im.pixelValues.length, 0);
  const pixelValues = new Float32Array(total);
  let off = 0;
  for (const im of images) {
    pixelValues.set(im.pixelValues, off);
    off += im.pixelValues.length;
  }
  return { pixelValues, imageGridThw: images.map((im) => [...im.gridThw]) };
}

// Image pipeline parity with HF transformers 4.50 slow Qwen2VLImageProcessor (fixture image_processor.safetensors),
// qwen-vl-utils white compositing, RGB conversion of gray/palette/alpha images, and decode guards.
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  concatImages,
  loadImage,
  PATCH_DIM,
  patchify,
  processImage,
  rescaleNormalize,
  toRgb,
} from '../../src/data/image.js';
import { type HostTensor, readSafetensors } from '../../src/io/safetensors.js';
import { expectClose, FIXTURE } from '../helpers.js';

const IMAGES = [
  'img_h56_w84',
  'img_h112_w56',
  'img_h70_w100',
  'img_h84_w56_rgba',
  'img_h168_w112',
  'img_h30_w60',
];
const SETTINGS = {
  hub: { minPixels: 3136, maxPixels: 12845056 },
  small_max: { minPixels: 3136, maxPixels: 12544 },
};
const imgPath = (name: string) => `${FIXTURE}/images/${name}.png`;

let st: Map<string, HostTensor>;
beforeAll(async () => {
  st = await readSafetensors(`${FIXTURE}/image_processor.safetensors`);
});

describe('processImage parity with HF Qwen2VLImageProcessor (slow path)', () => {
  const cases = IMAGES.flatMap((name) =>
    (['hub', 'small_max'] as const).flatMap((setting) => [
      [name, setting, 'drop'] as const,
      ...(name.endsWith('rgba') ? [[name, setting, 'white'] as const] : []),
    ]),
  );
  it.each(cases)('%s %s alpha=%s: pixel_values exact, grid exact', async (name, setting, alpha) => {
    const key = alpha === 'white' ? `${name}.qwen_vl_utils_rgb.${setting}` : `${name}.${setting}`;
    const out = await processImage(imgPath(name), { ...SETTINGS[setting], alpha });
    const ref = st.get(`${key}.pixel_values`) as HostTensor;
    expect(out.gridThw).toEqual([...(st.get(`${key}.image_grid_thw`) as HostTensor).data]);
    expect([out.pixelValues.length / PATCH_DIM, PATCH_DIM]).toEqual(ref.shape);
    expect(out.resized).toEqual((st.get(`${key}.resized_rgb_uint8`) as HostTensor).shape.slice(0, 2));
    // Same-size images and the Pillow-exact resampler give bit-identical rows (tolerance 1e-6 as briefed).
    expectClose(out.pixelValues, ref.data, 1e-6, `${key}.pixel_values`);
  });

  it('white compositing equals qwen-vl-utils to_rgb input exactly', async () => {
    const ref = st.get('img_h84_w56_rgba.qwen_vl_utils_rgb.input_rgb_uint8') as HostTensor;
    const rgb = await loadImage(imgPath('img_h84_w56_rgba'), { alpha: 'white' });
    expect([rgb.height, rgb.width, rgb.channels]).toEqual(ref.shape);
    expect(Buffer.from(rgb.data).equals(Buffer.from(ref.data))).toBe(true);
    const dropped = await loadImage(imgPath('img_h84_w56_rgba'));
    expect(Buffer.from(dropped.data).equals(Buffer.from(rgb.data))).toBe(false);
  });

  it('accepts encoded bytes as well as paths', async () => {
    const bytes = await sharp(imgPath('img_h56_w84')).png().toBuffer();
    const a = await processImage(bytes);
    const b = await processImage(imgPath('img_h56_w84'));
    expect(a.pixelValues).toEqual(b.pixelValues);
  });
});

describe('pixel math on literal values', () => {
  it('rescale+normalise matches float32 numpy values for 0, 128, 255', () => {
    const img = { data: new Uint8Array([0, 128, 255]), height: 1, width: 1, channels: 3 };
    const v = rescaleNormalize(img);
    // (fround(x/255) - fround(mean)) / fround(std), each op in float32
    const f = Math.fround;
    expect(v[0]).toBe(f(f(0 - f(0.48145466)) / f(0.26862954)));
    expect(v[1]).toBe(f(f(f(128 * (1 / 255)) - f(0.4578275)) / f(0.26130258)));
    expect(v[2]).toBe(f(f(1 - f(0.40821073)) / f(0.27577711)));
    expect(v[0]).toBeCloseTo(-1.79226, 4);
  });
  it('patchify puts each 2x2 merge group in 4 consecutive rows, columns c*392 + t*196 + py*14 + px', () => {
    const h = 28;
    const w = 56;
    const chw = new Float32Array(3 * h * w).map((_, i) => i);
    const { pixelValues, gridThw } = patchify(chw, h, w);
    expect(gridThw).toEqual([1, 2, 4]);
    const at = (row: number, c: number, t: number, py: number, px: number) =>
      pixelValues[row * PATCH_DIM + c * 392 + t * 196 + py * 14 + px];
    // row 5 = second merge group (cols 28..55), sub-position (0,1) -> patch at y 0, x 42
    expect(at(5, 2, 1, 3, 7)).toBe(2 * h * w + 3 * w + 42 + 7);
    // both temporal copies are the same frame
    expect(at(6, 1, 0, 13, 0)).toBe(at(6, 1, 1, 13, 0));
    expect(at(6, 1, 0, 13, 0)).toBe(h * w + (14 + 13) * w + 28);
    expect(() => patchify(chw, 14, 112)).toThrow(/multiples of 28/);
  });
  it('concatImages stacks rows sample by sample', () => {
    const a = {
      pixelValues: new Float32Array(PATCH_DIM * 4).fill(1),
      gridThw: [1, 2, 2] as [number, number, number],
      resized: [28, 28] as [number, number],
    };
    const b = {
      ...a,
      pixelValues: new Float32Array(PATCH_DIM * 8).fill(2),
      gridThw: [1, 2, 4] as [number, number, number],
    };
    const out = concatImages([a, b]);
    expect(out.pixelValues.length).toBe(12 * PATCH_DIM);
    expect(out.pixelValues[4 * PATCH_DIM - 1]).toBe(1);
    expect(out.pixelValues[4 * PATCH_DIM]).toBe(2);
    expect(out.imageGridThw).toEqual([
      [1, 2, 2],
      [1, 2, 4],
    ]);
  });
});

describe('RGB conversion', () => {
  const gray = new Uint8Array([0, 50, 100, 150, 200, 250]);
  it('gray PNG becomes RGB with equal channels', async () => {
    const png = await sharp(gray, { raw: { width: 3, height: 2, channels: 1 } })
      .png()
      .toBuffer();
    const rgb = await loadImage(png);
    expect(rgb.channels).toBe(3);
    expect([...rgb.data]).toEqual([...gray].flatMap((v) => [v, v, v]));
  });
  it('gray+alpha: alpha dropped by default, composited on white with alpha as mask on request', async () => {
    const la = new Uint8Array([100, 255, 100, 0, 100, 128, 0, 64]);
    const png = await sharp(la, { raw: { width: 2, height: 2, channels: 2 } })
      .png()
      .toBuffer();
    expect([...(await loadImage(png)).data]).toEqual([100, 100, 100, 100, 100, 100, 100, 100, 100, 0, 0, 0]);
    // Pillow paste: DIV255(255*(255-a) + v*a): a=128,v=100 -> 177; a=64,v=0 -> 191
    expect([...(await loadImage(png, { alpha: 'white' })).data]).toEqual([
      100, 100, 100, 255, 255, 255, 177, 177, 177, 191, 191, 191,
    ]);
  });
  it('palette PNG decodes to its RGB colours', async () => {
    const colours = [
      [255, 0, 0],
      [0, 0, 255],
      [10, 200, 30],
    ];
    const raw = new Uint8Array(Array.from({ length: 64 }, (_, i) => colours[i % 3]).flat());
    const png = await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } })
      .png({ palette: true, colours: 4, dither: 0 })
      .toBuffer();
    expect(png[25]).toBe(3); // IHDR colour type 3 = indexed (palette)
    const rgb = await loadImage(png);
    expect(Buffer.from(rgb.data).equals(Buffer.from(raw))).toBe(true);
  });
  it('ignores an embedded ICC profile like Pillow: returns the stored pixel values', async () => {
    const raw = Buffer.from(Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 37) % 256));
    const png = await sharp(raw, { raw: { width: 4, height: 4, channels: 3 } })
      .withIccProfile('p3')
      .png({ adaptiveFiltering: false, compressionLevel: 0 })
      .toBuffer();
    // The stored (P3-encoded) bytes, read straight from the IDAT stream: filter byte 0 + 12 bytes per row.
    const idat: Buffer[] = [];
    for (let off = 8; off < png.length; ) {
      const len = png.readUInt32BE(off);
      if (png.toString('ascii', off + 4, off + 8) === 'IDAT') idat.push(png.subarray(off + 8, off + 8 + len));
      off += 12 + len;
    }
    const rows = inflateSync(Buffer.concat(idat));
    const stored = [0, 1, 2, 3].flatMap((y) => {
      expect(rows[y * 13]).toBe(0);
      return [...rows.subarray(y * 13 + 1, y * 13 + 13)];
    });
    expect(stored).not.toEqual([...raw]); // the profile really changed the stored values
    expect([...(await loadImage(png)).data]).toEqual(stored);
  });
  it('toRgb rejects unsupported channel counts', () => {
    expect(() => toRgb({ data: new Uint8Array(5), height: 1, width: 1, channels: 5 })).toThrow(
      /channel count 5/,
    );
  });
});

/** A PNG whose header claims `w`x`h` pixels but carries almost no data (a decompression bomb's header). */
function bombPng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const sig = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([
    sig,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(16))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decode guards', () => {
  it('refuses a decompression bomb before decoding, naming size and fix', async () => {
    await expect(loadImage(bombPng(100000, 100000))).rejects.toThrow(
      /100000x100000 = 10000000000 pixels, over the limit of 178956970.*maxInputPixels/,
    );
  });
  it('the pixel limit is configurable', async () => {
    await expect(processImage(imgPath('img_h56_w84'), { maxInputPixels: 1000 })).rejects.toThrow(
      /img_h56_w84\.png' is 84x56 = 4704 pixels, over the limit of 1000/,
    );
  });
  it('corrupt bytes and files name the culprit', async () => {
    await expect(loadImage(Buffer.from('definitely not an image'))).rejects.toThrow(
      /cannot decode image <Buffer of 23 bytes> \(corrupt or unsupported format\)/,
    );
    await expect(loadImage('/nonexistent/dir/x.png')).rejects.toThrow(
      /cannot read image '\/nonexistent\/dir\/x\.png'/,
    );
    const junk = path.join(os.tmpdir(), `ovr-corrupt-${process.pid}.png`);
    writeFileSync(junk, Buffer.from('\x89PNG\r\n\x1a\n garbage'));
    await expect(loadImage(junk)).rejects.toThrow(
      `cannot decode image '${junk}' (corrupt or unsupported format)`,
    );
    rmSync(junk);
    const good = await sharp(imgPath('img_h168_w112')).png().toBuffer();
    const truncated = good.subarray(0, Math.floor(good.length / 2));
    await expect(loadImage(truncated)).rejects.toThrow(/cannot decode image <Buffer of \d+ bytes>/);
  });
  it('a too-small image fails with the smart_resize message and the file name', async () => {
    const tiny = await sharp({ create: { width: 300, height: 20, channels: 3, background: '#fff' } })
      .png()
      .toBuffer();
    await expect(processImage(tiny)).rejects.toThrow(
      /<Buffer of \d+ bytes>: image of size \(h=20, w=300\) is too small/,
    );
  });
});

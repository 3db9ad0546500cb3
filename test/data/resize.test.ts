// smartResize against the spec §2.2 table, and the Pillow-exact bicubic resampler against Pillow 9.4 output.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadImage } from '../../src/data/image.js';
import { bicubicCoeffs, resizeBicubic, roundHalfEven, smartResize } from '../../src/data/resize.js';
import { type HostTensor, readSafetensors } from '../../src/io/safetensors.js';
import { FIXTURE } from '../helpers.js';

const HUB = { minPixels: 3136, maxPixels: 12845056 };
const CLASS_DEFAULT = { minPixels: 3136, maxPixels: 1003520 };

describe('roundHalfEven', () => {
  it('matches Python round() on halves and non-halves', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.5001, 7].map((x) => roundHalfEven(x) + 0)).toEqual([
      0, 2, 2, 4, 0, -2, 2, 3, 7,
    ]);
  });
});

describe('smartResize (spec §2.2 table)', () => {
  const table: [[number, number], [number, number], [number, number]][] = [
    [
      [70, 70],
      [56, 56],
      [56, 56],
    ],
    [
      [42, 100],
      [56, 112],
      [56, 112],
    ],
    [
      [480, 640],
      [476, 644],
      [476, 644],
    ],
    [
      [1080, 1920],
      [1092, 1932],
      [728, 1316],
    ],
    [
      [2000, 3000],
      [1988, 2996],
      [812, 1204],
    ],
  ];
  it.each(table)('%j -> hub %j, class default %j', ([h, w], hub, cls) => {
    expect(smartResize(h, w, HUB)).toEqual(hub);
    expect(smartResize(h, w, CLASS_DEFAULT)).toEqual(cls);
  });
  it('uses banker rounding: 70/28 = 2.5 rounds to 2 (fixture img_h70_w100 -> 56x112)', () => {
    expect(smartResize(70, 100)).toEqual([56, 112]);
    expect(smartResize(98, 98)).toEqual([112, 112]); // 3.5 -> 4
  });
  it('defaults to the Hub limits and factor 28', () => {
    expect(smartResize(1080, 1920)).toEqual([1092, 1932]);
    expect(smartResize(30, 60)).toEqual([56, 84]); // min_pixels upscale
    expect(smartResize(168, 112, { maxPixels: 12544 })).toEqual([112, 84]); // max_pixels downscale
  });
  it('rejects a side below 28 like HF 4.50, naming the size and the fix', () => {
    expect(() => smartResize(20, 300)).toThrow(/\(h=20, w=300\) is too small.*>= 28 px.*Upscale or pad/);
  });
  it('rejects aspect ratio > 200 and bad limits', () => {
    expect(() => smartResize(28, 5656)).toThrow(/aspect ratio 202\.0 > 200/);
    expect(smartResize(28, 5600)[0]).toBe(28);
    expect(() => smartResize(56, 56, { minPixels: 10, maxPixels: 5 })).toThrow(/minPixels/);
    expect(() => smartResize(56.5, 56)).toThrow(/positive integers/);
  });
  it('every output is a multiple of the factor within the limits', () => {
    for (const [h, w] of [
      [29, 5000],
      [3000, 29],
      [777, 1234],
      [10000, 10000],
    ]) {
      const [a, b] = smartResize(h, w, CLASS_DEFAULT);
      expect(a % 28).toBe(0);
      expect(b % 28).toBe(0);
      expect(a * b).toBeLessThanOrEqual(1003520);
      expect(a * b).toBeGreaterThanOrEqual(3136);
    }
  });
});

describe('bicubic resampler (Pillow Resample.c)', () => {
  it('fixed-point weights of each output pixel sum to 2^22 within rounding', () => {
    for (const [inS, outS] of [
      [100, 112],
      [60, 84],
      [168, 112],
      [7, 3],
    ]) {
      const cf = bicubicCoeffs(inS, outS);
      for (let i = 0; i < outS; i++) {
        let s = 0;
        for (let k = 0; k < cf.bounds[i * 2 + 1]; k++) s += cf.weights[i * cf.ksize + k];
        expect(Math.abs(s - 2 ** 22)).toBeLessThanOrEqual(cf.ksize);
      }
    }
  });
  it('keeps a constant image constant and copies on same size', () => {
    const img = { data: new Uint8Array(9 * 13 * 3).fill(200), height: 9, width: 13, channels: 3 };
    expect(resizeBicubic(img, 28, 5).data.every((v) => v === 200)).toBe(true);
    const same = resizeBicubic(img, 9, 13);
    expect(same.data).toEqual(img.data);
    expect(same.data).not.toBe(img.data);
    expect(() => resizeBicubic(img, 0, 5)).toThrow(/positive integers/);
  });

  let st: Map<string, HostTensor>;
  beforeAll(async () => {
    st = await readSafetensors(`${FIXTURE}/image_processor.safetensors`);
  });
  const cases = [
    ['img_h70_w100', 'hub'],
    ['img_h30_w60', 'hub'],
    ['img_h168_w112', 'small_max'],
  ] as const;
  it.each(cases)(
    '%s (%s) equals Pillow 9.4 BICUBIC exactly; sharp cubic for comparison',
    async (name, setting) => {
      const ref = st.get(`${name}.${setting}.resized_rgb_uint8`) as HostTensor;
      const [h, w] = ref.shape;
      const file = `${FIXTURE}/images/${name}.png`;
      const ours = resizeBicubic(await loadImage(file), h, w).data;
      const theirs = await sharp(file)
        .removeAlpha()
        .resize(w, h, { kernel: 'cubic', fit: 'fill' })
        .raw()
        .toBuffer();
      const stats = (a: ArrayLike<number>) => {
        let max = 0;
        let sum = 0;
        for (let i = 0; i < ref.data.length; i++) {
          const d = Math.abs(a[i] - ref.data[i]);
          max = Math.max(max, d);
          sum += d;
        }
        return { max, mean: sum / ref.data.length };
      };
      const o = stats(ours);
      const s = stats(theirs);
      console.log(
        `${name} -> ${h}x${w}: ours max ${o.max} mean ${o.mean.toFixed(4)} | sharp cubic max ${s.max} mean ${s.mean.toFixed(4)} (uint8 levels)`,
      );
      expect(ours.length).toBe(ref.data.length);
      expect(o.max).toBe(0);
    },
  );
});

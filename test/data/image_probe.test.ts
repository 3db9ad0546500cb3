// Header-only image sizing: probeImage agrees with the full pipeline (processImage) on every fixture image and on a
// large photo, processor({ pixels: false }) gives the same ids/labels/grids as the full processor without decoding,
// and a 100-megapixel image is sized in well under a second (the full decode takes 10-30 s on this machine).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { probeImage, processImage } from '../../src/data/image.js';
import { processor } from '../../src/data/processor.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { FIXTURE } from '../helpers.js';

const IMAGES = ['img_h56_w84', 'img_h112_w56', 'img_h70_w100', 'img_h84_w56_rgba', 'img_h168_w112'];
const img = (name: string) => `${FIXTURE}/images/${name}.png`;
const tmp = mkdtempSync(path.join(tmpdir(), 'ovr-probe-'));

/** A noisy JPEG photo of w x h (noise so that the encoder cannot make it trivially small). */
async function photo(w: number, h: number, name: string): Promise<string> {
  const file = path.join(tmp, name);
  await sharp({
    create: {
      width: w,
      height: h,
      channels: 3,
      background: '#7a5',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  })
    .jpeg({ quality: 70 })
    .toFile(file);
  return file;
}

let tok: QwenTokenizer;
beforeAll(async () => {
  tok = await defaultTokenizer();
});

describe('probeImage', () => {
  it.each([
    ['hub', {}],
    ['small max', { maxPixels: 12544 }],
    ['large min', { minPixels: 112 * 112 }],
  ])('equals processImage on every fixture image (%s)', async (_n, opts) => {
    for (const name of IMAGES) {
      const p = await probeImage(img(name), opts);
      const full = await processImage(img(name), opts);
      expect([p.resized, p.gridThw], name).toEqual([full.resized, full.gridThw]);
      expect(p.tokens * 4 * 1176).toBe(full.pixelValues.length); // 4 patch rows per token
    }
  });

  it('equals processImage on a 1.2 MP photo, and names the image on errors', async () => {
    const f = await photo(1200, 1000, 'p1200.jpg');
    const p = await probeImage(f);
    const full = await processImage(f);
    expect(p.size).toEqual([1000, 1200]);
    expect([p.resized, p.gridThw]).toEqual([full.resized, full.gridThw]);
    expect(p.tokens).toBe((full.resized[0] / 28) * (full.resized[1] / 28));
    await expect(probeImage(f, { maxInputPixels: 1000 })).rejects.toThrow(`image '${f}' is 1200x1000`);
    const small = path.join(tmp, 'small.png');
    await sharp({ create: { width: 60, height: 20, channels: 3, background: '#000' } })
      .png()
      .toFile(small);
    await expect(probeImage(small)).rejects.toThrow(
      `image '${small}': image of size (h=20, w=60) is too small`,
    );
  });

  it('sizes a 100 MP photo from its header in under a second', async () => {
    const f = path.join(tmp, 'huge.jpg');
    await sharp({ create: { width: 10000, height: 10000, channels: 3, background: '#7a5' } })
      .jpeg()
      .toFile(f);
    const t0 = performance.now();
    const p = await probeImage(f, { maxPixels: 1280 * 28 * 28 });
    const ms = performance.now() - t0;
    console.log(`probeImage 100 MP: ${ms.toFixed(0)} ms, ${p.tokens} tokens at maxPixels 1280*28*28`);
    expect(ms).toBeLessThan(1000);
    expect(p.size).toEqual([10000, 10000]);
    expect(p.tokens).toBeLessThanOrEqual(1280);
  }, 60_000);
});

describe('processor({ pixels: false })', () => {
  it('gives the ids, labels and grids of the full processor, without pixel values', async () => {
    const conv = [
      {
        role: 'user' as const,
        content: [
          { type: 'image' as const, image: img('img_h168_w112') },
          { type: 'image' as const, image: img('img_h70_w100') },
          { type: 'text' as const, text: 'Compare.' },
        ],
      },
      { role: 'assistant' as const, content: 'The first is taller. \\boxed{1}' },
    ];
    const opts = { tokenizer: tok, labels: true, padding: 'right' as const, maxPixels: 28 * 28 * 12 };
    const full = await processor([conv], opts);
    const fast = await processor([conv], { ...opts, pixels: false });
    expect(fast.inputIds).toEqual(full.inputIds);
    expect(fast.labels).toEqual(full.labels);
    expect(fast.imageGridThw).toEqual(full.imageGridThw);
    expect(fast.pixelValues).toBeUndefined();
    expect(full.pixelValues?.length).toBeGreaterThan(0);
  });
});

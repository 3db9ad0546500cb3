// Too-long image samples: the suggested --max-pixels really makes each listed sample fit (checked with smartResize on
// the images' original sizes), the text-only case says so, and the message names file:line and each image.
import { describe, expect, it } from 'vitest';
import { smartResize } from '../../src/data/resize.js';
import { fittingMaxPixels, type TooLongSample, tooLongMessage } from '../../src/data/too_long.js';

/** A sample with `text` text tokens and images of the given original sizes, at Hub limits. */
function sample(
  where: string,
  text: number,
  sizes: [number, number][],
): TooLongSample & { sizes: [number, number][] } {
  const images = sizes.map(([h, w], i) => {
    const [rh, rw] = smartResize(h, w);
    return { file: `/data/img${i}.jpg`, gridThw: [1, rh / 14, rw / 14] };
  });
  const tokens = text + images.reduce((a, im) => a + (im.gridThw[1] * im.gridThw[2]) / 4, 0);
  return { where, tokens, images, sizes };
}
const tokensAt = (s: { sizes: [number, number][] }, text: number, maxPixels: number) =>
  text +
  s.sizes.reduce((a, [h, w]) => {
    const [rh, rw] = smartResize(h, w, { maxPixels });
    return a + (rh * rw) / 784;
  }, 0);

describe('fittingMaxPixels', () => {
  it('the suggestion makes every sample fit the limit', () => {
    const a = sample('a.jsonl:1', 40, [[1000, 1200]]);
    const b = sample('a.jsonl:7', 100, [
      [3000, 4000],
      [480, 640],
    ]);
    const fit = fittingMaxPixels([a, b], 1024)!;
    expect(fit % 784).toBe(0);
    expect(tokensAt(a, 40, fit)).toBeLessThanOrEqual(1024);
    expect(tokensAt(b, 100, fit)).toBeLessThanOrEqual(1024);
    // and it is not needlessly small: one more token's worth of pixels per image would not be the bound for both
    expect(fit).toBe(Math.floor((1024 - 100) / 2) * 784);
  });
  it('undefined when the text alone does not fit', () => {
    expect(fittingMaxPixels([sample('a:1', 1022, [[500, 500]])], 1024)).toBeUndefined();
  });
});

describe('tooLongMessage', () => {
  it('names file:line, tokens, each image and the fix', () => {
    const m = tooLongMessage(
      [sample('photo.jsonl:1', 40, [[1000, 1200]])],
      1024,
      'maxSeqLen',
      '--max-seq-len',
      'dropped',
    );
    expect(m).toBe(
      '1 sample(s) longer than maxSeqLen 1024 with their images are dropped:\n' +
        '  photo.jsonl:1: 1588 tokens (img0.jpg -> 1008x1204 px = 1548 tokens)\n' +
        'To keep them: lower --max-pixels (all of these fit with --max-pixels 771456 = 984*28*28) or raise --max-seq-len.',
    );
  });
  it('lists at most `show` samples', () => {
    const many = Array.from({ length: 7 }, (_, i) => sample(`d.jsonl:${i + 1}`, 10, [[2000, 2000]]));
    const m = tooLongMessage(many, 512, 'maxSeqLen', '--max-seq-len', 'dropped', 3);
    expect(m).toContain('d.jsonl:3');
    expect(m).not.toContain('d.jsonl:4');
    expect(m).toContain('... and 4 more');
  });
});

// The message for samples too long for the sequence limit because of their images: names each sample's file:line,
// its token count, each image's file, resized size and token count, and the `--max-pixels` that makes the images fit
// (image tokens = h·w / 28², and smart_resize keeps h·w <= maxPixels, so maxPixels = tokens·784 bounds the tokens).
import path from 'node:path';

/** One image of a too-long sample: its file and grid [t, h, w] in patch units. */
export interface TooLongImage {
  file: string;
  gridThw: number[];
}

/** A sample longer than the limit. */
export interface TooLongSample {
  /** `file:line` of the row. */
  where: string;
  /** Tokens with the images expanded. */
  tokens: number;
  images: TooLongImage[];
}

/** Pixels of one 28x28 merged patch: one image token. */
const TOKEN_PIXELS = 28 * 28;
const imageTokens = (g: number[]): number => (g[0] * g[1] * g[2]) / 4;

/**
 * The largest `maxPixels` (a multiple of 784) with which every listed sample fits `limit` tokens, or undefined when
 * some sample's text alone is too long.
 * @example fittingMaxPixels([{ where: 'a:1', tokens: 1100, images: [{ file: 'x.jpg', gridThw: [1, 40, 40] }] }], 1024) // 324 * 784
 */
export function fittingMaxPixels(samples: TooLongSample[], limit: number): number | undefined {
  let best = Number.POSITIVE_INFINITY;
  for (const s of samples) {
    const img = s.images.reduce((a, i) => a + imageTokens(i.gridThw), 0);
    const budget = Math.floor((limit - (s.tokens - img)) / Math.max(1, s.images.length));
    if (budget < 4) return undefined; // smart_resize never goes below min_pixels = 4 tokens
    best = Math.min(best, budget);
  }
  return Number.isFinite(best) ? best * TOKEN_PIXELS : undefined;
}

/**
 * A multi-line message listing too-long samples (at most `show`) and how to make them fit.
 * @example tooLongMessage(samples, 1024, 'maxSeqLen', '--max-seq-len', 'dropped')
 */
export function tooLongMessage(
  samples: TooLongSample[],
  limit: number,
  limitName: string,
  limitFlag: string,
  fate: string,
  show = 5,
): string {
  const lines = samples.slice(0, show).map((s) => {
    const imgs = s.images
      .map(
        (i) =>
          `${path.basename(i.file)} -> ${i.gridThw[1] * 14}x${i.gridThw[2] * 14} px = ${imageTokens(i.gridThw)} tokens`,
      )
      .join(', ');
    return `  ${s.where}: ${s.tokens} tokens${imgs ? ` (${imgs})` : ''}`;
  });
  if (samples.length > show) lines.push(`  ... and ${samples.length - show} more`);
  const fit = fittingMaxPixels(samples, limit);
  const fix = fit
    ? `lower --max-pixels (all of these fit with --max-pixels ${fit} = ${fit / TOKEN_PIXELS}*28*28) or raise ${limitFlag}`
    : `raise ${limitFlag} (the text alone is too long)`;
  return `${samples.length} sample(s) longer than ${limitName} ${limit} with their images are ${fate}:\n${lines.join('\n')}\nTo keep them: ${fix}.`;
}

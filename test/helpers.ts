// Shared test helpers: where ../shared lives, and closeness checks that print the max difference.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { loadConfig, type Qwen2_5_VLConfig } from '../src/model/config.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Project root (the folder holding package.json). */
export const ROOT = path.resolve(here, '..');
/** ../shared beside the project root: fixtures, data, spec. */
export const SHARED = path.resolve(ROOT, '..', 'shared');
/** Path inside ../shared. */
export const shared = (...parts: string[]): string => path.join(SHARED, ...parts);
/** The tiny HF parity fixture folder. */
export const FIXTURE = shared('fixtures', 'qwen2_5_vl_tiny');

type Numeric = ArrayLike<number>;

/** Max absolute and relative (to max |expected|) difference of two equally long arrays. */
export function maxDiff(actual: Numeric, expected: Numeric): { abs: number; rel: number; at: number } {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length} vs expected ${expected.length}`);
  }
  let abs = 0;
  let at = -1;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= abs)) {
      abs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { abs, rel: scale > 0 ? abs / scale : abs, at };
}

/** Assert |actual - expected| <= atol elementwise; logs the max abs/rel diff under `label`. */
export function expectClose(actual: Numeric, expected: Numeric, atol: number, label = 'values'): number {
  const d = maxDiff(actual, expected);
  console.log(
    `${label}: max abs diff ${d.abs.toExponential(3)}, rel ${d.rel.toExponential(3)} (atol ${atol})`,
  );
  expect(d.abs, `${label}: max abs diff ${d.abs} at ${d.at} exceeds ${atol}`).toBeLessThanOrEqual(atol);
  return d.abs;
}

/**
 * The tiny model's config with its vocabulary cut to 256 (special ids 250-255), for fast LM tests on random weights.
 * @example const model = Qwen2_5_VL.init(await tinyConfig256(), { seed: 1 });
 */
export async function tinyConfig256(): Promise<Qwen2_5_VLConfig> {
  return {
    ...(await loadConfig(path.join(ROOT, 'models', 'tiny'))),
    vocab_size: 256,
    image_token_id: 250,
    video_token_id: 251,
    vision_start_token_id: 252,
    vision_end_token_id: 253,
    bos_token_id: 254,
    eos_token_id: 255,
  };
}

// Vision tower parity against the HF fixture: window plan (exact), rotary angles, patch embed, every block,
// merger and image embeddings (≤ 1e-5 abs); plus the spec §3.3 worked examples and a leak check.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig, VisionConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/layers.js';
import { ropeInvFreq, visionRotaryAngles } from '../../src/model/rope.js';
import { type Trace, visionForward, windowPlan } from '../../src/model/vision.js';
import { expectClose } from '../helpers.js';
import {
  type CaseName,
  fixtureConfig,
  fixtureFile,
  fixtureParams,
  get,
  loadCase,
  setupBackend,
} from './fixture.js';

const IMAGE_CASES: CaseName[] = ['one_image', 'multi_image_batch'];
let cfg: Qwen2_5_VLConfig;
let params: Params;

beforeAll(async () => {
  await setupBackend();
  cfg = await fixtureConfig();
  params = await fixtureParams();
});
afterAll(() => tf.dispose(Object.values(params)));

describe('windowPlan (spec §3.3 examples, window_size 112)', () => {
  const v = (): VisionConfig => ({ ...cfg.vision_config, window_size: 112 });
  it('grid 12×10', () => {
    const p = windowPlan([[1, 12, 10]], v());
    expect(p.windowIndex).toEqual([
      0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 4, 9, 14, 19, 20, 21, 22, 23, 25, 26, 27, 28,
      24, 29,
    ]);
    expect(p.cuWindowSeqlens).toEqual([0, 64, 80, 112, 120]);
    expect(p.cuSeqlens).toEqual([0, 120]);
  });
  it('grid 16×16 drops the empty padding windows', () => {
    expect(windowPlan([[1, 16, 16]], v()).cuWindowSeqlens).toEqual([0, 64, 128, 192, 256]);
  });
  it('two frames give two full-attention segments', () => {
    expect(windowPlan([[2, 4, 4]], v()).cuSeqlens).toEqual([0, 16, 32]);
  });
});

describe.each(IMAGE_CASES)('vision parity: %s', (name) => {
  it('window index, cu seqlens (exact) and rotary angles', async () => {
    const c = await loadCase(name);
    const grid = gridOf(c);
    const plan = windowPlan(grid, cfg.vision_config);
    expect(plan.windowIndex).toEqual(Array.from(get(c, 'vision.window_index').data));
    expect(plan.cuWindowSeqlens).toEqual(Array.from(get(c, 'vision.cu_window_seqlens').data));
    expect(plan.cuSeqlens).toEqual(Array.from(get(c, 'vision.cu_seqlens').data));
    const common = await fixtureFile('common.safetensors');
    const inv = get(common, 'vision.rope_inv_freq').data as Float32Array;
    const Dhv = cfg.vision_config.hidden_size / cfg.vision_config.num_heads;
    expect(Array.from(ropeInvFreq(Dhv / 2, 10000))).toEqual(Array.from(inv));
    expectClose(
      visionRotaryAngles(grid, 2, inv),
      get(c, 'vision.rotary_angles').data,
      0,
      `${name} rotary angles`,
    );
  });

  it('patch embed, blocks, merger, image embeds ≤ 1e-5', async () => {
    const c = await loadCase(name);
    const px = get(c, 'pixel_values');
    const pixels = tf.tensor2d(px.data as Float32Array, px.shape as [number, number]);
    const trace: Trace = new Map();
    const before = tf.memory().numTensors;
    const embeds = visionForward(params, cfg.vision_config, pixels, gridOf(c), trace);
    const keys = [
      'vision.patch_embed_out',
      ...[0, 1, 2, 3].map((i) => `vision.block${i}_out_windowed`),
      'vision.merger_out_windowed',
    ];
    for (const k of keys) expectClose(await trace.get(k)!.data(), get(c, k).data, 1e-5, `${name} ${k}`);
    expectClose(await embeds.data(), get(c, 'vision.image_embeds').data, 1e-5, `${name} vision.image_embeds`);
    tf.dispose([...trace.values(), embeds]);
    expect(tf.memory().numTensors).toBe(before);
    pixels.dispose();
  });
});

describe('vision input checks', () => {
  it('names both patch counts when pixelValues and grid disagree', () => {
    const px = tf.zeros([20, 1176]) as tf.Tensor2D;
    expect(() => visionForward(params, cfg.vision_config, px, [[1, 4, 6]])).toThrow(
      /20 patch rows.*needs 24/,
    );
    px.dispose();
  });
});

function gridOf(c: Map<string, { data: ArrayLike<number>; shape: number[] }>): number[][] {
  const g = get(c as never, 'image_grid_thw');
  const out: number[][] = [];
  for (let i = 0; i < g.shape[0]; i++) out.push(Array.from(g.data).slice(i * 3, i * 3 + 3) as number[]);
  return out;
}

// AdamW's fused in-place wasm update and the tf-ops path against a float64 reference with clipped gradients
// (gradScale = clipCoefficient), the in-place safety rule (a tensor sharing the parameter's buffer keeps its
// values), and clipCoefficient against torch's clip_grad_norm_ formula.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, clipByGlobalNorm, clipCoefficient, globalNorm } from '../../src/train/optim.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';

/** Independent float64 AdamW steps (torch formula) on already-scaled gradients. */
function adamwRef(w: number[], gs: number[][], lr: number, wd: number): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const p = [...w];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  gs.forEach((g, i) => {
    const t = i + 1;
    for (let j = 0; j < p.length; j++) {
      p[j] -= lr * wd * p[j];
      m[j] = b1 * m[j] + (1 - b1) * g[j];
      v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
      p[j] -= (lr * (m[j] / (1 - b1 ** t))) / (Math.sqrt(v[j] / (1 - b2 ** t)) + eps);
    }
  });
  return p;
}

const norm2 = (g: number[]): number => Math.sqrt(g.reduce((s, x) => s + x * x, 0));

describe('clipCoefficient', () => {
  it('is maxNorm / (norm + 1e-6) capped at 1; off for maxNorm <= 0; rejects a non-finite maxNorm', () => {
    expect(clipCoefficient(5, 1)).toBeCloseTo(1 / (5 + 1e-6), 12);
    expect(clipCoefficient(0.5, 1)).toBe(1);
    expect(clipCoefficient(100, 0)).toBe(1);
    expect(() => clipCoefficient(1, Number.NaN)).toThrow(/maxNorm must be finite/);
  });
});

describe.each(['wasm', 'cpu'])('AdamW with gradScale on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('3 clipped steps: gradScale = clipCoefficient equals clipByGlobalNorm + step and the float64 reference', async () => {
    const rng = new Rng(11);
    const n = 1000;
    const w0 = Array.from({ length: n }, () => rng.normal());
    const gs = [0, 1, 2].map(() => Array.from({ length: n }, () => rng.normal() * 0.2));
    const [a, b] = [tf.variable(tf.tensor(w0)), tf.variable(tf.tensor(w0))];
    const optA = new AdamW({ 'x.weight': a }, { weightDecay: 0.1 });
    const optB = new AdamW({ 'x.weight': b }, { weightDecay: 0.1 });
    const scaled: number[][] = [];
    for (const g of gs) {
      const gt = tf.tensor(g);
      const normT = globalNorm({ g: gt });
      const coef = clipCoefficient((await normT.data())[0], 1);
      optA.step({ 'x.weight': gt }, 0.01, { gradScale: coef });
      const clipped = clipByGlobalNorm({ 'x.weight': gt }, 1);
      optB.step(clipped.grads, 0.01);
      scaled.push(g.map((x) => x * Math.min(1 / (norm2(g) + 1e-6), 1)));
      tf.dispose([gt, normT, clipped.norm, ...Object.values(clipped.grads)]);
    }
    const want = adamwRef(w0, scaled, 0.01, 0.1);
    expectClose(await a.data(), want, 2e-6, `gradScale vs float64 (${backend})`);
    expectClose(await a.data(), await b.data(), 2e-6, `gradScale vs clipByGlobalNorm (${backend})`);
    optA.dispose();
    optB.dispose();
    tf.dispose([a, b]);
  });

  it('rejects a negative or non-finite gradScale', () => {
    const w = tf.variable(tf.zeros([2]));
    const g = tf.ones([2]);
    const opt = new AdamW({ w });
    expect(() => opt.step({ w: g }, 0.1, { gradScale: -1 })).toThrow(/gradScale must be/);
    expect(() => opt.step({ w: g }, 0.1, { gradScale: Number.NaN })).toThrow(/gradScale must be/);
    opt.dispose();
    tf.dispose([w, g]);
  });
});

describe('AdamW fused wasm update', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('updates p, m, v in place (no new buffers) and never writes a buffer another tensor shares', async () => {
    const w = tf.variable(tf.tensor([1, 2, 3, 4]));
    const alias = tf.reshape(w, [2, 2]); // shares w's buffer (and so does the tensor w was created from)
    const g = tf.tensor([0.5, -0.5, 0.5, -0.5]);
    const opt = new AdamW({ w });
    opt.step({ w: g }, 0.1); // first step: w gets its own copy, then the in-place pass
    expect(Array.from(await alias.data())).toEqual([1, 2, 3, 4]);
    const want1 = adamwRef([1, 2, 3, 4], [[0.5, -0.5, 0.5, -0.5]], 0.1, 0);
    expectClose(await w.data(), want1, 1e-6, 'step 1');
    const ids = tf.backend().numDataIds();
    const id = w.dataId;
    opt.step({ w: g }, 0.1);
    expect(w.dataId, 'second step not in place').toBe(id);
    expect(tf.backend().numDataIds()).toBe(ids);
    const want2 = adamwRef([1, 2, 3, 4], [g.arraySync() as number[], g.arraySync() as number[]], 0.1, 0);
    expectClose(await w.data(), want2, 1e-6, 'step 2');
    const st = await opt.exportState();
    expectClose(st.m.get('w')?.data ?? [], [0.095, -0.095, 0.095, -0.095], 1e-7, 'm after 2 steps');
    opt.dispose();
    tf.dispose([w, alias, g]);
  });
});

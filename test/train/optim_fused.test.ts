// AdamW's fused in-place wasm update and the tf-ops path against a float64 reference with clipped gradients
// (gradScale = clipCoefficient), the in-place safety rule (a tensor sharing the parameter's buffer keeps its
// values), and clipCoefficient against torch's clip_grad_norm_ formula.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, clipCoefficient, globalNorm } from '../../src/train/optim.js';
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

  it('3 clipped steps: gradScale = clipCoefficient equals a clip_grad_norm_-scaled copy + step and the float64 reference', async () => {
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
      // torch's clip_grad_norm_: a scaled copy of the gradient (coefficient as a float32 tensor op)
      const clipped = tf.tidy(() => tf.mul(gt, tf.minimum(tf.div(1, tf.add(normT, 1e-6)), 1)));
      optB.step({ 'x.weight': clipped }, 0.01);
      scaled.push(g.map((x) => x * Math.min(1 / (norm2(g) + 1e-6), 1)));
      tf.dispose([gt, normT, clipped]);
    }
    const want = adamwRef(w0, scaled, 0.01, 0.1);
    expectClose(await a.data(), want, 2e-6, `gradScale vs float64 (${backend})`);
    expectClose(await a.data(), await b.data(), 2e-6, `gradScale vs a scaled copy (${backend})`);
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

  it('one pass: m, v in place, p into a new buffer; a tensor sharing p keeps its values', async () => {
    const w = tf.variable(tf.tensor([1, 2, 3, 4]));
    const alias = tf.reshape(w, [2, 2]); // shares w's buffer (and so does the tensor w was created from)
    const g = tf.tensor([0.5, -0.5, 0.5, -0.5]);
    const opt = new AdamW({ w });
    opt.step({ w: g }, 0.1);
    expect(Array.from(await alias.data())).toEqual([1, 2, 3, 4]);
    const want1 = adamwRef([1, 2, 3, 4], [[0.5, -0.5, 0.5, -0.5]], 0.1, 0);
    expectClose(await w.data(), want1, 1e-6, 'step 1');
    const ids = tf.backend().numDataIds();
    opt.step({ w: g }, 0.1);
    expect(tf.backend().numDataIds(), 'buffers leaked by the fused step').toBe(ids);
    const gv = [0.5, -0.5, 0.5, -0.5];
    expectClose(await w.data(), adamwRef([1, 2, 3, 4], [gv, gv], 0.1, 0), 1e-6, 'step 2');
    const st = await opt.exportState();
    expectClose(st.m.get('w')?.data ?? [], [0.095, -0.095, 0.095, -0.095], 1e-7, 'm after 2 steps');
    opt.dispose();
    tf.dispose([w, alias, g]);
  });

  it('a matMul after the step sees the new weights (XNNPACK caches packed weights by tensor id)', async () => {
    const rng = new Rng(4);
    const w = tf.variable(
      tf.tensor2d(
        Float32Array.from({ length: 64 * 32 }, () => rng.normal()),
        [64, 32],
      ),
    );
    const x = tf.tensor2d(
      Float32Array.from({ length: 8 * 64 }, () => rng.normal()),
      [8, 64],
    );
    const g = tf.ones([64, 32]);
    const opt = new AdamW({ w });
    for (let i = 0; i < 2; i++) {
      tf.matMul(x, w).dispose(); // packs w into XNNPACK's cache
      opt.step({ w: g }, 0.5);
      const got = tf.matMul(x, w);
      const fresh = tf.tensor2d(await w.data(), [64, 32]); // same values, new id: nothing cached
      const want = tf.matMul(x, fresh);
      expectClose(await got.data(), await want.data(), 1e-5, `matMul after step ${i + 1}`);
      tf.dispose([got, fresh, want]);
    }
    opt.dispose();
    tf.dispose([w, x, g]);
  });
});

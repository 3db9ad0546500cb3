import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  clipCoefficient,
  globalNorm,
  NonFiniteGuard,
  noDecayDefault,
  sumPairwise,
} from '../../src/train/optim.js';
import { expectClose } from '../helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Independent float64 AdamW (torch.optim.AdamW formula), written out per element. */
function adamwRef(
  w: number[],
  gs: number[][],
  lrs: number[],
  o: { b1: number; b2: number; eps: number; wd: number },
): number[] {
  const p = [...w];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  gs.forEach((g, i) => {
    const t = i + 1;
    const lr = lrs[i];
    for (let j = 0; j < p.length; j++) {
      p[j] = p[j] - lr * o.wd * p[j];
      m[j] = o.b1 * m[j] + (1 - o.b1) * g[j];
      v[j] = o.b2 * v[j] + (1 - o.b2) * g[j] * g[j];
      const mh = m[j] / (1 - o.b1 ** t);
      const vh = v[j] / (1 - o.b2 ** t);
      p[j] = p[j] - (lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  return p;
}

describe.each(['cpu', 'wasm'])('AdamW vs float64 reference on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('one step equals the float64 reference', async () => {
    const w0 = [0.5, -1.25, 2.0, 0.0];
    const g = [0.1, -0.3, 2.5, -1e-4];
    const w = tf.variable(tf.tensor(w0, [2, 2]));
    const opt = new AdamW({ 'lm.w': w }, { betas: [0.9, 0.95], eps: 1e-6, weightDecay: 0.1 });
    const gt = tf.tensor(g, [2, 2]);
    opt.step({ 'lm.w': gt }, 0.01);
    const want = adamwRef(w0, [g], [0.01], { b1: 0.9, b2: 0.95, eps: 1e-6, wd: 0.1 });
    // step 1 with bias correction: update = lr * g/(|g|+eps') ~= lr * sign(g)
    expectClose(await w.data(), want, 1e-6, `adamw step 1 (${backend})`);
    expect(opt.stepCount).toBe(1);
    tf.dispose([w, gt]);
    opt.dispose();
  });

  it('three steps with a changing lr equal the reference (bias correction uses t)', async () => {
    const w0 = [1, 2, -3];
    const gs = [
      [0.2, -0.1, 0.05],
      [-0.4, 0.3, 0.0],
      [1.0, 1.0, -2.0],
    ];
    const lrs = [0.1, 0.05, 0.02];
    const w = tf.variable(tf.tensor(w0));
    const opt = new AdamW({ 'x.w': w }, { weightDecay: 0.01 });
    for (let i = 0; i < 3; i++) {
      const g = tf.tensor(gs[i]);
      opt.step({ 'x.w': g }, lrs[i]);
      g.dispose();
    }
    const want = adamwRef(w0, gs, lrs, { b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 });
    expectClose(await w.data(), want, 1e-6, `adamw 3 steps (${backend})`);
    w.dispose();
    opt.dispose();
  });
});

describe('AdamW', () => {
  it('weight decay is decoupled: a zero gradient still shrinks weights by lr*wd*w, no-decay names do not move', async () => {
    const w = tf.variable(tf.tensor([2, -4]));
    const b = tf.variable(tf.tensor([2, -4]));
    const opt = new AdamW({ 'l.weight': w, 'l.bias': b }, { weightDecay: 0.5 });
    const z = tf.zeros([2]);
    opt.step({ 'l.weight': z, 'l.bias': z }, 0.1);
    // 2 * (1 - 0.1*0.5) = 1.9 ; -4 * 0.95 = -3.8
    expectClose(await w.data(), [1.9, -3.8], 1e-7, 'decayed');
    expectClose(await b.data(), [2, -4], 0, 'bias not decayed');
    tf.dispose([w, b, z]);
    opt.dispose();
  });

  it('leaves parameters without a gradient untouched', async () => {
    const a = tf.variable(tf.tensor([1]));
    const f = tf.variable(tf.tensor([1]));
    const opt = new AdamW({ a, f }, { weightDecay: 0.5 });
    const g = tf.tensor([1]);
    opt.step({ a: g }, 0.1);
    expect((await f.data())[0]).toBe(1);
    expect((await a.data())[0]).not.toBe(1);
    tf.dispose([a, f, g]);
    opt.dispose();
  });

  it('export/import state resumes exactly', async () => {
    const gs = [
      [0.3, -0.2],
      [0.1, 0.7],
      [-0.5, 0.2],
    ];
    const run = async (split: boolean) => {
      const w = tf.variable(tf.tensor([1, 1]));
      let opt = new AdamW({ w }, { weightDecay: 0.1 });
      for (let i = 0; i < 3; i++) {
        if (split && i === 2) {
          const st = await opt.exportState();
          opt.dispose();
          opt = new AdamW({ w }, { weightDecay: 0.1 });
          opt.importState(st);
        }
        const g = tf.tensor(gs[i]);
        opt.step({ w: g }, 0.05);
        g.dispose();
      }
      const out = Array.from(await w.data());
      w.dispose();
      opt.dispose();
      return out;
    };
    expect(await run(true)).toEqual(await run(false));
  });

  it('rejects unknown names, wrong shapes, mismatched state and bad options with clear messages', async () => {
    const w = tf.variable(tf.tensor([1, 2]));
    const opt = new AdamW({ 'a.w': w });
    const g = tf.tensor([1, 2, 3]);
    expect(() => opt.step({ 'a.x': g }, 0.1)).toThrow(/'a.x' but no such parameter; known: a.w/);
    expect(() => opt.step({ 'a.w': g }, 0.1)).toThrow(/shape \[3\] but the parameter is \[2\]/);
    expect(() => opt.step({}, Number.NaN)).toThrow(/lr must be/);
    const st = await opt.exportState();
    st.m.set('zzz', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
    expect(() => opt.importState(st)).toThrow(/unexpected: zzz/);
    expect(() => new AdamW({}, { betas: [1, 0.9] })).toThrow(/betas/);
    tf.dispose([w, g]);
    opt.dispose();
  });

  it('export/import of the state does not leak tensors', async () => {
    const w = tf.variable(tf.randomNormal([3, 2]));
    const opt = new AdamW({ w });
    const before = tf.memory().numTensors;
    const st = await opt.exportState();
    opt.importState(st);
    opt.importState(st);
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    w.dispose();
  });

  it('does not leak tensors across steps', () => {
    const w = tf.variable(tf.randomNormal([4, 3]));
    const opt = new AdamW({ w }, { weightDecay: 0.1 });
    const g = tf.randomNormal([4, 3]);
    opt.step({ w: g }, 0.1);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) opt.step({ w: g }, 0.1);
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    tf.dispose([w, g]);
  });
});

describe('noDecayDefault', () => {
  it('exempts biases, norms and embeddings by HF name', () => {
    expect(noDecayDefault('model.layers.0.self_attn.q_proj.bias')).toBe(true);
    expect(noDecayDefault('model.norm.weight')).toBe(true);
    expect(noDecayDefault('model.embed_tokens.weight')).toBe(true);
    expect(noDecayDefault('visual.blocks.0.norm1.weight')).toBe(true);
    expect(noDecayDefault('visual.merger.ln_q.weight')).toBe(true);
    expect(noDecayDefault('model.layers.0.mlp.down_proj.weight')).toBe(false);
    expect(noDecayDefault('visual.blocks.0.attn.qkv.weight')).toBe(false);
    expect(noDecayDefault('visual.patch_embed.proj.weight')).toBe(false);
  });
});

// Clipping is globalNorm + clipCoefficient folded into AdamW.step (the one path of the Trainer); `clipped` below is
// the scaled copy torch.nn.utils.clip_grad_norm_ would make, to check the numbers.
const clipped = (grads: Record<string, tf.Tensor>, coef: number) =>
  Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, coef)]));

describe('globalNorm + clipCoefficient', () => {
  it('computes the global norm and scales by maxNorm/(norm+1e-6)', async () => {
    const grads = { a: tf.tensor([3, 0]), b: tf.tensor([[4], [12]]) }; // norm sqrt(9+16+144) = 13
    const norm = globalNorm(grads);
    expect((await norm.data())[0]).toBeCloseTo(13, 5);
    const c = clipped(grads, clipCoefficient((await norm.data())[0], 6.5));
    const s = 6.5 / (13 + 1e-6);
    expectClose(await c.a.data(), [3 * s, 0], 1e-6, 'clipped a');
    expectClose(await c.b.data(), [4 * s, 12 * s], 1e-6, 'clipped b');
    const cn = globalNorm(c);
    expect((await cn.data())[0]).toBeCloseTo(6.5, 4);
    tf.dispose([grads.a, grads.b, c.a, c.b, norm, cn]);
  });

  it('leaves gradients below the threshold unchanged; maxNorm 0 disables clipping', async () => {
    const grads = { a: tf.tensor([3, 4]) };
    for (const max of [10, 0]) {
      const norm = globalNorm(grads);
      expect(clipCoefficient((await norm.data())[0], max)).toBe(1);
      expect((await norm.data())[0]).toBeCloseTo(5, 6);
      norm.dispose();
    }
    grads.a.dispose();
  });

  it('reports a non-finite norm for NaN or Inf gradients', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const grads = { a: tf.tensor([1, bad]), b: tf.tensor([1]) };
      const norm = globalNorm(grads);
      expect(Number.isFinite((await norm.data())[0])).toBe(false);
      tf.dispose([grads.a, grads.b, norm]);
    }
  });

  it('huge finite grads (norm^2 near float32 max) give a finite clipped result', async () => {
    const grads = { a: tf.tensor([1e18, 1e18]) };
    const norm = globalNorm(grads);
    expect((await norm.data())[0]).toBeCloseTo(Math.SQRT2 * 1e18, -14);
    const c = clipped(grads, clipCoefficient((await norm.data())[0], 1));
    expectClose(await c.a.data(), [Math.SQRT1_2, Math.SQRT1_2], 1e-6, 'clipped huge');
    tf.dispose([grads.a, c.a, norm]);
  });

  it('does not leak (only the returned norm is new)', () => {
    const grads: Record<string, tf.Tensor> = {};
    for (let i = 0; i < 9; i++) grads[`p${i}`] = tf.ones([2, 2]);
    const before = tf.memory().numTensors;
    const norm = globalNorm(grads);
    expect(tf.memory().numTensors).toBe(before + 1);
    norm.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(grads));
  });
});

describe('AdamW lifetime', () => {
  it('owns exactly two moment tensors per parameter and frees them on dispose', () => {
    const params = { w: tf.variable(tf.ones([3, 2])), b: tf.variable(tf.zeros([2])) };
    const before = tf.memory().numTensors;
    const opt = new AdamW(params, { weightDecay: 0.1 });
    expect(tf.memory().numTensors).toBe(before + 4);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(params));
  });
});

describe('sumPairwise', () => {
  it('sums odd and even counts', async () => {
    for (const n of [1, 2, 5, 8]) {
      const xs = Array.from({ length: n }, (_, i) => tf.scalar(i + 1));
      const s = tf.tidy(() => sumPairwise(xs));
      expect((await s.data())[0]).toBe((n * (n + 1)) / 2);
      tf.dispose([...xs, s]);
    }
    expect(() => sumPairwise([])).toThrow(/no tensors/);
  });
});

describe('NonFiniteGuard', () => {
  it('skips non-finite steps and stops after K in a row', () => {
    const g = new NonFiniteGuard(3);
    expect(
      [1, Number.NaN, Number.POSITIVE_INFINITY, 2, Number.NaN, Number.NaN, Number.NaN].map((n) => g.check(n)),
    ).toEqual(['ok', 'skip', 'skip', 'ok', 'skip', 'skip', 'stop']);
    expect(g.total).toBe(5);
    expect(() => new NonFiniteGuard(0)).toThrow(/maxConsecutive/);
  });
});

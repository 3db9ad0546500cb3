// Attention and layer building blocks vs naive JS references: causal/padding mask values, GQA head mapping
// ⌊h·Hkv/H⌋, segmented (block-diagonal) attention with and without padding slots, fully masked rows finite;
// RMSNorm, exact GELU and gatherRows' scatter-add gradient on literal values.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  causalMask,
  gqaAttention,
  MASK_MIN,
  segmentedAttention,
  segmentLayout,
} from '../../src/model/attention.js';
import { gatherRows, geluErf, matMulWT, param, rmsNorm } from '../../src/model/layers.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';
import { setupBackend } from './fixture.js';

beforeAll(async () => {
  await setupBackend();
});

const rand = (rng: Rng, n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());

/** Naive softmax attention of one query row over keys `ks` (visible flags), all plain arrays. */
function naiveRow(q: number[], ks: number[][], vs: number[][], visible: boolean[]): number[] {
  const s = ks.map((k, j) =>
    visible[j] ? k.reduce((a, kk, d) => a + kk * q[d], 0) / Math.sqrt(q.length) : -Infinity,
  );
  const m = Math.max(...s);
  const e = s.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
  const z = e.reduce((a, b) => a + b, 0);
  return vs[0].map((_, d) => vs.reduce((a, v, j) => a + (e[j] / z) * v[d], 0));
}

const at = (x: Float32Array, shape: number[], idx: number[]): number[] => {
  let o = 0;
  for (let i = 0; i < idx.length; i++) o = o * shape[i] + idx[i];
  const last = shape[shape.length - 1];
  return Array.from(x.subarray(o * last, o * last + last));
};

describe('causalMask', () => {
  it('literal [B,1,T,S] values with left padding', async () => {
    const m = causalMask([[0, 1, 1]], 3, 0);
    expect(m.shape).toEqual([1, 1, 3, 3]);
    const M = MASK_MIN;
    expect(Array.from(await m.data())).toEqual([M, M, M, M, 0, M, M, 0, 0].map(Math.fround));
    m.dispose();
  });
  it('decode step sees every real cached slot', async () => {
    const m = causalMask([[0, 1, 1, 1]], 1, 3);
    expect(Array.from(await m.data())).toEqual([Math.fround(MASK_MIN), 0, 0, 0]);
    m.dispose();
  });
  it('names the row whose length is wrong', () => {
    expect(() => causalMask([[1, 1]], 3, 0)).toThrow(/row 0 has 2 slots, expected pastLen \+ T = 3/);
  });
});

describe('gqaAttention', () => {
  it('matches a naive reference with query head h → kv head ⌊h·Hkv/H⌋; padded rows stay finite', async () => {
    const [B, H, Hkv, T, Dh] = [2, 4, 2, 3, 4];
    const rng = new Rng(3);
    const qd = rand(rng, B * H * T * Dh);
    const kd = rand(rng, B * Hkv * T * Dh);
    const vd = rand(rng, B * Hkv * T * Dh);
    const maskRows = [
      [0, 1, 1],
      [1, 1, 1],
    ];
    const q = tf.tensor4d(qd, [B, H, T, Dh]);
    const k = tf.tensor4d(kd, [B, Hkv, T, Dh]);
    const v = tf.tensor4d(vd, [B, Hkv, T, Dh]);
    const mask = causalMask(maskRows, T, 0);
    const out = gqaAttention(q, k, v, mask);
    const got = await out.data();
    expect(got.every(Number.isFinite)).toBe(true);
    const expected: number[] = [];
    const actual: number[] = [];
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++) {
        if (maskRows[b][t] === 0) continue;
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor((h * Hkv) / H);
          const ks = [0, 1, 2].map((j) => at(kd, [B, Hkv, T, Dh], [b, kvh, j]));
          const vs = [0, 1, 2].map((j) => at(vd, [B, Hkv, T, Dh], [b, kvh, j]));
          const visible = [0, 1, 2].map((j) => j <= t && maskRows[b][j] === 1);
          expected.push(...naiveRow(at(qd, [B, H, T, Dh], [b, h, t]), ks, vs, visible));
          actual.push(
            ...Array.from(got.subarray(((b * T + t) * H + h) * Dh, ((b * T + t) * H + h + 1) * Dh)),
          );
        }
      }
    expectClose(actual, expected, 1e-5, 'gqa vs naive');
    tf.dispose([q, k, v, mask, out]);
  });
});

describe('segmentedAttention', () => {
  it('segmentLayout packs uneven segments with padding slots', () => {
    const l = segmentLayout([0, 3, 4]);
    expect([l.nSeg, l.maxLen]).toEqual([2, 3]);
    expect(Array.from(l.gather)).toEqual([0, 1, 2, 3, 0, 0]);
    expect(Array.from(l.scatter)).toEqual([0, 1, 2, 3]);
    expect(l.keyMask).not.toBeNull();
    expect(segmentLayout([0, 2, 4]).keyMask).toBeNull();
    expect(() => segmentLayout([0, 2, 2])).toThrow(/strictly increasing/);
  });

  for (const cu of [
    [0, 3, 4, 9],
    [0, 4, 8],
    [0, 6],
  ]) {
    it(`attends only inside segments ${JSON.stringify(cu)} (naive reference)`, async () => {
      const [N, Hv, Dh] = [cu[cu.length - 1], 2, 4];
      const rng = new Rng(cu.length);
      const [qd, kd, vd] = [rand(rng, N * Hv * Dh), rand(rng, N * Hv * Dh), rand(rng, N * Hv * Dh)];
      const [q, k, v] = [qd, kd, vd].map((d) => tf.tensor3d(d, [N, Hv, Dh]));
      const before = tf.memory().numTensors;
      const out = segmentedAttention(q, k, v, segmentLayout(cu));
      const got = await out.data();
      out.dispose();
      expect(tf.memory().numTensors).toBe(before);
      const seg = (r: number): number => cu.findIndex((e, s) => r >= e && r < cu[s + 1]);
      const expected: number[] = [];
      for (let r = 0; r < N; r++)
        for (let h = 0; h < Hv; h++) {
          const rows = [...Array(N).keys()];
          const visible = rows.map((j) => seg(j) === seg(r));
          const ks = rows.map((j) => at(kd, [N, Hv, Dh], [j, h]));
          const vs = rows.map((j) => at(vd, [N, Hv, Dh], [j, h]));
          expected.push(...naiveRow(at(qd, [N, Hv, Dh], [r, h]), ks, vs, visible));
        }
      expectClose(got, expected, 1e-5, `segmented ${JSON.stringify(cu)}`);
      tf.dispose([q, k, v]);
    });
  }
});

describe('layers', () => {
  it('rmsNorm literal', async () => {
    const y = rmsNorm(tf.tensor2d([[3, 4]]), tf.tensor1d([1, 2]), 0);
    const r = Math.sqrt(12.5);
    expectClose(await y.data(), [3 / r, 8 / r], 1e-6, 'rmsNorm');
  });
  it('geluErf literal (exact, not tanh)', async () => {
    const y = geluErf(tf.tensor1d([-1, 0, 1, 3]));
    // 0.5·x·(1 + erf(x/√2)); the tanh approximation differs by ~1e-4 at x=1 and x=3.
    expectClose(await y.data(), [-0.15865525393145707, 0, 0.8413447460685429, 2.995950305905], 1e-6, 'gelu');
  });
  it('gatherRows: forward rows, gradient scatter-adds repeated indices', async () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const c = tf.tensor2d([
      [1, 10],
      [100, 1000],
      [2, 20],
    ]);
    const y = gatherRows(x, [2, 0, 2]);
    expect(Array.from(await y.data())).toEqual([5, 6, 1, 2, 5, 6]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t, [2, 0, 2]), c)))(x);
    expect(Array.from(await g.data())).toEqual([100, 1000, 0, 0, 3, 30]);
    expect(() => gatherRows(x, [3])).toThrow(/index 3 out of range \[0, 3\)/);
    tf.dispose([x, c, y, g]);
  });
  it('matMulWT equals x·W^T on both branches (small x → (W·x^T)^T, large x → direct); gradients too', async () => {
    const rng = new Rng(9);
    const w = tf.tensor2d(rand(rng, 40 * 8), [40, 8]);
    for (const n of [1, 200]) {
      const x = tf.tensor2d(rand(rng, n * 8), [n, 8]);
      const y = matMulWT(x, w);
      const xs = await x.array();
      const ws = await w.array();
      const ref = xs.flatMap((row) => ws.map((wr) => wr.reduce((a, v, k) => a + v * row[k], 0)));
      expectClose(await y.data(), ref, 1e-5, `matMulWT n=${n}`);
      const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(matMulWT(a as tf.Tensor2D, b as tf.Tensor2D))),
      )([x, w]);
      const [rx, rw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.matMul(a, b, false, true))),
      )([x, w]);
      expectClose(await gx.data(), await rx.data(), 1e-4, `matMulWT dx n=${n}`);
      expectClose(await gw.data(), await rw.data(), 1e-4, `matMulWT dw n=${n}`);
      tf.dispose([x, y, gx, gw, rx, rw]);
    }
    w.dispose();
  });
  it('param names the missing key', () => {
    expect(() => param({}, 'model.norm.weight')).toThrow(/missing parameter "model.norm.weight"/);
  });
});

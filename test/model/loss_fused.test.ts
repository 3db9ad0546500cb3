// The fused linear cross-entropy of causalLmLossFromHidden (forward computes dh and dW; only kept rows are
// projected) against HF's loss on the full logits (causalLmLoss) differentiated by tfjs: value and both
// gradients, for several vocabulary blocks, several row chunks, masked rows, numItemsInBatch, an upstream
// gradient ≠ 1, nothing kept, and the no-tape (eval) path; plus leak checks. Runs on OVR_TEST_BACKEND.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/layers.js';
import { addInto, fusedLinearCe } from '../../src/model/lm_head.js';
import { causalLmLoss, causalLmLossFromHidden } from '../../src/model/loss.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';
import { setupBackend } from './fixture.js';

beforeAll(async () => {
  await setupBackend();
});

const cfg = { tie_word_embeddings: true } as Qwen2_5_VLConfig;
const randn = (rng: Rng, shape: number[], scale = 1): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
    shape,
  );

/** Labels `[B][T]` with random ids, a masked prompt quarter and every 5th label ignored. */
function labelsFor(rng: Rng, B: number, T: number, V: number): number[][] {
  return Array.from({ length: B }, () =>
    Array.from({ length: T }, (_, t) => (t < T / 4 || t % 5 === 3 ? -100 : rng.int(V))),
  );
}

/** value and grads of `scale * loss(h, w)` with the loss given as a function of (hidden, weight). */
async function valueAndGrads(
  loss: (h: tf.Tensor3D, w: tf.Variable) => tf.Scalar,
  h: tf.Variable,
  w: tf.Variable,
  scale: number,
): Promise<Float32Array[]> {
  const { value, grads } = tf.variableGrads(
    () => tf.mul(loss(h as unknown as tf.Tensor3D, w), scale) as tf.Scalar,
    [h, w],
  );
  const out = [await value.data(), await grads[h.name].data(), await grads[w.name].data()];
  tf.dispose([value, ...Object.values(grads)]);
  return out as Float32Array[];
}

describe('causalLmLossFromHidden (fused linear cross-entropy)', () => {
  it.each([
    // [B, T, V, D, numItemsInBatch, upstream scale]
    [2, 9, 37, 8, undefined, 1],
    [2, 40, 2 * 4096 + 5, 16, undefined, 2.5], // 3 vocabulary blocks, dy != 1
    [3, 300, 300, 8, 1000, 1], // > 512 kept rows: two row chunks; HF num_items_in_batch
  ] as const)(
    'B=%i T=%i V=%i D=%i items=%s dy=%s: value and dh, dW equal the full-logits loss',
    async (B, T, V, D, items, scale) => {
      const rng = new Rng(B * 1000 + T);
      const w = tf.variable(randn(rng, [V, D], 0.5));
      const h = tf.variable(randn(rng, [B, T, D]));
      const labels = labelsFor(rng, B, T, V);
      const params: Params = { 'model.embed_tokens.weight': w };
      const opts = items === undefined ? {} : { numItemsInBatch: items };
      const ref = await valueAndGrads(
        (hh, ww) =>
          causalLmLoss(
            tf.reshape(tf.matMul(tf.reshape(hh, [B * T, D]), ww, false, true), [B, T, V]) as tf.Tensor3D,
            labels,
            opts,
          ),
        h,
        w,
        scale,
      );
      const before = tf.memory().numTensors;
      const got = await valueAndGrads(
        (hh) => causalLmLossFromHidden(params, cfg, hh, labels, opts),
        h,
        w,
        scale,
      );
      expect(tf.memory().numTensors, 'tensors leaked by the fused loss').toBe(before);
      // float32 sums over V in a different order (blocks, softmax kernel): ~1e-6 relative.
      expectClose(got[0], ref[0], 1e-5 * Math.abs(ref[0][0]) + 1e-6, 'loss');
      expectClose(got[1], ref[1], 2e-5, 'dL/dh');
      expectClose(got[2], ref[2], 2e-5, 'dL/dW');
      // Without a tape (eval) the same value, and nothing left behind.
      const n0 = tf.memory().numTensors;
      const plain = causalLmLossFromHidden(params, cfg, h as unknown as tf.Tensor3D, labels, opts);
      expectClose(await plain.data(), [ref[0][0] / scale], 1e-5 * Math.abs(ref[0][0]) + 1e-6, 'eval loss');
      plain.dispose();
      expect(tf.memory().numTensors).toBe(n0);
      tf.dispose([w, h]);
    },
  );

  it('nothing kept: loss 0 and zero gradients (HF would give NaN)', async () => {
    const rng = new Rng(5);
    const w = tf.variable(randn(rng, [11, 4]));
    const h = tf.variable(randn(rng, [1, 3, 4]));
    const params: Params = { 'model.embed_tokens.weight': w };
    const [v, gh, gw] = await valueAndGrads(
      (hh) => causalLmLossFromHidden(params, cfg, hh, [[5, -100, -100]]),
      h,
      w,
      1,
    );
    expect(Math.abs(v[0])).toBe(0);
    expect(Math.max(...gh.map(Math.abs))).toBe(0);
    expect(Math.max(...gw.map(Math.abs))).toBe(0);
    tf.dispose([w, h]);
  });

  it('fusedLinearCe: literal two-token case by hand; bad lengths name the culprit', async () => {
    // V=2, D=1, w = [[1], [0]]: logits of h are [h, 0]; lse = log(e^h + 1).
    const w = tf.tensor2d([[1], [0]]);
    const h = tf.tensor2d([[0], [Math.log(3)]]);
    const r = fusedLinearCe(h, w, [1, 0], [0.5, 0.5], true);
    // loss = 0.5 (ln 2 − 0) + 0.5 (ln 4 − ln 3)
    expectClose(
      await r.loss.data(),
      [0.5 * Math.log(2) + 0.5 * (Math.log(4) - Math.log(3))],
      1e-6,
      'literal',
    );
    // dh_i = c_i (P − Y)_i W: row 0 P=[.5,.5], Y=[0,1] → 0.25; row 1 P=[.75,.25], Y=[1,0] → −0.125
    expectClose(await (r.dh as tf.Tensor).data(), [0.25, -0.125], 1e-6, 'literal dh');
    // dW_v = Σ_i c_i (P − Y)_iv h_i: v=0: 0.5·(−0.25)·ln3, v=1: 0.5·0.25·ln3
    const l3 = Math.log(3);
    expectClose(await (r.dw as tf.Tensor).data(), [-0.125 * l3, 0.125 * l3], 1e-6, 'literal dW');
    tf.dispose([w, h, r.loss, r.dh as tf.Tensor, r.dw as tf.Tensor]);
    const x = tf.zeros([2, 1]) as tf.Tensor2D;
    expect(() => fusedLinearCe(x, x, [0], [1, 1], false)).toThrow(/2 rows but 1 targets and 2 coefficients/);
    x.dispose();
  });

  it('addInto: equals tf.add and consumes both inputs; a shared accumulator is not written', async () => {
    const a = tf.tensor1d([1, 2, 3]);
    const b = tf.tensor1d([10, 20, 30]);
    const n0 = tf.memory().numTensors;
    const s = addInto(a, b);
    expect(Array.from(await s.data())).toEqual([11, 22, 33]);
    expect(b.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(n0 - 1);
    const alias = tf.reshape(s, [3]); // shares the buffer: must not see the addition
    const t = addInto(s, tf.tensor1d([1, 1, 1]));
    expect(Array.from(await t.data())).toEqual([12, 23, 34]);
    expect(Array.from(await alias.data())).toEqual([11, 22, 33]);
    tf.dispose([alias, t]);
  });
});

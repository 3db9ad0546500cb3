import '@tensorflow/tfjs-backend-cpu';
// NOTE: tfjs-core's node bundle registers no gradients; vitest inlines this ESM file (Node alone cannot load it).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  aggregateLoss,
  clippedPolicyLoss,
  entropyFromLogits,
  groupAdvantages,
  klK3,
  maskedMean,
  type PolicyLossInputs,
  selectGroups,
  stopGradient,
} from '../../src/train/grpo_math.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const read = async (t: tf.Tensor): Promise<number[]> => Array.from(await t.data());
const num = async (t: tf.Tensor): Promise<number> => (await t.data())[0];

describe('groupAdvantages', () => {
  it('normalises per group with the sample std (n - 1) and eps, as TRL', () => {
    // group 0: mean 0.25, sample std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    const a = groupAdvantages([1, 0, 0, 0, 0, 1, 1, 0], 4);
    expectClose(a.groupMean, [0.25, 0.5], 1e-15, 'group means');
    expectClose(a.groupStd, [0.5, Math.sqrt(1 / 3)], 1e-15, 'group stds');
    const s1 = Math.sqrt(1 / 3) + 1e-4;
    expectClose(
      a.advantages,
      [
        0.75 / 0.5001,
        -0.25 / 0.5001,
        -0.25 / 0.5001,
        -0.25 / 0.5001,
        -0.5 / s1,
        0.5 / s1,
        0.5 / s1,
        -0.5 / s1,
      ],
      1e-12,
      'advantages',
    );
    expect(a.zeroVarianceGroups).toEqual([]);
  });

  it('gives exactly 0 to all-equal groups and flags them (incl. float rounding)', () => {
    const a = groupAdvantages([1, 1, 1, 0.1, 0.1, 0.1, 0, 0, 0, 2, 0, 1], 3);
    expect(a.zeroVarianceGroups).toEqual([0, 1, 2]);
    expect(a.advantages.slice(0, 9)).toEqual(new Array(9).fill(0));
    expectClose(a.advantages.slice(9), [1 / 1.0001, -1 / 1.0001, 0], 1e-12, 'varied group');
  });

  it('can skip the std scaling (Dr. GRPO style)', () => {
    const a = groupAdvantages([3, 1, 2, 2], 2, { scaleByStd: false });
    expect(a.advantages).toEqual([1, -1, 0, 0]);
    expect(a.zeroVarianceGroups).toEqual([1]);
  });

  it('rejects bad input naming the culprit', () => {
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(/not a multiple of groupSize 2/);
    expect(() => groupAdvantages([1, 2], 1)).toThrow(/groupSize must be an integer >= 2/);
    expect(() => groupAdvantages([1, Number.NaN], 2)).toThrow(/reward 1 is NaN/);
  });

  it('selectGroups keeps whole groups in order', () => {
    expect(selectGroups(['a', 'b', 'c', 'd', 'e', 'f'], 2, [2, 0])).toEqual(['e', 'f', 'a', 'b']);
    expect(() => selectGroups([1, 2], 2, [1])).toThrow(/out of range/);
  });
});

describe('klK3 and entropy', () => {
  it('k3 = exp(ref - lp) - (ref - lp) - 1: literal values, >= 0, 0 where equal', async () => {
    const lp = tf.tensor([-1, -2, -0.5]);
    const ref = tf.tensor([-2, -1, -0.5]);
    expectClose(await read(klK3(lp, ref)), [Math.exp(-1), Math.exp(1) - 2, 0], 1e-6, 'k3 literal');
    const g = new Rng(1);
    const a = tf.tensor(Array.from({ length: 200 }, () => 3 * g.normal()));
    const b = tf.tensor(Array.from({ length: 200 }, () => 3 * g.normal()));
    expect(Math.min(...(await read(klK3(a, b))))).toBeGreaterThanOrEqual(0);
    expect(await read(klK3(a, a))).toEqual(new Array(200).fill(0));
    tf.dispose([lp, ref, a, b]);
  });

  it('entropyFromLogits: uniform gives log V; [0, ln 3] gives H(1/4, 3/4); temperature scales logits', async () => {
    const h = 0.25 * Math.log(4) + 0.75 * Math.log(4 / 3);
    const z = tf.tensor2d([
      [0, 0, 0, 0],
      [0, Math.log(3), -Infinity, -Infinity],
    ]);
    expectClose(await read(entropyFromLogits(z)), [Math.log(4), h], 1e-6, 'entropy');
    const z3 = tf.tensor3d([[[0, 2 * Math.log(3)]]]);
    expectClose(await read(entropyFromLogits(z3, 2)), [h], 1e-6, 'entropy T=2, rank 3');
    // masked (-Infinity) ids give a finite gradient; dH/dz_i = -p_i (log p_i + H)
    const dz = await read(tf.grad((l: tf.Tensor) => tf.sum(entropyFromLogits(l)))(z));
    const row1 = [-0.25 * (Math.log(0.25) + h), -0.75 * (Math.log(0.75) + h), 0, 0];
    expectClose(dz, [0, 0, 0, 0, ...row1], 1e-6, 'entropy gradient');
    tf.dispose([z, z3]);
  });
});

/** The literal batch used below: N = 2, T = 3, row 0 has 2 tokens (A = 1), row 1 has 3 tokens (A = -2). */
function literalBatch() {
  return {
    logprobs: tf.tensor2d([
      [-1.0, -0.5, -2.0],
      [-0.3, -1.2, -0.7],
    ]),
    oldLogprobs: tf.tensor2d([
      [-1.1, -0.5, -1.5],
      [-0.3, -0.9, -0.7],
    ]),
    advantages: tf.tensor1d([1, -2]),
    mask: tf.tensor2d([
      [1, 1, 0],
      [1, 1, 1],
    ]),
  };
}

describe('clippedPolicyLoss', () => {
  it('matches hand-computed values for token and sequence aggregation, with clip statistics', async () => {
    const b = literalBatch();
    const r01 = Math.exp(0.1);
    const r11 = Math.exp(-0.3); // < 0.8 with A < 0: clipped to 0.8
    // per token: row 0 (A=1): -r; row 1 (A=-2): 2 * max(r, clip(r))
    const row0 = [-r01, -1];
    const row1 = [2, 2 * 0.8, 2];
    const tok = clippedPolicyLoss({ ...b, aggregation: 'token' });
    const seq = clippedPolicyLoss({ ...b, aggregation: 'sequence' });
    const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
    expectClose([await num(tok.loss)], [(sum(row0) + sum(row1)) / 5], 1e-6, 'token loss');
    expectClose([await num(seq.loss)], [(sum(row0) / 2 + sum(row1) / 3) / 2], 1e-6, 'sequence loss');
    const s = tok.stats;
    expectClose(
      await Promise.all([s.clipFraction, s.lowClipFraction, s.highClipFraction].map(num)),
      [0.2, 0.2, 0],
      1e-7,
      'clip fractions',
    );
    expectClose([await num(s.approxKl)], [(r01 - 1 - 0.1 + (r11 - 1 + 0.3)) / 5], 1e-6, 'approx KL');
    expectClose(
      await Promise.all([s.ratioMean, s.ratioMin, s.ratioMax].map(num)),
      [(r01 + 3 + r11) / 5, r11, r01],
      1e-6,
      'ratio stats (masked: ignores exp(-0.5))',
    );
    tf.dispose([b, tok, seq] as unknown as tf.TensorContainer);
  });

  it('isWeights scale each token of the policy term (hand-computed), not the KL term', async () => {
    const b = literalBatch();
    const w = tf.tensor2d([
      [0.5, 2, 1],
      [1, 0, 1.5],
    ]);
    const r01 = Math.exp(0.1);
    // the literal batch's per-token terms: row 0 [-r01, -1], row 1 [2, 1.6, 2], weighted
    const expected = (-r01 * 0.5 + -1 * 2 + 2 * 1 + 1.6 * 0 + 2 * 1.5) / 5;
    const out = clippedPolicyLoss({ ...b, aggregation: 'token', isWeights: w });
    expectClose([await num(out.loss)], [expected], 1e-6, 'IS-weighted token loss');
    const ones = clippedPolicyLoss({ ...b, aggregation: 'token', isWeights: tf.onesLike(w) });
    const plain = clippedPolicyLoss({ ...b, aggregation: 'token' });
    expectClose([await num(ones.loss)], [await num(plain.loss)], 0, 'unit weights change nothing');
    expect(() => clippedPolicyLoss({ ...b, isWeights: tf.ones([2, 2]) })).toThrow(
      /isWeights has shape \[2,2\]/,
    );
    tf.dispose([b, w, out, ones, plain] as unknown as tf.TensorContainer);
  });

  it('high clip: A > 0 with r > 1 + clipHigh is clipped; clip-higher widens the range', async () => {
    const base = {
      logprobs: tf.tensor2d([[Math.log(1.25)]]),
      oldLogprobs: tf.tensor2d([[0]]),
      advantages: tf.tensor1d([1]),
      mask: tf.tensor2d([[1]]),
    };
    const a = clippedPolicyLoss(base);
    expectClose([await num(a.loss), await num(a.stats.highClipFraction)], [-1.2, 1], 1e-6, 'clip at 1.2');
    const b = clippedPolicyLoss({ ...base, clipHigh: 0.28 });
    expectClose(
      [await num(b.loss), await num(b.stats.highClipFraction)],
      [-1.25, 0],
      1e-6,
      'clip-higher 1.28',
    );
    tf.dispose([base, a, b] as unknown as tf.TensorContainer);
  });

  it('gradient sign: A > 0 raises logp, A < 0 lowers it, and clipping zeroes it beyond the trust region', async () => {
    // one token per row; old = 0 so r = exp(theta)
    const theta = tf.tensor2d([[0], [Math.log(1.5)], [0], [Math.log(0.5)], [Math.log(0.5)], [Math.log(1.5)]]);
    const advantages = tf.tensor1d([1, 1, -1, -1, 1, -1]);
    const oldLogprobs = tf.zeros([6, 1]);
    const mask = tf.ones([6, 1]);
    const f = (lp: tf.Tensor) => clippedPolicyLoss({ logprobs: lp, oldLogprobs, advantages, mask }).loss;
    const g = await read(tf.grad(f)(theta));
    // d/dtheta of -A r / 6 where the unclipped branch is the minimum, else 0
    expectClose(g, [-1 / 6, 0, 1 / 6, 0, -0.5 / 6, 1.5 / 6], 1e-6, 'per-token gradients');
    expect(g[0]).toBeLessThan(0); // descent increases logp for A > 0
    expect(g[2]).toBeGreaterThan(0); // descent decreases logp for A < 0
    tf.dispose([theta, advantages, oldLogprobs, mask]);
  });

  it('token vs sequence aggregation weight tokens differently on unequal lengths', async () => {
    // ratio 1, per-token loss -A: row 0 has 1 token (A = 1), row 1 has 4 tokens (A = -1)
    const theta = tf.zeros([2, 4]);
    const inputs = {
      oldLogprobs: tf.zeros([2, 4]),
      advantages: tf.tensor1d([1, -1]),
      mask: tf.tensor2d([
        [1, 0, 0, 0],
        [1, 1, 1, 1],
      ]),
    };
    const run = (aggregation: 'token' | 'sequence') =>
      tf.valueAndGrad((lp: tf.Tensor) => clippedPolicyLoss({ ...inputs, logprobs: lp, aggregation }).loss)(
        theta,
      );
    const t = run('token');
    const s = run('sequence');
    expectClose(
      [await num(t.value), await num(s.value)],
      [3 / 5, 0],
      1e-6,
      'token (-1+4)/5 vs sequence (-1+1)/2',
    );
    expectClose(await read(t.grad), [-0.2, 0, 0, 0, 0.2, 0.2, 0.2, 0.2], 1e-6, 'token grads: 1/5 each');
    expectClose(
      await read(s.grad),
      [-0.5, 0, 0, 0, 0.125, 0.125, 0.125, 0.125],
      1e-6,
      'sequence grads: 1/(2 len)',
    );
    tf.dispose([theta, inputs, t, s] as unknown as tf.TensorContainer);
  });

  it('normalizer lets minibatch losses add up to the full-batch loss (accumulation invariant)', async () => {
    const b = literalBatch();
    const full = clippedPolicyLoss(b);
    const half = (i: number): PolicyLossInputs => ({
      logprobs: tf.slice(b.logprobs, [i, 0], [1, 3]),
      oldLogprobs: tf.slice(b.oldLogprobs, [i, 0], [1, 3]),
      advantages: tf.slice(b.advantages, [i], [1]),
      mask: tf.slice(b.mask, [i, 0], [1, 3]),
    });
    const [h0, h1] = [half(0), half(1)];
    const tok =
      (await num(clippedPolicyLoss({ ...h0, normalizer: 5 }).loss)) +
      (await num(clippedPolicyLoss({ ...h1, normalizer: 5 }).loss));
    expectClose([tok], [await num(full.loss)], 1e-6, 'token: sum of minibatches');
    const seqFull = await num(clippedPolicyLoss({ ...b, aggregation: 'sequence' }).loss);
    const seq =
      (await num(clippedPolicyLoss({ ...h0, aggregation: 'sequence', normalizer: 2 }).loss)) +
      (await num(clippedPolicyLoss({ ...h1, aggregation: 'sequence', normalizer: 2 }).loss));
    expectClose([seq], [seqFull], 1e-6, 'sequence: sum of minibatches');
  });

  it('adds klCoef * k3 and subtracts entropyCoef * entropy per token', async () => {
    const b = literalBatch();
    const ref = tf.tensor2d([
      [-1.2, -0.4, -2.0],
      [-0.5, -1.0, -0.9],
    ]);
    const ent = tf.tensor2d([
      [1.0, 2.0, 9.0],
      [0.5, 0.5, 0.5],
    ]);
    const base = await num(clippedPolicyLoss(b).loss);
    const k3 = await num(maskedMean(klK3(b.logprobs, ref), b.mask));
    const withKl = clippedPolicyLoss({ ...b, refLogprobs: ref, klCoef: 0.1 });
    expectClose([await num(withKl.loss)], [base + 0.1 * k3], 1e-6, 'loss + beta k3');
    expectClose([await num(withKl.stats.refKl)], [k3], 1e-7, 'refKl stat');
    const withEnt = clippedPolicyLoss({ ...b, entropy: ent, entropyCoef: 0.01 });
    expectClose([await num(withEnt.loss)], [base - 0.01 * (4.5 / 5)], 1e-6, 'loss - c H (masked mean 0.9)');
    expectClose([await num(withEnt.stats.entropy)], [0.9], 1e-7, 'entropy stat');
  });

  it('mu = 1 invariant: old = stopGradient(logp) gives ratio 1 and the plain policy gradient', async () => {
    // a tiny parametrised policy: logp = log softmax(x W)[token]
    const g = new Rng(3);
    const [N, T, D, V] = [3, 4, 5, 7];
    const W = tf.variable(
      tf.tensor2d(
        Array.from({ length: D * V }, () => g.normal()),
        [D, V],
      ),
      true,
      'W',
    );
    const x = tf.tensor2d(
      Array.from({ length: N * T * D }, () => g.normal()),
      [N * T, D],
    );
    const ids = tf.tensor1d(
      Array.from({ length: N * T }, () => g.int(V)),
      'int32',
    );
    const advantages = tf.tensor1d([1.3, -0.4, 0.7]);
    const mask = tf.tensor2d([1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1], [N, T]);
    const logp = () =>
      tf.reshape(tf.sum(tf.mul(tf.logSoftmax(tf.matMul(x, W)), tf.oneHot(ids, V)), -1), [N, T]);
    for (const aggregation of ['token', 'sequence'] as const) {
      let ratioStats: tf.Tensor[] = [];
      const clipped = tf.variableGrads(() => {
        const lp = logp();
        const out = clippedPolicyLoss({
          logprobs: lp,
          oldLogprobs: stopGradient(lp),
          advantages,
          mask,
          aggregation,
        });
        ratioStats = [out.stats.ratioMin, out.stats.ratioMax, out.stats.clipFraction].map((t) => tf.keep(t));
        return out.loss;
      });
      // plain policy gradient: -A logp, aggregated the same way
      const plain = tf.variableGrads(() =>
        aggregateLoss(tf.neg(tf.mul(logp(), tf.reshape(advantages, [N, 1]))), mask, aggregation),
      );
      expectClose(await read(clipped.grads.W), await read(plain.grads.W), 1e-6, `mu=1 grad (${aggregation})`);
      expectClose(
        await Promise.all(ratioStats.map(num)),
        [1, 1, 0],
        0,
        `ratio == 1, no clipping (${aggregation})`,
      );
      expect(Math.abs(await num(tf.sum(tf.abs(clipped.grads.W))))).toBeGreaterThan(1e-3);
      tf.dispose([clipped, plain, ratioStats] as unknown as tf.TensorContainer);
    }
    tf.dispose([W, x, ids, advantages, mask]);
  });

  it('stopGradient passes values and blocks gradients', async () => {
    const v = tf.tensor1d([1, -2]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.add(tf.mul(stopGradient(a), a), stopGradient(a))))(v);
    expectClose(await read(g), [1, -2], 0, 'd/da (sg(a) a + sg(a)) = sg(a)');
    tf.dispose([v, g]);
  });

  it('rejects mismatched shapes and missing KL/entropy inputs with a fix-it message', () => {
    const b = literalBatch();
    expect(() => clippedPolicyLoss({ ...b, mask: tf.ones([2, 2]) })).toThrow(
      /mask has shape \[2,2\] but logprobs has \[2,3\]/,
    );
    expect(() => clippedPolicyLoss({ ...b, advantages: tf.ones([3]) })).toThrow(
      /advantages must be \[N\] = \[2\]/,
    );
    expect(() => clippedPolicyLoss({ ...b, klCoef: 0.1 })).toThrow(/needs refLogprobs/);
    expect(() => clippedPolicyLoss({ ...b, entropyCoef: 0.1 })).toThrow(/needs the per-token entropy/);
    expect(() => clippedPolicyLoss({ ...b, clipLow: 1 })).toThrow(/clipLow must be in \[0, 1\)/);
    expect(() => clippedPolicyLoss({ ...b, normalizer: 0 })).toThrow(/normalizer must be > 0/);
  });

  it('an all-masked batch gives loss 0 and no NaN', async () => {
    const b = literalBatch();
    const out = clippedPolicyLoss({ ...b, mask: tf.zeros([2, 3]) });
    expect(await num(out.loss)).toBe(0);
    expect(await num(out.stats.clipFraction)).toBe(0);
    const seq = clippedPolicyLoss({ ...b, mask: tf.zeros([2, 3]), aggregation: 'sequence' });
    expect(await num(seq.loss)).toBe(0);
  });

  it('leaks no tensor (forward, gradients, every helper)', async () => {
    const b = literalBatch();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const out = clippedPolicyLoss({
        ...b,
        refLogprobs: b.oldLogprobs,
        klCoef: 0.1,
        entropy: b.mask,
        entropyCoef: 0.1,
      });
      tf.dispose(out as unknown as tf.TensorContainer);
      const g = tf.grad(
        (lp: tf.Tensor) => clippedPolicyLoss({ ...b, logprobs: lp, aggregation: 'sequence' }).loss,
      )(b.logprobs);
      g.dispose();
      tf.dispose([
        klK3(b.logprobs, b.oldLogprobs),
        entropyFromLogits(b.logprobs),
        maskedMean(b.logprobs, b.mask),
      ]);
      tf.dispose([aggregateLoss(b.logprobs, b.mask, 'token'), stopGradient(b.mask)]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(b as unknown as tf.TensorContainer);
  });
});

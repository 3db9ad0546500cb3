// PPO math on literal arrays: GAE (gamma = lambda = 1 is reward-to-go minus value; gamma/lambda < 1 against a
// forward-sum definition), zero-critic invariant, batch/group normalisation, value loss with and without clipping,
// explained variance, and tensor hygiene.
import '@tensorflow/tfjs-backend-cpu';
// NOTE: tfjs-core's node bundle registers no gradients; vitest inlines this ESM file (Node alone cannot load it).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { clippedPolicyLoss, stopGradient } from '../../src/train/grpo_math.js';
import {
  explainedVariance,
  gae,
  gaeOne,
  normalizeAdvantages,
  padRows,
  tokenMean,
  valueLoss,
} from '../../src/train/ppo_math.js';
import { expectClose } from '../helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Reward-to-go sum_{k>=t} gamma^(k-t) r_k, straight from the definition. */
const rewardToGo = (r: number[], gamma: number): number[] =>
  r.map((_, t) => r.slice(t).reduce((a, x, k) => a + gamma ** k * x, 0));

describe('gae', () => {
  it('with gamma = lambda = 1 equals reward-to-go minus value, terminal reward on the last token', () => {
    const values = [0.3, -0.2, 0.7, 0.1];
    const { advantages, returns } = gaeOne(values, 1);
    const rtg = rewardToGo([0, 0, 0, 1], 1); // [1, 1, 1, 1]
    expectClose(returns, rtg, 1e-12, 'returns');
    expectClose(
      advantages,
      rtg.map((g, t) => g - values[t]),
      1e-12,
      'advantages',
    );
  });

  it('with per-token rewards and gamma = lambda = 1 is the undiscounted reward-to-go minus value', () => {
    const values = [1, 2, 3];
    const r = [0.5, -1, 2];
    const { advantages } = gaeOne(values, r);
    expect(advantages).toEqual([1.5 - 1, 1 - 2, 2 - 3]);
  });

  it('with gamma, lambda < 1 matches the forward sum of discounted TD errors', () => {
    const values = [0.4, 0.1, -0.3, 0.6, 0.2];
    const r = [0, 0.2, 0, 0, 1];
    const g = 0.9;
    const l = 0.8;
    const next = (t: number) => (t + 1 < values.length ? values[t + 1] : 0);
    const delta = values.map((v, t) => r[t] + g * next(t) - v);
    const want = delta.map((_, t) => delta.slice(t).reduce((a, d, k) => a + (g * l) ** k * d, 0));
    const { advantages, returns } = gaeOne(values, r, { gamma: g, lambda: l });
    expectClose(advantages, want, 1e-12, 'gae(0.9, 0.8)');
    expectClose(
      returns,
      want.map((a, t) => a + values[t]),
      1e-12,
      'returns',
    );
  });

  it('with lambda = 0 is the one-step TD error', () => {
    const values = [0.5, 0.25];
    expect(gaeOne(values, 1, { gamma: 1, lambda: 0 }).advantages).toEqual([0.25 - 0.5, 1 - 0.25]);
  });

  it('a critic that outputs 0: advantages equal returns, and batch-normalised they are the whitened returns', () => {
    const rewards = [1, 0, 1, 0.5];
    const lens = [3, 1, 2, 4];
    const zeros = lens.map((n) => new Array(n).fill(0));
    const { advantages, returns } = gae(zeros, rewards);
    expect(advantages).toEqual(returns);
    expect(returns).toEqual(lens.map((n, i) => new Array(n).fill(rewards[i])));
    // whitening by hand over the 10 tokens
    const flat = returns.flat();
    const mean = flat.reduce((a, b) => a + b, 0) / flat.length;
    const std = Math.sqrt(flat.reduce((a, b) => a + (b - mean) ** 2, 0) / flat.length);
    const norm = normalizeAdvantages(advantages, 'batch');
    expectClose(
      norm.flat(),
      flat.map((x) => (x - mean) / std),
      1e-12,
      'normalised',
    );
  });

  it('handles empty completions and rejects bad input with the culprit named', () => {
    expect(gae([[], [0]], [1, 1]).returns).toEqual([[], [1]]);
    expect(() => gae([[0]], [1, 2])).toThrow(/1 value rows but 2 rewards/);
    expect(() => gaeOne([0, Number.NaN], 1)).toThrow(/value 1 is NaN/);
    expect(() => gaeOne([0], Number.POSITIVE_INFINITY)).toThrow(/reward is Infinity/);
    expect(() => gaeOne([0], 1, { gamma: 1.5 })).toThrow(/gamma must be in \[0, 1\]/);
    expect(() => gaeOne([0, 0], [1])).toThrow(/1 per-token rewards but 2 values/);
  });
});

describe('normalizeAdvantages', () => {
  it("'batch' gives mean 0 and population std 1 over all tokens", () => {
    const a = [[1, 2, 3], [10], [-4, 0]];
    const n = normalizeAdvantages(a, 'batch').flat();
    const mean = n.reduce((x, y) => x + y, 0) / n.length;
    const std = Math.sqrt(n.reduce((x, y) => x + (y - mean) ** 2, 0) / n.length);
    expect(Math.abs(mean)).toBeLessThan(1e-12);
    expect(Math.abs(std - 1)).toBeLessThan(1e-12);
    expect(normalizeAdvantages([[1, 3]], 'batch')).toEqual([[-1, 1]]);
  });

  it("'group' whitens each block of groupSize completions on its own", () => {
    const n = normalizeAdvantages([[1], [3], [100, 100], [102]], 'group', 2);
    expect(n[0][0]).toBeCloseTo(-1, 12);
    expect(n[1][0]).toBeCloseTo(1, 12);
    // group 2: tokens 100, 100, 102 -> mean 100.667, std 0.943
    const m = 302 / 3;
    const s = Math.sqrt(((100 - m) ** 2 * 2 + (102 - m) ** 2) / 3);
    expectClose(
      [...n[2], ...n[3]],
      [100, 100, 102].map((x) => (x - m) / s),
      1e-12,
      'group 2',
    );
    expect(() => normalizeAdvantages([[1], [2], [3]], 'group', 2)).toThrow(/groupSize dividing the 3/);
  });

  it('a constant batch becomes zeros (no division by zero); none copies', () => {
    expect(normalizeAdvantages([[2, 2], [2]], 'batch')).toEqual([[0, 0], [0]]);
    const a = [[1, 2]];
    const c = normalizeAdvantages(a, 'none');
    expect(c).toEqual(a);
    expect(c[0]).not.toBe(a[0]);
  });
});

describe('explainedVariance', () => {
  it('is 1 for a perfect critic, 0 for the mean, 1 - Var(R - V)/Var(R) in general', () => {
    const R = [[1, 0], [1]];
    expect(explainedVariance(R, R)).toBe(1);
    const mean = tokenMean(R);
    expect(explainedVariance([[mean, mean], [mean]], R)).toBeCloseTo(0, 12);
    const V = [[0.5, 0.5], [0]];
    // residuals 0.5, -0.5, 1 -> var = mean(x^2) - mean^2 = (0.25+0.25+1)/3 - (1/3)^2 ; Var(R) = 2/9
    const varRes = 1.5 / 3 - 1 / 9;
    expect(explainedVariance(V, R)).toBeCloseTo(1 - varRes / (2 / 9), 12);
    expect(explainedVariance([[0]], [[1]])).toBeNaN();
    expect(() => explainedVariance([[0, 1]], [[1]])).toThrow(/row 0 has 2 values but 1 returns/);
  });
});

describe('valueLoss', () => {
  const t = (x: number[][]) => tf.tensor2d(x);

  it('is 0.5 * masked MSE, per-sequence mean then batch mean, with gradient V - R', async () => {
    const before = tf.memory().numTensors;
    const { data, mask } = padRows([[1, 3], [2]]);
    const init = t(data);
    const values = tf.variable(init);
    const returns = t([
      [0, 0],
      [0, 99],
    ]); // the padded 99 must not count
    const m = t(mask);
    const { value, grads } = tf.variableGrads(() => valueLoss({ values, returns, mask: m }).loss, [values]);
    // seq 0: (1 + 9)/2 = 5, seq 1: 4 -> 0.5 * (5 + 4)/2 = 2.25
    expect(await value.data()).toEqual(new Float32Array([2.25]));
    // d/dV of 0.5 * mean_seq(mean_tok (V-R)^2) = (V - R) / (len_i * N)
    expectClose(await grads[values.name].data(), [1 / 4, 3 / 4, 2 / 2, 0], 1e-7, 'grad');
    const tok = valueLoss({ values, returns, mask: m, aggregation: 'token' });
    expect((await tok.loss.data())[0]).toBeCloseTo((0.5 * (1 + 9 + 4)) / 3, 6);
    tf.dispose([init, value, grads[values.name], tok.loss, tok.clipFraction, values, returns, m]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('with clip takes the pessimistic max of the clipped and unclipped errors', async () => {
    const values = t([[1.0, 0.5, -1.0]]);
    const old = t([[0.0, 0.4, 0.0]]);
    const returns = t([[1.0, 0.0, 0.0]]);
    const mask = tf.ones([1, 3]);
    const { loss, clipFraction } = valueLoss({ values, oldValues: old, returns, mask, clip: 0.2 });
    // tok0: V=1 -> clipped 0.2, (0.2-1)^2 = 0.64 > 0 -> 0.64; tok1: V=0.5 within clip -> 0.25 both;
    // tok2: V=-1 -> clipped -0.2, (-0.2)^2 = 0.04 < 1 -> 1
    expect((await loss.data())[0]).toBeCloseTo((0.5 * (0.64 + 0.25 + 1)) / 3, 6);
    expect((await clipFraction.data())[0]).toBeCloseTo(1 / 3, 6);
    expect(() => valueLoss({ values, returns, mask, clip: 0.2 })).toThrow(/clip needs oldValues/);
    expect(() => valueLoss({ values, returns: t([[0]]), mask })).toThrow(/returns has shape \[1,1\]/);
    tf.dispose([values, old, returns, mask, loss, clipFraction]);
  });
});

describe('clippedPolicyLoss with per-token advantages (PPO)', () => {
  it('[N, T] advantages equal to the per-sequence ones give the same loss as [N]', async () => {
    const logprobs = tf.tensor2d([
      [-1, -2, -0.5],
      [-0.3, -0.7, -1.1],
    ]);
    const old = tf.tensor2d([
      [-1.1, -1.8, -0.5],
      [-0.2, -0.9, -1.0],
    ]);
    const mask = tf.tensor2d([
      [1, 1, 0],
      [1, 1, 1],
    ]);
    const a1 = clippedPolicyLoss({ logprobs, oldLogprobs: old, mask, advantages: tf.tensor1d([0.5, -1]) });
    const a2 = clippedPolicyLoss({
      logprobs,
      oldLogprobs: old,
      mask,
      advantages: tf.tensor2d([
        [0.5, 0.5, 0.5],
        [-1, -1, -1],
      ]),
    });
    expect(await a2.loss.data()).toEqual(await a1.loss.data());
    expect(() =>
      clippedPolicyLoss({ logprobs, oldLogprobs: old, mask, advantages: tf.tensor2d([[1, 2]]) }),
    ).toThrow(/advantages has shape \[1,2\] but logprobs has \[2,3\]/);
  });

  it('mu = 1: ratio is exactly 1 and the gradient of token t is -A_t / tokens', async () => {
    const lp = tf.variable(
      tf.tensor2d([
        [-1, -2],
        [-0.5, -3],
      ]),
    );
    const adv = tf.tensor2d([
      [0.7, -0.2],
      [1.5, 0],
    ]);
    const mask = tf.tensor2d([
      [1, 1],
      [1, 0],
    ]);
    let ratioMin = 0;
    let ratioMax = 0;
    const { grads } = tf.variableGrads(() => {
      const out = clippedPolicyLoss({ logprobs: lp, oldLogprobs: stopGradient(lp), advantages: adv, mask });
      ratioMin = out.stats.ratioMin.dataSync()[0];
      ratioMax = out.stats.ratioMax.dataSync()[0];
      return out.loss;
    }, [lp]);
    expect([ratioMin, ratioMax]).toEqual([1, 1]);
    // token aggregation over 3 real tokens: d/dlp_t of -(r_t A_t)/3 at r = 1 is -A_t / 3 (0 on padding)
    expectClose(await grads[lp.name].data(), [-0.7 / 3, 0.2 / 3, -1.5 / 3, 0], 1e-7, 'per-token grad');
  });
});

describe('PPO config', () => {
  it('GrpoConfig has the gae fields with ORZ/OVR defaults; examples/configs/ppo-ovr.json is the paper preset', async () => {
    const { GrpoConfig } = await import('../../src/train/grpo_config.js');
    const { readFileSync } = await import('node:fs');
    const { ROOT } = await import('../helpers.js');
    const c = GrpoConfig.parse({ model: 'tiny', data: { train: 'p.jsonl' } });
    expect(c).toMatchObject({ advantage: 'group', gamma: 1, lambda: 1, advantageNorm: 'batch' });
    expect(c.critic).toEqual({ lr: 5e-6, warmupSteps: 50, updateSteps: 4, valueClip: 0.2, maxGradNorm: 1 });
    const p = GrpoConfig.parse(JSON.parse(readFileSync(`${ROOT}/examples/configs/ppo-ovr.json`, 'utf8')));
    expect(p).toMatchObject({
      advantage: 'gae',
      lr: 1e-6,
      warmupSteps: 50,
      minLrRatio: 1,
      klCoef: 0,
      entropyCoef: 0,
    });
    expect(p).toMatchObject({ temperature: 1, topP: 1, ppoEpochs: 1, betas: [0.9, 0.95], weightDecay: 0 });
    expect(() => GrpoConfig.parse({ model: 'tiny', data: { train: 'p.jsonl' }, critic: { lr: 0 } })).toThrow(
      /lr/,
    );
    expect(() => GrpoConfig.parse({ model: 'tiny', data: { train: 'p.jsonl' }, advantage: 'ppo' })).toThrow(
      /advantage/,
    );
  });
});

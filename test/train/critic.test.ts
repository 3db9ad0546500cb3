// The PPO critic during RL on the tiny model (vocab cut to 256, cpu): a zero head gives values 0, so advantages are
// the batch-normalised returns (the terminal reward on every token, gamma = lambda = 1); critic updates lower the
// value loss and raise the explained variance on a fixed batch; save + resume restores weights, head, moments and
// step exactly (the next update matches bit for bit); the policy is never touched; no tensor leaks.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { Critic, type CriticSettings } from '../../src/train/critic.js';
import { buildTrainRows, type TrainRows } from '../../src/train/rollout.js';
import { expectClose, tinyConfig256 } from '../helpers.js';

let cfg: Qwen2_5_VLConfig;
let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cfg = await tinyConfig256();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-critic-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const S: CriticSettings = {
  lr: 3e-3,
  warmupSteps: 0,
  updateSteps: 4,
  valueClip: undefined,
  maxGradNorm: 1,
  betas: [0.9, 0.95],
  eps: 1e-8,
  weightDecay: 0,
  trainable: 'lm',
  maxConsecutiveNonFinite: 3,
  recompute: false,
};
const P = [
  { ids: [5, 6, 7], pixels: null, gridThw: [] },
  { ids: [9, 10], pixels: null, gridThw: [] },
];
// reward 1 iff the completion's first token is 40: the critic sees that token from the second position on
const COMPLETIONS = [
  [40, 41, 42],
  [50, 41],
  [40, 43],
  [51, 52, 53],
];
const REWARDS = [1, 0, 1, 0];
const micro = (): TrainRows[] => [
  buildTrainRows([P[0], P[0]], COMPLETIONS.slice(0, 2), 0),
  buildTrainRows([P[1], P[1]], COMPLETIONS.slice(2), 0),
];
const opts = { gamma: 1, lambda: 1, norm: 'batch' as const, groupSize: 2 };

describe('Critic', () => {
  it('with a zero head: values 0, returns = reward on every token, advantages = whitened returns', async () => {
    const before = tf.memory().numTensors;
    const policy = Qwen2_5_VL.init(cfg, 1);
    const critic = Critic.fromPolicy(policy, S, 0);
    tf.tidy(() => critic.value.head.assign(tf.zerosLike(critic.value.head)));
    const t = await critic.targets(micro(), REWARDS, opts);
    expect(t.values).toEqual(COMPLETIONS.map((c) => c.map(() => 0)));
    expect(t.returns).toEqual(COMPLETIONS.map((c, i) => c.map(() => REWARDS[i])));
    const flat = t.returns.flat();
    const m = flat.reduce((a, b) => a + b, 0) / flat.length;
    const sd = Math.sqrt(flat.reduce((a, b) => a + (b - m) ** 2, 0) / flat.length);
    expectClose(
      t.advantages.flat(),
      flat.map((x) => (x - m) / sd),
      1e-12,
      'advantages',
    );
    expect(t.returnMean).toBeCloseTo(m, 12);
    critic.dispose();
    policy.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('updates lower the value loss and raise the explained variance; the policy is untouched', async () => {
    const policy = Qwen2_5_VL.init(cfg, 2);
    const snapshot = await Promise.all(policy.variables().map((v) => v.data()));
    const critic = Critic.fromPolicy(policy, S, 0);
    const rows = micro();
    const first = await critic.targets(rows, REWARDS, opts);
    const losses: number[] = [];
    const evs: number[] = [first.explainedVariance];
    for (let s = 0; s < 6; s++) {
      const t = await critic.targets(rows, REWARDS, opts);
      losses.push((await critic.update(rows, t, s)).valueLoss);
      evs.push((await critic.targets(rows, REWARDS, opts)).explainedVariance);
    }
    console.log(
      `critic: value loss ${losses.map((x) => x.toFixed(4)).join(' ')}; EV ${evs.map((x) => x.toFixed(3)).join(' ')}`,
    );
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.5);
    expect(evs.at(-1)!).toBeGreaterThan(evs[0] + 0.3);
    expect(critic.step).toBe(6 * S.updateSteps);
    const after = await Promise.all(policy.variables().map((v) => v.data()));
    after.forEach((d, i) => {
      expect(d).toEqual(snapshot[i]);
    });
    critic.dispose();
    policy.dispose();
  });

  it('save + resume restores weights, head, moments and step: the next update is bit-identical', async () => {
    const policy = Qwen2_5_VL.init(cfg, 3);
    const a = Critic.fromPolicy(policy, { ...S, valueClip: 0.2 }, 0);
    const rows = micro();
    for (let s = 0; s < 2; s++) await a.update(rows, await a.targets(rows, REWARDS, opts), s);
    const dir = path.join(tmp, 'ck');
    await a.save(dir);
    const b = Critic.fromPolicy(policy, { ...S, valueClip: 0.2 }, 99);
    await b.resume(dir);
    expect(b.step).toBe(a.step);
    const ua = await a.update(rows, await a.targets(rows, REWARDS, opts), 2);
    const ub = await b.update(rows, await b.targets(rows, REWARDS, opts), 2);
    expect(ub).toEqual(ua);
    expect(await b.value.head.data()).toEqual(await a.value.head.data());
    const c = Critic.fromPolicy(policy, S, 0);
    await expect(c.resume(tmp)).rejects.toThrow(/no usable critic\/ folder/);
    c.dispose();
    a.dispose();
    b.dispose();
    policy.dispose();
  });
});

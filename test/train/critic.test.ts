// The PPO critic during RL on the tiny model (vocab cut to 256, cpu): a zero head gives values 0, so advantages are
// the batch-normalised returns (the terminal reward on every token, gamma = lambda = 1); critic updates lower the
// value loss and raise the explained variance on a fixed batch; save + resume restores weights, head, moments and
// step exactly (the next update matches bit for bit); the policy is never touched; no tensor leaks.
// With a LoRA policy the critic is LoRA too (its own adapter on the shared frozen base): at init its values equal a
// full-copy critic's exactly, with a trained adapter they equal a full critic on the merged weights, updates move only
// the critic adapter + head (policy adapter and base bit-identical), its checkpoint is a PEFT adapter + head, resume
// is exact (dropout on: masks replayed), and the tensor count is flat across updates.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import { adapterOf, attachAdapter, LoraAdapter, LoraConfig, mergeAdapter } from '../../src/model/lora.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { copyBackbone, initValueHead, modelBackbone, ValueModel } from '../../src/model/value.js';
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

  it.each([
    ['full copy', false],
    ['LoRA (dropout 0.1)', true],
  ] as const)(
    '%s: save + resume restores weights, head, moments and step: the next update is bit-identical',
    async (_name, lora) => {
      const policy = lora ? loraPolicy(3, 0.1) : Qwen2_5_VL.init(cfg, 3);
      const a = Critic.fromPolicy(policy, { ...S, valueClip: 0.2 }, 0);
      const rows = micro();
      for (let s = 0; s < 2; s++) await a.update(rows, await a.targets(rows, REWARDS, opts), s);
      const dir = path.join(tmp, lora ? 'ck-lora' : 'ck');
      await a.save(dir);
      const files = (await readdir(path.join(dir, 'critic'))).sort();
      console.log(`critic/ (${_name}): ${files.join(', ')}`);
      if (lora) {
        expect(files).toEqual([
          'adapter_config.json',
          'adapter_model.safetensors',
          'critic_state.json',
          'optimizer.safetensors',
          'value_head.safetensors',
        ]);
      } else expect(files).toContain('model.safetensors');
      // LoRA: the dropout masks follow the critic seed, which a resumed run gets from its config (same seed here)
      const b = Critic.fromPolicy(policy, { ...S, valueClip: 0.2 }, lora ? 0 : 99);
      await b.resume(dir);
      expect(b.step).toBe(a.step);
      const ua = await a.update(rows, await a.targets(rows, REWARDS, opts), 2);
      const ub = await b.update(rows, await b.targets(rows, REWARDS, opts), 2);
      expect(ub).toEqual(ua);
      expect(await b.value.head.data()).toEqual(await a.value.head.data());
      const named = [a, b].map((c) => c.value.backbone.named());
      for (const k of Object.keys(named[0]))
        expect(await named[1][k].data(), k).toEqual(await named[0][k].data());
      const c = Critic.fromPolicy(policy, S, 0);
      await expect(c.resume(tmp)).rejects.toThrow(/no usable critic\/ folder/);
      // the other kind of critic refuses this folder before anything is assigned
      const otherPolicy = lora ? Qwen2_5_VL.init(cfg, 3) : loraPolicy(3);
      const other = Critic.fromPolicy(otherPolicy, S, 0);
      await expect(other.resume(dir)).rejects.toThrow(
        lora
          ? /LoRA critic but this run's critic is a full copy/
          : /full-copy critic but this run's critic is LoRA/,
      );
      other.dispose();
      otherPolicy.dispose();
      c.dispose();
      a.dispose();
      b.dispose();
      policy.dispose();
    },
  );
});

/** The tiny policy carrying a fresh LoRA adapter (B = 0), as setupAdapter leaves it. */
function loraPolicy(seed: number, dropout = 0): Qwen2_5_VL {
  const policy = Qwen2_5_VL.init(cfg, seed);
  attachAdapter(policy.params, LoraAdapter.init(cfg, LoraConfig.parse({ r: 4, alpha: 8, dropout }), seed));
  return policy;
}

const maxDiff = (a: number[], b: number[]): number =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

describe('Critic with a LoRA policy (a second adapter + head on the shared base)', () => {
  it('at init equals a full-copy critic exactly; with a trained adapter equals a full critic on merged weights', async () => {
    const before = tf.memory().numTensors;
    const policy = loraPolicy(4);
    const lc = Critic.fromPolicy(policy, S, 5);
    const critAdapter = lc.value.backbone.adapter!;
    expect(critAdapter).toBeDefined();
    expect(critAdapter).not.toBe(adapterOf(policy.params));
    expect(Object.keys(lc.params).every((k) => /lora_[AB]\.weight$|^value_head\.weight$/.test(k))).toBe(true);
    const full = new Critic(new ValueModel(copyBackbone(policy), initValueHead(cfg.hidden_size, 5)), S);
    const [vl, vf] = [await lc.rolloutValues(micro()), await full.rolloutValues(micro())];
    const d0 = maxDiff(vl.flat(), vf.flat());
    console.log(`LoRA critic vs full-copy critic at init (zero B): max diff ${d0}`);
    expect(d0).toBe(0);
    // move the critic adapter's B: values = a full critic on W + scale B A (merged on a separate copy)
    tf.tidy(() => {
      for (const [k, v] of Object.entries(critAdapter.variables()))
        if (k.endsWith('lora_B.weight')) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 11));
    });
    const merged = Qwen2_5_VL.init(cfg, 4);
    attachAdapter(merged.params, critAdapter.copy());
    const twin = adapterOf(merged.params)!;
    mergeAdapter(merged.params);
    twin.dispose();
    const head = tf.tidy(() => tf.variable(lc.value.head.clone()));
    const mc = new Critic(new ValueModel(modelBackbone(merged), head), S);
    const [vt, vm] = [await lc.rolloutValues(micro()), await mc.rolloutValues(micro())];
    const d1 = maxDiff(vt.flat(), vm.flat());
    const moved = maxDiff(vt.flat(), vl.flat());
    console.log(
      `LoRA critic (random B) vs full critic on merged weights: max diff ${d1.toExponential(3)} (moved ${moved.toExponential(3)})`,
    );
    expect(d1).toBeLessThan(1e-5);
    expect(moved).toBeGreaterThan(1e-3);
    for (const c of [lc, full, mc]) c.dispose();
    policy.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('updates move only the critic adapter + head; policy adapter and base bit-identical; no tensor growth', async () => {
    const policy = loraPolicy(6);
    const policyLora = adapterOf(policy.params)!;
    randomizeOne(policyLora); // a policy adapter that is not at its init, so "unchanged" means something
    const snap = async (r: Record<string, tf.Tensor>) =>
      Object.fromEntries(
        await Promise.all(Object.entries(r).map(async ([k, t]) => [k, await t.data()] as const)),
      );
    const base0 = await snap(policy.params);
    const pol0 = await snap(policyLora.tensors);
    const critic = Critic.fromPolicy(policy, S, 0);
    const crit0 = await snap(critic.params);
    const rows = micro();
    const losses: number[] = [];
    const counts: number[] = [];
    for (let s = 0; s < 6; s++) {
      const t = await critic.targets(rows, REWARDS, opts);
      losses.push((await critic.update(rows, t, s)).valueLoss);
      counts.push(tf.memory().numTensors);
    }
    console.log(
      `LoRA critic: value loss ${losses.map((x) => x.toFixed(4)).join(' ')}; tensors after each step ${counts.join(' ')}`,
    );
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.5);
    expect(new Set(counts).size).toBe(1);
    const base1 = await snap(policy.params);
    for (const k of Object.keys(base0)) expect(base1[k], k).toEqual(base0[k]);
    const pol1 = await snap(policyLora.tensors);
    for (const k of Object.keys(pol0)) expect(pol1[k], k).toEqual(pol0[k]);
    expect(adapterOf(policy.params)).toBe(policyLora);
    expect(Object.values(policy.params).every((t) => !(t as tf.Variable).trainable)).toBe(true);
    const crit1 = await snap(critic.params);
    const changed = Object.keys(crit0).filter((k) =>
      crit1[k].some((x: number, i: number) => x !== crit0[k][i]),
    );
    console.log(`LoRA critic: ${changed.length} of ${Object.keys(crit0).length} critic tensors moved`);
    expect(changed).toContain('value_head.weight');
    expect(changed.some((k) => k.endsWith('lora_B.weight'))).toBe(true);
    critic.dispose();
    policy.dispose();
  });
});

describe('LoRA critic with recompute', () => {
  it('per-layer recompute gives the same critic update as the plain forward (the critic adapter is replayed)', async () => {
    const run = async (recompute: boolean) => {
      const policy = loraPolicy(7);
      const critic = Critic.fromPolicy(policy, { ...S, recompute, updateSteps: 2 }, 0);
      const rows = micro();
      const u = await critic.update(rows, await critic.targets(rows, REWARDS, opts), 0);
      const after = await critic.targets(rows, REWARDS, opts);
      critic.dispose();
      policy.dispose();
      return { u, values: after.values.flat() };
    };
    const [plain, rec] = [await run(false), await run(true)];
    const d = maxDiff(rec.values, plain.values);
    console.log(
      `LoRA critic recompute vs plain: value loss ${rec.u.valueLoss} vs ${plain.u.valueLoss}, values after max diff ${d.toExponential(3)}`,
    );
    expect(Math.abs(rec.u.valueLoss - plain.u.valueLoss)).toBeLessThan(1e-6);
    expect(d).toBeLessThan(1e-5);
  });
});

/** Sets the policy adapter's first lora_B to seeded noise. */
function randomizeOne(a: LoraAdapter): void {
  const k = Object.keys(a.tensors).find((x) => x.endsWith('lora_B.weight'))!;
  const v = a.tensors[k] as tf.Variable;
  tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 3)));
}

// The PPO critic: ORZ head init (N(0, 1/(D+1)), no bias), values = hidden · w (checked against the backbone's hidden
// states read separately), completion alignment (value of token t at position promptLen + t - 1), separate weights
// from the policy (training the critic leaves the policy bit-identical), save/load round trip, and no leaks.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import { adapterOf, attachAdapter, LoraAdapter, LoraConfig } from '../../src/model/lora.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { initValueHead, VALUE_HEAD_KEY, ValueModel, valuesFromHidden } from '../../src/model/value.js';
import { expectClose, tinyConfig256 } from '../helpers.js';

let cfg: Qwen2_5_VLConfig;
let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cfg = await tinyConfig256();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-value-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const IDS = [
  [5, 9, 17, 33, 2, 8],
  [7, 7, 1, 100, 200, 3],
];

describe('value head', () => {
  it('is initialised as ORZ: [1, D], mean ~ 0, std ~ 1/(D+1), seeded', async () => {
    const D = 4096;
    const h = initValueHead(D, 3);
    expect(h.shape).toEqual([1, D]);
    const x = Array.from(await h.data());
    const mean = x.reduce((a, b) => a + b, 0) / D;
    const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / D);
    console.log(
      `value head D=${D}: mean ${mean.toExponential(2)}, std ${std.toExponential(4)} vs ${(1 / (D + 1)).toExponential(4)}`,
    );
    expect(Math.abs(mean)).toBeLessThan(4 / (D + 1) / Math.sqrt(D));
    expect(Math.abs(std * (D + 1) - 1)).toBeLessThan(0.05);
    const again = initValueHead(D, 3);
    expect(await again.data()).toEqual(await h.data());
    const other = initValueHead(D, 4);
    expect(await other.data()).not.toEqual(await h.data());
    tf.dispose([h, again, other]);
    expect(() => initValueHead(0)).toThrow(/positive integer/);
  });

  it('valuesFromHidden is hidden · w with no bias', async () => {
    const hidden = tf.tensor3d([
      [
        [1, 2, 3],
        [0, 0, 0],
      ],
    ]);
    const w = tf.tensor2d([[1, -1, 2]]);
    const v = valuesFromHidden(hidden, w);
    expect(Array.from(await v.data())).toEqual([5, 0]);
    expect(() => valuesFromHidden(hidden, tf.tensor2d([[1, 2]]))).toThrow(/value head must be \[1, 3\]/);
    tf.dispose([hidden, w, v]);
  });
});

describe('ValueModel', () => {
  it('from the policy: separate weights, values equal head · the policy hidden states, completion alignment', async () => {
    const before = tf.memory().numTensors;
    const policy = Qwen2_5_VL.init(cfg, 1);
    const critic = ValueModel.fromPolicy(policy, 5);
    // same weights at init: the critic's hidden states are the policy's
    const { hidden } = policy.hidden({ inputIds: IDS });
    const h = (await hidden.array()) as number[][][];
    const w = Array.from(await critic.head.data());
    const want = h.map((row) => row.map((vec) => vec.reduce((a, x, j) => a + x * w[j], 0)));
    const v = critic.values({ inputIds: IDS });
    expectClose((await v.data()) as Float32Array, want.flat(), 1e-5, 'values vs head · hidden');
    // completion values: prompt of 2 tokens, completion of 4 -> positions 1..4
    const cv = critic.completionValues({ inputIds: IDS }, 2, 4);
    expect(cv.shape).toEqual([2, 4]);
    expectClose(
      (await cv.data()) as Float32Array,
      want.flatMap((r) => r.slice(1, 5)),
      1e-5,
      'completion values',
    );
    expect(() => critic.completionValues({ inputIds: IDS }, 3, 5)).toThrow(/exceeds the 6 input tokens/);

    // one critic step moves only critic variables
    const policyBefore = await Promise.all(policy.variables().map((p) => p.data()));
    const vars = critic.variables('text');
    expect(vars).toContain(critic.head);
    const target = tf.zeros([2, 4]);
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(tf.sub(critic.completionValues({ inputIds: IDS }, 2, 4), target))) as tf.Scalar,
      vars,
    );
    const headGrad = grads[critic.head.name];
    expect(Math.abs((await headGrad.data())[0])).toBeGreaterThan(0);
    // an SGD step on every critic variable (backbone copy included)
    tf.tidy(() => {
      for (const x of vars) x.assign(tf.sub(x, tf.mul(grads[x.name], 0.1)));
    });
    const moved = await critic.variables('text')[1].data();
    expect(moved).not.toEqual(policyBefore[policy.variables().indexOf(policy.variables('lm')[1])]);
    const policyAfter = await Promise.all(policy.variables().map((p) => p.data()));
    policyAfter.forEach((d, i) => {
      expect(d).toEqual(policyBefore[i]);
    });
    tf.dispose([hidden, v, cv, target, value, ...Object.values(grads)]);
    critic.dispose();
    policy.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('saves and loads: HF backbone + value_head.safetensors, identical values', async () => {
    const policy = Qwen2_5_VL.init(cfg, 2);
    const critic = ValueModel.fromPolicy(policy, 6);
    policy.dispose();
    const dir = path.join(tmp, 'critic');
    await critic.save(dir);
    const loaded = await ValueModel.load(dir);
    const a = critic.values({ inputIds: IDS });
    const b = loaded.values({ inputIds: IDS });
    expect(await b.data()).toEqual(await a.data());
    expect(loaded.head.shape).toEqual([1, cfg.hidden_size]);
    tf.dispose([a, b]);
    critic.dispose();
    loaded.dispose();
    await expect(ValueModel.load(tmp)).rejects.toThrow(/no value_head.safetensors/);
    expect(VALUE_HEAD_KEY).toBe('value_head.weight');
  });

  it('LoRA policy: the critic is an adapter copy on the shared base; saves a PEFT adapter + head, loads on the base', async () => {
    const policy = Qwen2_5_VL.init(cfg, 4);
    attachAdapter(policy.params, LoraAdapter.init(cfg, LoraConfig.parse({ r: 4 }), 0));
    const critic = ValueModel.fromPolicy(policy, 6);
    const lora = critic.backbone.adapter!;
    expect(lora).not.toBe(adapterOf(policy.params));
    expect(critic.variables().length).toBe(Object.keys(lora.tensors).length + 1);
    tf.tidy(() => {
      for (const [k, v] of Object.entries(lora.variables()))
        if (k.endsWith('lora_B.weight')) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 1));
    });
    const dir = path.join(tmp, 'critic-lora');
    await critic.save(dir);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'value_head.safetensors']);
    await expect(ValueModel.load(dir)).rejects.toThrow(/LoRA critic .* pass the policy's base model/);
    const loaded = await ValueModel.load(dir, policy);
    const a = critic.values({ inputIds: IDS });
    const b = loaded.values({ inputIds: IDS });
    expect(await b.data()).toEqual(await a.data());
    // the policy's own adapter still has B = 0: its hidden states differ from the critic's
    const h = tf.tidy(() =>
      valuesFromHidden(policy.hidden({ inputIds: IDS }).hidden, critic.head as tf.Tensor2D),
    );
    expect(await h.data()).not.toEqual(await a.data());
    tf.dispose([a, b, h]);
    critic.dispose();
    loaded.dispose();
    policy.dispose();
  });
});

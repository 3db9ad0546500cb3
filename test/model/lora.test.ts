// LoRA invariants on a small random model (V=300): at init the model equals the base exactly; adapter off equals
// the base; merged weights equal base + adapter; only adapter tensors get gradients and no kernel of the backward
// builds a tensor shaped like a frozen base matrix (the full fine-tuning run does, so the check can fail); recompute
// and dropout give the same gradients as the plain forward; PEFT's init bounds; target selection and errors; no leaks.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import {
  adapterOf,
  attachAdapter,
  detachAdapter,
  LoraAdapter,
  LoraConfig,
  loraTargets,
  mergeAdapter,
  withAdapter,
  withAdapterOff,
} from '../../src/model/lora.js';
import { type ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';
import { fixtureConfig, setupBackend } from './fixture.js';

let cfg: Qwen2_5_VLConfig;
beforeAll(async () => {
  await setupBackend();
  cfg = { ...(await fixtureConfig()), vocab_size: 300, image_token_id: 290, video_token_id: 291 };
  cfg = {
    ...cfg,
    vision_start_token_id: 292,
    vision_end_token_id: 293,
    bos_token_id: 294,
    eos_token_id: 295,
  };
});

/** B=1, T=5 text rows: N = 5 rows, a size no weight dimension has, so activation shapes never look like a weight. */
const inputs: ModelInputs = { inputIds: [[3, 17, 101, 44, 9]] };
const labels = [[3, 17, 101, 44, 9]];

async function logitsOf(model: Qwen2_5_VL): Promise<Float32Array> {
  const { logits } = model.forward(inputs);
  const out = (await logits.data()) as Float32Array;
  logits.dispose();
  return out;
}

/** Sets every lora_B to seeded N(0, 0.05) noise so the adapter changes the output. */
function randomizeB(a: LoraAdapter, seed: number): void {
  const rng = new Rng(seed);
  for (const [k, t] of Object.entries(a.tensors)) {
    if (!k.endsWith('lora_B.weight')) continue;
    const v = Float32Array.from({ length: t.size }, () => rng.normal() * 0.05);
    tf.tidy(() => (t as tf.Variable).assign(tf.tensor(v, t.shape)));
  }
}

describe('LoRA adapter', () => {
  let model: Qwen2_5_VL;
  let base: Float32Array;
  beforeAll(async () => {
    model = Qwen2_5_VL.init(cfg, 3);
    base = await logitsOf(model);
  });
  afterAll(() => {
    adapterOf(model.params)?.dispose();
    model.dispose();
  });

  it('at init (B = 0) the model equals the base exactly; adapter off equals the base exactly', async () => {
    const lora = LoraAdapter.init(cfg, LoraConfig.parse({ r: 4, alpha: 8 }), 0);
    attachAdapter(model.params, lora);
    const atInit = await logitsOf(model);
    expect(expectClose(atInit, base, 0, 'init vs base')).toBe(0);
    randomizeB(lora, 1);
    const on = await logitsOf(model);
    const moved = on.reduce((m, x, i) => Math.max(m, Math.abs(x - base[i])), 0);
    console.log(`adapter with random B moves the logits by ${moved.toExponential(3)}`);
    expect(moved).toBeGreaterThan(1e-3);
    const off = await withAdapterOff(model.params, () => logitsOf(model));
    expect(expectClose(off, base, 0, 'adapter off vs base')).toBe(0);
    expect(lora.enabled).toBe(true);
  });

  it('only adapter Variables receive gradients; no frozen base matrix gradient is built (plain and recompute)', async () => {
    const lora = adapterOf(model.params)!;
    const vars = Object.values(lora.variables());
    const frozen = Object.values(model.params).filter((t) => t.rank === 2);
    const shapeKey = (s: number[]): string => s.join('x');
    const weightShapes = new Set(
      frozen.flatMap((t) => [shapeKey(t.shape), shapeKey([...t.shape].reverse())]),
    );
    const before = tf.memory().numTensors;
    for (const recompute of [false, true]) {
      const prof = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(() => model.loss(inputs, labels, { recompute }), vars);
        expect(Object.keys(grads).length).toBe(vars.length);
        tf.dispose([value, ...Object.values(grads)]);
      });
      // Identity: the engine re-references a weight it saves for backward (same buffer, incRef); not a gradient
      const hits = prof.kernels.filter(
        (k) => k.name !== 'Identity' && k.outputShapes.some((s) => s && weightShapes.has(shapeKey(s))),
      );
      console.log(
        `LoRA backward (recompute ${recompute}): ${prof.kernels.length} kernels, ${hits.length} weight-shaped outputs`,
      );
      expect(hits.map((k) => `${k.name} ${k.outputShapes}`)).toEqual([]);
    }
    // the same check on full fine-tuning finds the base gradients, so it is able to fail
    const full = await tf.profile(() => {
      detachAdapter(model.params);
      const { value, grads } = tf.variableGrads(() => model.loss(inputs, labels), model.variables('lm'));
      tf.dispose([value, ...Object.values(grads)]);
      attachAdapter(model.params, lora);
    });
    const fullHits = full.kernels.filter(
      (k) => k.name !== 'Identity' && k.outputShapes.some((s) => s && weightShapes.has(shapeKey(s))),
    );
    console.log(`full fine-tuning backward: ${fullHits.length} weight-shaped outputs`);
    expect(fullHits.length).toBeGreaterThan(10);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('recompute gives the same LoRA gradients as the plain forward, with dropout on (masks replayed)', async () => {
    const lora = adapterOf(model.params)!;
    const dropped = new LoraAdapter({ ...lora.config, dropout: 0.3 }, lora.tensors, lora.seed);
    detachAdapter(model.params);
    attachAdapter(model.params, dropped);
    dropped.training = true;
    dropped.dropoutKey = 5;
    const vars = Object.values(dropped.variables());
    const grads = async (recompute: boolean): Promise<Float32Array[]> => {
      const { value, grads: g } = tf.variableGrads(() => model.loss(inputs, labels, { recompute }), vars);
      const out = await Promise.all(vars.map(async (v) => (await g[v.name].data()) as Float32Array));
      tf.dispose([value, ...Object.values(g)]);
      return out;
    };
    const plain = await grads(false);
    const again = await grads(true);
    let worst = 0;
    plain.forEach((g, i) => {
      worst = Math.max(worst, expectClose(again[i], g, 1e-6, `recompute lora grad ${i}`));
    });
    const train = await logitsOf(model);
    dropped.dropoutKey = 6;
    const other = await logitsOf(model);
    dropped.training = false;
    const evalOut = await logitsOf(model);
    detachAdapter(model.params);
    attachAdapter(model.params, lora);
    const clean = await logitsOf(model);
    expect(expectClose(evalOut, clean, 0, 'dropout off in eval')).toBe(0);
    expect(train.some((x, i) => x !== other[i])).toBe(true); // another key, other masks
    console.log(`recompute vs plain with dropout 0.3: worst grad diff ${worst.toExponential(3)}`);
  });

  it('merged weights give the logits of base + adapter (<= 1e-5)', async () => {
    const withAdapter = await logitsOf(model);
    const copy = Qwen2_5_VL.init(cfg, 3);
    const lora = adapterOf(model.params)!;
    const twin = new LoraAdapter(
      lora.config,
      Object.fromEntries(Object.entries(lora.tensors).map(([k, t]) => [k, tf.variable(t.clone())])),
    );
    attachAdapter(copy.params, twin);
    mergeAdapter(copy.params);
    expect(adapterOf(copy.params)).toBeUndefined();
    expect(Object.values(copy.params).every((t) => (t as tf.Variable).trainable)).toBe(true);
    const merged = await logitsOf(copy);
    expectClose(merged, withAdapter, 1e-5, 'merged vs base + adapter');
    twin.dispose();
    copy.dispose();
  });
});

describe('withAdapter (a second adapter on the same base, e.g. the PPO critic)', () => {
  it('computes with the given adapter, puts the previous one back (also on throw); copy() is independent', async () => {
    const model = Qwen2_5_VL.init(cfg, 4);
    const base = await logitsOf(model);
    const own = LoraAdapter.init(cfg, LoraConfig.parse({ r: 4, alpha: 8 }), 0);
    attachAdapter(model.params, own);
    const other = own.copy(7);
    expect(other.seed).toBe(7);
    randomizeB(other, 2);
    const before = tf.memory().numTensors;
    // own has B = 0: the model is the base; with `other` swapped in it is base + other (a twin model checks that)
    const logits = withAdapter(model.params, other, () => model.forward(inputs).logits);
    const swapped = (await logits.data()) as Float32Array;
    logits.dispose();
    const twin = Qwen2_5_VL.init(cfg, 4);
    attachAdapter(twin.params, other.copy());
    const want = await logitsOf(twin);
    twin.dispose();
    const diff = expectClose(swapped, want, 0, 'withAdapter vs a model carrying it');
    console.log(`withAdapter: max diff vs a model carrying the adapter ${diff}`);
    expect(adapterOf(model.params)).toBe(own);
    expect(expectClose(await logitsOf(model), base, 0, 'own adapter back')).toBe(0);
    expect(() =>
      withAdapter(model.params, other, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(adapterOf(model.params)).toBe(own);
    expect(() => withAdapter(model.params, other, async () => 1)).toThrow(/synchronous/);
    expect(adapterOf(model.params)).toBe(own);
    expect(Object.values(model.params).every((t) => !(t as tf.Variable).trainable)).toBe(true);
    // the same adapter: nothing to swap; no adapter before: the base is unfrozen again after
    expect(withAdapter(model.params, own, () => adapterOf(model.params))).toBe(own);
    detachAdapter(model.params);
    expect(withAdapter(model.params, other, () => adapterOf(model.params))).toBe(other);
    expect(adapterOf(model.params)).toBeUndefined();
    expect(Object.values(model.params).every((t) => (t as tf.Variable).trainable)).toBe(true);
    // copies own their tensors: changing one leaves the other
    expect(other.tensors[Object.keys(other.tensors)[1]]).not.toBe(own.tensors[Object.keys(own.tensors)[1]]);
    expect(tf.memory().numTensors).toBe(before);
    own.dispose();
    other.dispose();
    model.dispose();
  });
});

describe('LoRA targets and init', () => {
  it('default targets are the 7 LM linears of every layer; vision adds the blocks; r x in / out x r shapes', () => {
    const lm = loraTargets(cfg, LoraConfig.parse({}));
    expect(lm.length).toBe(7 * cfg.num_hidden_layers);
    expect(lm.every((t) => t.module.startsWith('model.layers.'))).toBe(true);
    const v = loraTargets(cfg, LoraConfig.parse({ vision: true, targetModules: ['qkv', 'proj', 'q_proj'] }));
    const names = v.map((t) => t.module);
    expect(names).toContain('visual.blocks.0.attn.qkv');
    expect(names).toContain('visual.blocks.0.attn.proj');
    expect(names).not.toContain('visual.patch_embed.proj'); // a Conv3d, not a linear
    expect(names.filter((n) => n.endsWith('q_proj')).length).toBe(cfg.num_hidden_layers);
    const a = LoraAdapter.init(cfg, LoraConfig.parse({ r: 4 }), 1);
    expect(a.tensors['model.layers.0.mlp.down_proj.lora_A.weight'].shape).toEqual([4, cfg.intermediate_size]);
    expect(a.tensors['model.layers.0.mlp.down_proj.lora_B.weight'].shape).toEqual([cfg.hidden_size, 4]);
    a.dispose();
  });

  it("A is PEFT's Kaiming-uniform (a = sqrt 5): U(-1/sqrt(in), 1/sqrt(in)); B is zero; same seed, same A", () => {
    const a = LoraAdapter.init(cfg, LoraConfig.parse({ r: 16 }), 2);
    const b = LoraAdapter.init(cfg, LoraConfig.parse({ r: 16 }), 2);
    const key = 'model.layers.1.mlp.down_proj.lora_A.weight';
    const A = a.tensors[key].dataSync() as Float32Array;
    const bound = 1 / Math.sqrt(cfg.intermediate_size);
    const max = A.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const variance = A.reduce((s, x) => s + x * x, 0) / A.length;
    console.log(`A: max |a| ${max} (bound ${bound}), var ${variance} (uniform: ${(bound * bound) / 3})`);
    expect(max).toBeLessThanOrEqual(bound);
    expect(max).toBeGreaterThan(0.95 * bound);
    expect(Math.abs(variance / ((bound * bound) / 3) - 1)).toBeLessThan(0.1);
    expect(Array.from(b.tensors[key].dataSync())).toEqual(Array.from(A));
    expect(a.tensors['model.layers.1.mlp.down_proj.lora_B.weight'].dataSync().every((x) => x === 0)).toBe(
      true,
    );
    a.dispose();
    b.dispose();
  });

  it('errors name the culprit: unknown target, vision target with vision off, bad rank', () => {
    expect(() => loraTargets(cfg, LoraConfig.parse({ targetModules: ['q_proj', 'qproj'] }))).toThrow(
      /\["qproj"\].*q_proj/,
    );
    expect(() => loraTargets(cfg, LoraConfig.parse({ targetModules: ['qkv'] }))).toThrow(
      /vision is off.*lora.vision/,
    );
    expect(() => LoraConfig.parse({ r: 0 })).toThrow(/r/);
    expect(() => LoraConfig.parse({ rank: 4 })).toThrow(/rank/);
  });

  it('rsLoRA scales by alpha / sqrt(r)', () => {
    expect(new LoraAdapter(LoraConfig.parse({ r: 16, alpha: 32 }), {}).scale).toBe(2);
    expect(new LoraAdapter(LoraConfig.parse({ r: 16, alpha: 32, rslora: true }), {}).scale).toBe(8);
  });
});

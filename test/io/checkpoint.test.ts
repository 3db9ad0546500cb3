// Checkpoint load/save over tfjs: fixture parity, round trips, sharding, strict-load errors, new-style names, tied head,
// HF-style init statistics, and leak checks.
import '@tensorflow/tfjs-backend-cpu';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeWeights, toLegacyName, type Weights } from '../../src/io/checkpoint.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { loadConfig, parseConfig, type Qwen2_5_VLConfig } from '../../src/model/config.js';
import { initKind, initWeights, paramShapes } from '../../src/model/params.js';
import { loadWeights, saveWeights } from '../../src/model/weights.js';
import { FIXTURE } from '../helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ovr-ck-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A micro config (V=16) so crafted checkpoints are tiny; special token ids set below vocab. */
function microConfig(tied = true): Qwen2_5_VLConfig {
  return parseConfig({
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    vocab_size: 16,
    tie_word_embeddings: tied,
    rope_scaling: { type: 'mrope', mrope_section: [2, 1, 1] },
    bos_token_id: 0,
    eos_token_id: 1,
    image_token_id: 2,
    video_token_id: 3,
    vision_start_token_id: 4,
    vision_end_token_id: 5,
    vision_config: {
      depth: 2,
      hidden_size: 8,
      num_heads: 2,
      intermediate_size: 12,
      out_hidden_size: 16,
      window_size: 56,
      fullatt_block_indexes: [1],
      tokens_per_second: 2,
    },
  });
}

/** Host tensors for every param of cfg with distinct deterministic values (i-th param, j-th value). */
function hostParams(cfg: Qwen2_5_VLConfig, rename = (n: string) => n): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  let k = 0;
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n).map((_, j) => ((k * 31 + j) % 97) / 64 - 0.75); // bf16-exact values
    out.set(rename(name), { dtype: 'float32', shape, data });
    k++;
  }
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    const r = await p;
    if (r && typeof r === 'object' && !Array.isArray(r)) disposeWeights(r as Weights);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

function splitFile(file: string): { header: unknown; data: Buffer } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')), data: buf.subarray(8 + n) };
}

async function expectSameParams(a: Weights, b: Weights): Promise<void> {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    expect(a[k].shape, k).toEqual(b[k].shape);
    const [x, y] = [await a[k].data(), await b[k].data()];
    expect(Buffer.compare(Buffer.from(x.buffer), Buffer.from(y.buffer)), k).toBe(0);
  }
}

describe('fixture checkpoint -> tf.Variables', () => {
  it('single file and sharded/ load identical params (bit-exact), shapes per config; round trips BF16/F32; no leaks', async () => {
    const cfg = await loadConfig(FIXTURE);
    const before = tf.memory().numTensors;
    const progress: string[] = [];
    const a = await loadWeights(FIXTURE, cfg, {
      onProgress: (p) => progress.push(`${p.index + 1}/${p.total}`),
    });
    const b = await loadWeights(path.join(FIXTURE, 'sharded'), cfg);
    expect(Object.keys(a)).toHaveLength(80);
    expect(progress.at(-1)).toBe('80/80');
    for (const [k, s] of paramShapes(cfg)) expect(a[k].shape, k).toEqual(s);
    expect(a['model.norm.weight']).toBeInstanceOf(tf.Variable);
    await expectSameParams(a, b);

    // load -> save(BF16) -> load is bit-exact (values are bf16-rounded already); the file equals HF layout.
    const bf = path.join(tmp, 'bf16');
    expect(await saveWeights(bf, a, cfg, { dtype: 'BF16' })).toEqual(['model.safetensors', 'config.json']);
    const c = await loadWeights(bf, cfg);
    await expectSameParams(a, c);
    // Same header entries and byte-identical data section as the fixture (key order inside the JSON may differ).
    const [mine, orig] = [path.join(bf, 'model.safetensors'), path.join(FIXTURE, 'model.safetensors')].map(
      splitFile,
    );
    expect(mine.header).toEqual(orig.header);
    expect(Buffer.compare(mine.data, orig.data)).toBe(0);
    const hub = JSON.parse(readFileSync(path.join(bf, 'config.json'), 'utf8'));
    expect(hub.torch_dtype).toBe('bfloat16');
    expect(parseConfig(hub)).toEqual(cfg);

    // F32 save round-trips, sharded save (19.4 MB embed alone above 4 MB) round-trips.
    const f32 = path.join(tmp, 'f32');
    await saveWeights(f32, a, cfg, { dtype: 'F32', maxShardBytes: 4_000_000 });
    const shards = readdirSync(f32).filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(1);
    expect(JSON.parse(readFileSync(path.join(f32, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    const index = JSON.parse(readFileSync(path.join(f32, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(9_903_008 * 4);
    const d = await loadWeights(f32, cfg);
    await expectSameParams(a, d);

    for (const p of [a, b, c, d]) disposeWeights(p);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('strict load', () => {
  const cfg = microConfig();
  const dirFor = async (name: string, tensors: Map<string, HostTensor>) => {
    const dir = path.join(tmp, name);
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    return dir;
  };

  it('names every missing, unexpected and mis-shaped key in one error', async () => {
    const t = hostParams(cfg);
    t.delete('visual.blocks.1.attn.qkv.bias');
    t.set('model.layers.0.self_attn.o_proj.bias', {
      dtype: 'float32',
      shape: [16],
      data: new Float32Array(16),
    });
    t.set('model.norm.weight', { dtype: 'float32', shape: [15], data: new Float32Array(15) });
    const before = tf.memory().numTensors;
    const msg = await errorOf(loadWeights(await dirFor('bad', t), cfg));
    expect(msg).toContain('checkpoint does not match the config');
    expect(msg).toContain('missing: visual.blocks.1.attn.qkv.bias [24]');
    expect(msg).toContain('unexpected: model.layers.0.self_attn.o_proj.bias [16]');
    expect(msg).toContain('mis-shaped: model.norm.weight expected [16] got [15]');
    expect(msg).not.toContain('missing: model.norm.weight');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('strict: false skips missing and unexpected keys but still rejects a wrong shape', async () => {
    const t = hostParams(cfg);
    t.delete('model.norm.weight');
    t.set('extra.weight', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
    const p = await loadWeights(await dirFor('loose', t), cfg, { strict: false });
    expect(Object.keys(p)).toHaveLength(paramShapes(cfg).size - 1);
    expect(p['model.norm.weight']).toBeUndefined();
    disposeWeights(p);
    t.set('model.norm.weight', { dtype: 'float32', shape: [2, 8], data: new Float32Array(16) });
    expect(await errorOf(loadWeights(await dirFor('loose2', t), cfg, { strict: false }))).toContain(
      'mis-shaped: model.norm.weight expected [16] got [2, 8]',
    );
  });

  it('accepts new-style names (model.language_model.*, model.visual.*) and renames them', async () => {
    expect(toLegacyName('model.language_model.layers.0.mlp.up_proj.weight')).toBe(
      'model.layers.0.mlp.up_proj.weight',
    );
    expect(toLegacyName('model.visual.blocks.0.attn.qkv.weight')).toBe('visual.blocks.0.attn.qkv.weight');
    expect(toLegacyName('lm_head.weight')).toBe('lm_head.weight');
    const rename = (n: string) =>
      n.startsWith('visual.')
        ? `model.${n}`
        : n.startsWith('model.')
          ? `model.language_model.${n.slice(6)}`
          : n;
    const legacy = await loadWeights(await dirFor('legacy', hostParams(cfg)), cfg);
    const renamed = await loadWeights(await dirFor('newstyle', hostParams(cfg, rename)), cfg);
    await expectSameParams(legacy, renamed);
    disposeWeights(legacy);
    disposeWeights(renamed);
    const both = hostParams(cfg);
    both.set('model.language_model.norm.weight', both.get('model.norm.weight')!);
    expect(await errorOf(loadWeights(await dirFor('both', both), cfg))).toContain(
      'duplicate: "model.language_model.norm.weight" and "model.norm.weight" are both model.norm.weight',
    );
  });

  it('tied: an lm_head equal to the embedding is dropped, a different one is an error', async () => {
    const t = hostParams(cfg);
    t.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
    const p = await loadWeights(await dirFor('tied-same', t), cfg);
    expect(p['lm_head.weight']).toBeUndefined();
    disposeWeights(p);
    t.set('lm_head.weight', { dtype: 'float32', shape: [16, 16], data: new Float32Array(256).fill(0.5) });
    expect(await errorOf(loadWeights(await dirFor('tied-diff', t), cfg))).toMatch(
      /tie_word_embeddings is true but lm_head\.weight differs from the embedding/,
    );
  });

  it('untied configs require lm_head.weight', async () => {
    const untied = microConfig(false);
    expect(await errorOf(loadWeights(await dirFor('untied', hostParams(cfg)), untied))).toContain(
      'missing: lm_head.weight [16, 16]',
    );
    const p = await loadWeights(await dirFor('untied-ok', hostParams(untied)), untied);
    expect(p['lm_head.weight'].shape).toEqual([16, 16]);
    disposeWeights(p);
  });

  it('integer tensors are rejected as parameters', async () => {
    const t = hostParams(cfg);
    t.set('model.norm.weight', { dtype: 'int32', shape: [16], data: new Int32Array(16) });
    expect(await errorOf(loadWeights(await dirFor('int', t), cfg))).toContain(
      'wrong dtype: model.norm.weight is I32',
    );
  });
});

describe('saveWeights', () => {
  it('refuses params that do not match the config, naming them', async () => {
    const cfg = microConfig();
    const p = initWeights(cfg, 1);
    const norm = p['model.norm.weight'];
    delete p['model.norm.weight'];
    const msg = await errorOf(saveWeights(path.join(tmp, 'nosave'), p, cfg));
    expect(msg).toContain('missing: model.norm.weight [16]');
    norm.dispose();
    disposeWeights(p);
  });

  it('accepts new-style keys and writes legacy names sorted', async () => {
    const cfg = microConfig();
    const p = initWeights(cfg, 2);
    const renamed: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(p)) renamed[k.startsWith('visual.') ? `model.${k}` : k] = v;
    const dir = path.join(tmp, 'newsave');
    await saveWeights(dir, renamed, cfg, { dtype: 'F32' });
    const back = await readSafetensors(dir);
    expect([...back.keys()]).toEqual([...paramShapes(cfg).keys()].sort());
    expect(back.get('visual.merger.ln_q.weight')!.data).toEqual(new Float32Array(8).fill(1));
    disposeWeights(p);
  });
});

describe('initWeights (HF _init_weights)', () => {
  it('N(0, 0.02) weights, zero biases, unit norms; deterministic per seed; seed 0 == default; no leaks', async () => {
    const cfg = await loadConfig(FIXTURE);
    const before = tf.memory().numTensors;
    const p = initWeights(cfg, 0);
    expect(Object.keys(p).sort()).toEqual([...paramShapes(cfg).keys()].sort());
    const emb = await p['model.embed_tokens.weight'].data();
    let s = 0;
    let s2 = 0;
    for (const x of emb) {
      s += x;
      s2 += x * x;
    }
    const mean = s / emb.length;
    const std = Math.sqrt(s2 / emb.length - mean * mean);
    console.log(
      `init embed: n=${emb.length} mean ${mean.toExponential(2)} std ${std.toFixed(6)} (want 0, 0.02)`,
    );
    expect(Math.abs(mean)).toBeLessThan(5e-5); // 6 sigma of the mean over 9.7M draws is 3.9e-5
    expect(Math.abs(std - 0.02)).toBeLessThan(5e-5);
    expect(Array.from(await p['visual.blocks.0.attn.qkv.bias'].data())).toEqual(new Array(96).fill(0));
    for (const k of [
      'model.norm.weight',
      'visual.blocks.3.norm2.weight',
      'visual.merger.ln_q.weight',
      'model.layers.1.input_layernorm.weight',
    ]) {
      expect(new Set(await p[k].data()), k).toEqual(new Set([1]));
    }
    expect(initKind('visual.patch_embed.proj.weight')).toBe('normal');
    expect(initKind('visual.merger.mlp.0.bias')).toBe('zeros');
    disposeWeights(p);
    // Determinism on the micro config (cheap): seed 0 == default, another seed differs, same seed repeats.
    const m = microConfig();
    const [m0, mDefault, m1] = [initWeights(m, 0), initWeights(m), initWeights(m, 1)];
    const w = 'model.layers.0.self_attn.q_proj.weight';
    expect(await mDefault[w].data()).toEqual(await m0[w].data());
    expect(await m1[w].data()).not.toEqual(await m0[w].data());
    for (const x of [m0, mDefault, m1]) disposeWeights(x);
    expect(tf.memory().numTensors).toBe(before);
  });
});

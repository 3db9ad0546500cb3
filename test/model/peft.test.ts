// PEFT interoperability (fixtures by the real peft 0.15.2 + transformers 4.50.0, test/fixtures/peft/make_fixture.py):
// ovr loads PEFT's adapters and matches HF's logits; HF loaded the adapter ovr writes and matched ovr's logits
// (hf_check.json, written by the Python side; this test checks that the committed adapter is what ovr writes today);
// save/load round trip, both key layouts (transformers < 4.52 and >= 4.52); `ovr-train merge` gives base + adapter.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMerge } from '../../src/cli/merge.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { attachAdapter, detachAdapter, LoraAdapter } from '../../src/model/lora.js';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  loadAdapter,
  parsePeftKey,
  restoreAdapter,
  saveAdapter,
} from '../../src/model/peft.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { logitsAtColumns, OURS_DIR, oursAdapter, PEFT_DIR } from '../fixtures/peft/ours.js';
import { expectClose, FIXTURE } from '../helpers.js';
import { setupBackend } from '../model/fixture.js';

let model: Qwen2_5_VL;
let base: Map<string, { data: Float32Array; shape: number[] }>;
let tmp: string;
beforeAll(async () => {
  await setupBackend();
  model = await Qwen2_5_VL.load(FIXTURE);
  base = await logitsAtColumns(model);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-peft-'));
});
afterAll(async () => {
  model.dispose();
  await rm(tmp, { recursive: true, force: true });
});

describe("PEFT's adapters in ovr", () => {
  for (const name of ['lm_default', 'vision_rslora']) {
    it(`${name}: ovr loads PEFT's adapter and matches HF's logits`, async () => {
      const dir = path.join(PEFT_DIR, name);
      const hf = await readSafetensors(path.join(dir, 'hf_logits.safetensors'));
      const lora = await loadAdapter(dir, model.config);
      const before = tf.memory().numTensors;
      attachAdapter(model.params, lora);
      try {
        const ours = await logitsAtColumns(model);
        for (const [k, v] of ours) {
          const ref = hf.get(k)!;
          expect(v.shape).toEqual(ref.shape);
          const moved = v.data.reduce((m, x, i) => Math.max(m, Math.abs(x - base.get(k)!.data[i])), 0);
          console.log(`${name} ${k}: the adapter moves the logits by ${moved.toExponential(3)}`);
          expect(moved).toBeGreaterThan(0.05);
          expectClose(v.data, ref.data as Float32Array, 2e-5, `${name} ${k} ovr vs HF+PEFT`);
        }
      } finally {
        detachAdapter(model.params);
        lora.dispose();
      }
      expect(tf.memory().numTensors).toBe(before - Object.keys(lora.tensors).length);
    });
  }
});

describe('ovr adapters in PEFT', () => {
  it('HF + PEFT loaded the adapter ovr writes and matched its logits (hf_check.json); ours/ is what ovr writes now', async () => {
    const check = JSON.parse(await readFile(path.join(OURS_DIR, 'hf_check.json'), 'utf8'));
    console.log(
      `HF check of ovr's adapter (peft ${check.peft}, transformers ${check.transformers}): max |HF - ovr| ${check.max_abs_diff}`,
    );
    expect(check.max_abs_diff).toBeLessThanOrEqual(2e-5);
    expect(
      Math.min(...Object.values(check.adapter_effect_max_abs as Record<string, number>)),
    ).toBeGreaterThan(0.05);
    const lora = oursAdapter(model.config);
    expect(check.lora_tensors_loaded).toBe(Object.keys(lora.tensors).length);
    const dir = path.join(tmp, 'ours');
    await saveAdapter(dir, lora, { baseModel: 'qwen2_5_vl_tiny' });
    for (const f of [ADAPTER_WEIGHTS, ADAPTER_CONFIG]) {
      const [now, committed] = await Promise.all([
        readFile(path.join(dir, f)),
        readFile(path.join(OURS_DIR, f)),
      ]);
      expect(
        Buffer.compare(now, committed),
        `${f} differs from the committed one: rerun make_ours.ts + check`,
      ).toBe(0);
    }
    attachAdapter(model.params, lora);
    const ours = await logitsAtColumns(model);
    detachAdapter(model.params);
    lora.dispose();
    const committed = await readSafetensors(path.join(OURS_DIR, 'ovr_logits.safetensors'));
    // bit-exact on cpu, where ours/ was generated; other backends (OVR_BACKEND) round differently
    const tol = tf.getBackend() === 'cpu' ? 0 : 1e-5;
    for (const [k, v] of ours)
      expectClose(v.data, committed.get(k)!.data as Float32Array, tol, `ovr logits ${k} vs committed`);
  });

  it("writes PEFT's keys and config; round trip is exact; the transformers >= 4.52 layout reads the same", async () => {
    const lora = oursAdapter(model.config);
    const dir = path.join(tmp, 'rt');
    await saveAdapter(dir, lora, { baseModel: 'Qwen/Qwen2.5-VL-3B-Instruct' });
    const cfg = JSON.parse(await readFile(path.join(dir, ADAPTER_CONFIG), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      r: 6,
      lora_alpha: 12,
      bias: 'none',
      task_type: 'CAUSAL_LM',
      use_rslora: false,
    });
    expect(cfg.base_model_name_or_path).toBe('Qwen/Qwen2.5-VL-3B-Instruct');
    const host = await readSafetensors(path.join(dir, ADAPTER_WEIGHTS));
    expect(host.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([
      6, 64,
    ]);
    expect(host.get('base_model.model.visual.blocks.1.attn.qkv.lora_B.weight')?.shape).toEqual([96, 6]);
    const re = new RegExp(`^(?:${cfg.target_modules})$`);
    for (const k of host.keys()) {
      const m = parsePeftKey(k)!.module;
      expect(re.test(m), m).toBe(true);
      expect(
        re.test(m.replace(/^model\./, 'model.language_model.').replace(/^visual\./, 'model.visual.')),
        m,
      ).toBe(true);
    }
    expect(re.test('visual.patch_embed.proj')).toBe(false);
    const back = await loadAdapter(dir, model.config);
    // >= 4.52 layout: model.language_model.* / model.visual.*
    const newDir = path.join(tmp, 'new');
    const renamed = new Map(
      [...host].map(([k, t]) => [
        k
          .replace('base_model.model.model.', 'base_model.model.model.language_model.')
          .replace('base_model.model.visual.', 'base_model.model.model.visual.'),
        t,
      ]),
    );
    await writeSafetensors(path.join(newDir, ADAPTER_WEIGHTS), renamed);
    await writeFile(path.join(newDir, ADAPTER_CONFIG), JSON.stringify(cfg));
    const fromNew = await loadAdapter(newDir, model.config);
    for (const [k, t] of Object.entries(lora.tensors)) {
      expect(Array.from(back.tensors[k].dataSync())).toEqual(Array.from(t.dataSync()));
      expect(Array.from(fromNew.tensors[k].dataSync())).toEqual(Array.from(t.dataSync()));
    }
    expect(back.config).toMatchObject({ r: 6, alpha: 12, rslora: false, vision: true });
    tf.dispose([lora, back, fromNew].flatMap((a) => Object.values(a.tensors)));
  });

  it('restoreAdapter assigns into the same Variables (resume); another rank is refused', async () => {
    const dir = path.join(tmp, 'restore');
    const saved = oursAdapter(model.config);
    await saveAdapter(dir, saved);
    const target = LoraAdapter.init(model.config, saved.config, 9);
    const ids = Object.values(target.tensors).map((t) => t.id);
    await restoreAdapter(target, dir, model.config);
    expect(Object.values(target.tensors).map((t) => t.id)).toEqual(ids);
    for (const [k, t] of Object.entries(saved.tensors))
      expect(Array.from(target.tensors[k].dataSync())).toEqual(Array.from(t.dataSync()));
    const other = LoraAdapter.init(model.config, { ...saved.config, r: 2 }, 0);
    await expect(restoreAdapter(other, dir, model.config)).rejects.toThrow(/same lora settings/);
    tf.dispose([saved, target, other].flatMap((a) => Object.values(a.tensors)));
  });

  it('refuses what it cannot compute, naming the field; shape mismatches name the key', async () => {
    const dir = path.join(tmp, 'bad');
    await saveAdapter(dir, oursAdapter(model.config));
    const cfg = JSON.parse(await readFile(path.join(dir, ADAPTER_CONFIG), 'utf8'));
    await writeFile(path.join(dir, ADAPTER_CONFIG), JSON.stringify({ ...cfg, use_dora: true, bias: 'all' }));
    await expect(loadAdapter(dir, model.config)).rejects.toThrow(/bias "all".*use_dora/);
    await writeFile(path.join(dir, ADAPTER_CONFIG), JSON.stringify({ ...cfg, r: 5 }));
    await expect(loadAdapter(dir, model.config)).rejects.toThrow(
      /mis-shaped: base_model\.model\..*want \[5,/,
    );
    await expect(loadAdapter(path.join(tmp, 'nope'), model.config)).rejects.toThrow(
      /adapter_config\.json not found/,
    );
  });
});

describe('ovr-train merge', () => {
  it('the merged checkpoint (f32) gives the logits of base + adapter (<= 1e-5)', async () => {
    const withAdapter = await (async () => {
      const lora = await loadAdapter(path.join(PEFT_DIR, 'vision_rslora'), model.config);
      attachAdapter(model.params, lora);
      const out = await logitsAtColumns(model);
      detachAdapter(model.params);
      lora.dispose();
      return out;
    })();
    const out = path.join(tmp, 'merged');
    const files = await runMerge({
      model: FIXTURE,
      adapter: path.join(PEFT_DIR, 'vision_rslora'),
      out,
      dtype: 'f32',
      maxShardGb: 5,
      backend: 'cpu',
    });
    expect(files).toContain('config.json');
    expect(files).toContain('preprocessor_config.json');
    const merged = await Qwen2_5_VL.load(out);
    const got = await logitsAtColumns(merged);
    merged.dispose();
    for (const [k, v] of got)
      expectClose(v.data, withAdapter.get(k)!.data, 1e-5, `merged vs base + adapter ${k}`);
    await expect(
      runMerge({
        model: FIXTURE,
        adapter: out,
        out: path.join(tmp, 'x'),
        dtype: 'f32',
        maxShardGb: 5,
        backend: 'cpu',
      }),
    ).rejects.toThrow(/adapter_config\.json not found/);
  });
});

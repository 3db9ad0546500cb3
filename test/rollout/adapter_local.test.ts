// The owned LocalEngine's adapter syncs (the loader `ovr-train serve` runs, model/peft.ts swapAdapter) in process:
// each load replaces the previous adapter and gives exactly the rows of a model with that adapter attached; a broken
// folder throws naming it and leaves the served adapter as it was; no tensor leaks across swaps. Plus the refusals
// around adapter sync: GrpoConfig (adapter sync without LoRA, full sync of a LoRA run) and `serve --adapter` of a
// folder that is not an adapter.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { serveCommand } from '../../src/cli/serve.js';
import { QWEN_EOS_IDS } from '../../src/model/generate.js';
import { loadModel } from '../../src/model/load.js';
import { adapterOf, attachAdapter, detachAdapter, type LoraAdapter } from '../../src/model/lora.js';
import { ADAPTER_CONFIG, saveAdapter } from '../../src/model/peft.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { LocalEngine } from '../../src/rollout/local.js';
import type { RolloutResult, RolloutSampling } from '../../src/rollout/types.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import { randomAdapter } from './helpers.js';

let dir: string;
let served: Qwen2_5_VL;
let ref: Qwen2_5_VL;
const adapters: LoraAdapter[] = [];
const reqs = [{ promptIds: [151644, 872, 198, 3838, 374, 220, 17, 10] }, { promptIds: [151644, 77, 1079] }];
const s: RolloutSampling = {
  n: 2,
  maxNewTokens: 4,
  temperature: 1,
  seed: 3,
  eosIds: QWEN_EOS_IDS,
  allowedVocab: 151665,
};

beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ovr-adapter-local-'));
  served = await loadModel('tiny', { seed: 0 });
  ref = await loadModel('tiny', { seed: 0 });
  for (const seed of [1, 2]) {
    const a = randomAdapter(ref, seed);
    adapters.push(a);
    await saveAdapter(path.join(dir, `lora${seed}`), a);
  }
});

afterAll(async () => {
  for (const a of adapters) a.dispose();
  detachAdapter(served.params)?.dispose();
  served?.dispose();
  ref?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const refRows = async (a: LoraAdapter | null): Promise<RolloutResult> => {
  const engine = new LocalEngine({ model: ref, padId: 151643 });
  if (!a) return engine.generate(reqs, s);
  attachAdapter(ref.params, a);
  try {
    return await engine.generate(reqs, s);
  } finally {
    detachAdapter(ref.params);
  }
};

const maxDiff = (got: RolloutResult, want: RolloutResult): number => {
  expect(got.samples.map((x) => x.tokens)).toEqual(want.samples.map((x) => x.tokens));
  return Math.max(
    ...got.samples.flatMap((x, r) => x.logprobs.map((l, t) => Math.abs(l - want.samples[r].logprobs[t]))),
  );
};

describe('LocalEngine (owned) adapter syncs', () => {
  it('each load replaces the adapter exactly; a broken folder changes nothing; no tensor leak', async () => {
    const engine = new LocalEngine({ model: served, padId: 151643, weights: 'owned' });
    const before = tf.memory().numTensors;
    const perAdapter = Object.keys(adapters[0].tensors).length;
    const seq: [number, number][] = [];
    for (const [i, k] of [0, 1, 0].entries()) {
      await engine.syncWeights({ dir: path.join(dir, `lora${k + 1}`), kind: 'adapter', version: i + 1 });
      expect(engine.servedVersion).toBe(i + 1);
      expect(tf.memory().numTensors - before).toBe(perAdapter);
      const d = maxDiff(await engine.generate(reqs, s), await refRows(adapters[k]));
      seq.push([k + 1, d]);
      expect(d).toBe(0);
    }
    console.log(
      `adapter loads ${seq.map(([k, d]) => `lora${k}: max |diff| ${d}`).join(', ')}; +${perAdapter} tensors while one is attached`,
    );
    const current = adapterOf(served.params);
    const bad = path.join(dir, 'bad');
    await mkdir(bad);
    await writeFile(
      path.join(bad, ADAPTER_CONFIG),
      JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8 }),
    );
    await expect(engine.syncWeights({ dir: bad, kind: 'adapter', version: 9 })).rejects.toThrow(
      new RegExp(`${bad}/adapter_model\\.safetensors`),
    );
    expect(engine.servedVersion).toBe(3);
    expect(adapterOf(served.params)).toBe(current);
    expect(tf.memory().numTensors - before).toBe(perAdapter);
    expect(maxDiff(await engine.generate(reqs, s), await refRows(adapters[0]))).toBe(0);
    detachAdapter(served.params)?.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('adapter sync refusals', () => {
  const base = { model: 'tiny', data: { train: 'prompts.jsonl' } };
  const issues = (input: unknown) => {
    const r = GrpoConfig.safeParse(input);
    expect(r.success).toBe(false);
    return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
  };

  it('GrpoConfig: adapter sync needs a LoRA run; a LoRA run on a remote engine must sync its adapter', () => {
    const url = 'http://127.0.0.1:30000';
    expect(issues({ ...base, rollout: { engine: 'sglang', url, weights: 'adapter' } })).toContain(
      "rollout.weights: rollout.weights 'adapter' syncs the LoRA adapter, but this run trains the full weights: add --lora.r 16",
    );
    expect(issues({ ...base, rollout: { engine: 'vllm', url, weights: 'adapter' } })).toContain(
      "rollout.engine 'sglang'",
    );
    expect(issues({ ...base, lora: {}, rollout: { engine: 'sglang', url } })).toContain(
      'this run trains a LoRA adapter, so the engine must load it: set --rollout.weights adapter',
    );
    const ok = GrpoConfig.parse({
      ...base,
      lora: { r: 4 },
      rollout: { engine: 'vllm', url, weights: 'adapter' },
    });
    expect(ok.rollout.weights).toBe('adapter');
    expect(
      GrpoConfig.parse({
        ...base,
        adapter: 'runs/a/adapter',
        rollout: { engine: 'sglang', url, weights: 'adapter' },
      }).adapter,
    ).toBe('runs/a/adapter');
  });

  it('serve --adapter of a folder that is no adapter exits 2 naming it', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const n = tf.memory().numTensors;
    try {
      const code = await serveCommand([
        '--model',
        'tiny',
        '--adapter',
        dir,
        '--backend',
        'cpu',
        '--port',
        '0',
      ]);
      expect(code).toBe(2);
      const said = err.mock.calls.map((c) => String(c[0])).join('\n');
      expect(said).toContain(`ovr-train serve: --adapter: ${path.join(dir, ADAPTER_CONFIG)} not found`);
      expect(tf.memory().numTensors).toBe(n);
    } finally {
      err.mockRestore();
    }
  });
});

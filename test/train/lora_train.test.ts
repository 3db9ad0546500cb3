// LoRA through the trainers on the tiny model (wasm): 20 SFT steps change every adapter tensor and no base weight
// (bitwise), checkpoints hold the PEFT adapter + AdamW moments and no base, numTensors stays flat, a resume from step
// 10 reproduces steps 11-20 exactly (dropout on: the masks are replayed); `ovr-train sft --lora.r` and
// `ovr-train grpo --lora.r` run from the CLI; the toy GRPO reward still rises with LoRA, the KL reference being the
// policy with its adapter off (no second model).
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { main } from '../../src/cli/index.js';
import { loadModel } from '../../src/model/load.js';
import { LoraAdapter, LoraConfig } from '../../src/model/lora.js';
import { loadAdapter } from '../../src/model/peft.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { SftConfig } from '../../src/train/config.js';
import { trainGrpo } from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import type { RewardFunction } from '../../src/train/rollout.js';
import { trainSft } from '../../src/train/sft.js';
import { readStepLog } from '../../src/util/log.js';
import { capture } from '../cli/run.js';
import { ROOT } from '../helpers.js';

const BACKEND = (process.env.OVR_TEST_BACKEND ?? 'wasm') as 'wasm' | 'cpu';
const TMP = path.join(ROOT, 'runs', 'test-artifacts', `lora-${process.pid}`);
let train: string;
let prompts: string;

beforeAll(async () => {
  await initBackend({ backend: BACKEND, log: () => {} });
  await rm(TMP, { recursive: true, force: true });
  await mkdir(TMP, { recursive: true });
  train = path.join(TMP, 'train.jsonl');
  const rows = ['1+1', '2+3', '4+4', '3+6'].map((q, i) => ({
    question: `What is ${q}?`,
    solution: `${q}=${[2, 5, 8, 9][i]}`,
  }));
  await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  prompts = path.join(TMP, 'prompts.jsonl');
  const ps = ['Answer with #.', 'Reply with the symbol #.', 'Say #.', 'Output #.'].map((q) => ({
    question: q,
    answer: '#',
  }));
  await writeFile(prompts, `${ps.map((r) => JSON.stringify(r)).join('\n')}\n`);
}, 60_000);
afterAll(async () => {
  await rm(TMP, { recursive: true, force: true });
});

const LORA = { r: 4, alpha: 8, dropout: 0.1 };
const sftCfg = (outDir: string, over: Record<string, unknown> = {}) =>
  SftConfig.parse({
    model: 'tiny',
    outDir,
    backend: BACKEND,
    steps: 20,
    saveEvery: 10,
    batchSize: 2,
    lr: 1e-2,
    lora: LORA,
    data: { train, promptTemplate: 'plain' },
    ...over,
  });

const snap = async (ts: Record<string, tf.Tensor>) =>
  Object.fromEntries(
    await Promise.all(Object.entries(ts).map(async ([k, t]) => [k, Array.from(await t.data())] as const)),
  );

describe('LoRA SFT', () => {
  let model: Qwen2_5_VL;
  beforeAll(async () => {
    model = await loadModel('tiny', { seed: 0 });
  });
  afterAll(() => model.dispose());

  it('20 steps: every adapter tensor changes, no base weight does; the checkpoint is the adapter; no tensor growth', async () => {
    const outDir = path.join(TMP, 'sft');
    const base = await snap(model.params);
    const start = tf.memory().numTensors;
    const res = await trainSft(sftCfg(outDir), { model, progress: null, info: () => {} });
    expect(tf.memory().numTensors).toBe(start);
    const after = await snap(model.params);
    for (const k of Object.keys(base)) expect(after[k], k).toEqual(base[k]);
    const files = await readdir(res.checkpoint);
    console.log(`LoRA checkpoint: ${files.join(', ')}`);
    expect(files).toEqual(
      expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors']),
    );
    expect(files.some((f) => f.startsWith('model'))).toBe(false);
    const trained = await loadAdapter(res.checkpoint, model.config);
    const init = LoraAdapter.init(model.config, LoraConfig.parse(LORA), 0);
    const unchanged = Object.keys(init.tensors).filter((k) => {
      const [a, b] = [init.tensors[k].dataSync(), trained.tensors[k].dataSync()];
      return a.every((x, i) => x === b[i]);
    });
    console.log(
      `adapter tensors: ${Object.keys(init.tensors).length}, unchanged after 20 steps: ${unchanged.length}`,
    );
    expect(unchanged).toEqual([]);
    init.dispose();
    trained.dispose();
    const log = readStepLog(path.join(outDir, 'log.jsonl'));
    expect(log.length).toBe(20);
    expect(new Set(log.map((r) => r.numTensors)).size).toBe(1);
    expect(log[19].loss as number).toBeLessThan(log[0].loss as number);
  }, 600_000);

  it('resume from checkpoint 10 reproduces steps 11-20 exactly (adapter, moments, losses)', async () => {
    const first = path.join(TMP, 'sft');
    const outDir = path.join(TMP, 'sft-resumed');
    await cp(first, outDir, { recursive: true });
    await rm(path.join(outDir, 'checkpoint-00000020'), { recursive: true });
    const res = await trainSft(sftCfg(outDir, { resume: 'latest' }), {
      model,
      progress: null,
      info: () => {},
    });
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors']) {
      const [a, b] = await Promise.all([
        readFile(path.join(first, 'checkpoint-00000020', f)),
        readFile(path.join(res.checkpoint, f)),
      ]);
      expect(Buffer.compare(a, b), f).toBe(0);
    }
    const l1 = readStepLog(path.join(first, 'log.jsonl'))
      .slice(10)
      .map((r) => r.loss);
    const l2 = readStepLog(path.join(outDir, 'log.jsonl'))
      .slice(10)
      .map((r) => r.loss);
    expect(l2).toEqual(l1);
  }, 600_000);

  it('CLI: ovr-train sft --lora.r writes an adapter checkpoint; generate --adapter uses it', async () => {
    const outDir = path.join(TMP, 'cli-sft');
    const { code } = await capture(() =>
      main([
        'sft',
        '--model',
        'tiny',
        '--out-dir',
        outDir,
        '--backend',
        BACKEND,
        '--steps',
        '2',
        '--batch-size',
        '1',
        '--data.train',
        train,
        '--data.prompt-template',
        'plain',
        '--lora.r',
        '8',
        '--lora.alpha',
        '16',
      ]),
    );
    expect(code).toBe(0);
    const ck = path.join(outDir, 'checkpoint-00000002');
    const cfg = JSON.parse(await readFile(path.join(ck, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16 });
    const gen = await capture(() =>
      main([
        'generate',
        '--model',
        'tiny',
        '--adapter',
        ck,
        '--prompt',
        'Hi',
        '--greedy',
        '--max-new-tokens',
        '2',
        '--backend',
        BACKEND,
        '--json',
      ]),
    );
    expect(gen.code).toBe(0);
    expect(JSON.parse(gen.out).tokens[0].length).toBeGreaterThan(0);
  }, 600_000);
});

describe('LoRA GRPO', () => {
  it('toy reward rises with LoRA; the KL reference is the adapter-off policy (refKl 0 before the first update)', async () => {
    const outDir = path.join(TMP, 'grpo');
    const X = 2;
    const firstTokenIsX: RewardFunction = (_c, { completionIds }) =>
      completionIds.map((ids) => (ids[0] === X ? 1 : 0));
    const cfg = GrpoConfig.parse({
      model: 'tiny',
      outDir,
      backend: BACKEND,
      seed: 0,
      steps: 30,
      lr: 5e-3,
      minLrRatio: 1,
      batchSize: 16,
      promptsPerStep: 2,
      numGenerations: 8,
      maxResponseLen: 1,
      klCoef: 0.001,
      lora: { r: 8, alpha: 16 },
      data: { train: prompts, promptTemplate: 'qwen' },
      reward: { format: 'boxed', workers: 0 },
    });
    const start = tf.memory().numTensors;
    const res = await trainGrpo(cfg, {
      rewardFn: firstTokenIsX,
      sampling: { allowedVocab: 8 },
      progress: null,
    });
    expect(tf.memory().numTensors).toBe(start);
    const log = readStepLog(res.logFile);
    const r = log.map((x) => x.rewardMean as number);
    const first = r.slice(0, 10).reduce((a, b) => a + b, 0) / 10;
    const last = r.slice(-10).reduce((a, b) => a + b, 0) / 10;
    console.log(
      `LoRA toy GRPO: reward first 10 ${first.toFixed(3)}, last 10 ${last.toFixed(3)}; refKl step 1 ${log[0].refKl}, step 30 ${log[29].refKl}`,
    );
    // Chance is 1/8. NOTE: the tiny model's frozen final norm (weight 1) and frozen tied embedding (N(0, 0.02) rows)
    // cap what an adapter can do to the 8 allowed logits: |h| = sqrt(D) = 8 after the norm, so p('#') tops out near
    // e^1.3 / (e^1.3 + 7) ~ 0.3 (full fine-tuning moves the embedding rows and reaches 0.8). Measured: 0.31.
    expect(last).toBeGreaterThanOrEqual(2 / 8);
    expect(r[0]).toBeLessThan(last);
    expect(log[0].refKl).toBe(0);
    expect(log[29].refKl as number).toBeGreaterThan(0);
    expect(await readdir(res.lastCheckpoint as string)).toContain('adapter_model.safetensors');
  }, 900_000);

  it('CLI: ovr-train grpo --lora.r runs a step and saves the adapter', async () => {
    const outDir = path.join(TMP, 'cli-grpo');
    const { code } = await capture(() =>
      main([
        'grpo',
        '--model',
        'tiny',
        '--out-dir',
        outDir,
        '--backend',
        BACKEND,
        '--steps',
        '1',
        '--prompts-per-step',
        '2',
        '--num-generations',
        '2',
        '--batch-size',
        '2',
        '--max-response-len',
        '2',
        '--data.train',
        prompts,
        '--reward.workers',
        '0',
        '--lora.r',
        '4',
      ]),
    );
    expect(code).toBe(0);
    expect(await readdir(path.join(outDir, 'checkpoint-00000001'))).toContain('adapter_config.json');
  }, 600_000);
});

// Seeded toy RL run on the random tiny Qwen2.5-VL (models/tiny, CPU via the wasm backend): "answer with the single token '#'".
// Sampling is restricted to ids 0..7 ('!' .. '(') and one new token, so the start is ~12.5% reward; the
// reward is 1 when the completion's first token is '#' (id 2). The mean reward must rise clearly within 30 steps.
// The run directory (log.jsonl, rollouts.jsonl, checkpoint) is kept under runs/test-artifacts/ as the artifact.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { trainGrpo } from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import type { RewardFunction } from '../../src/train/rollout.js';
import { readStepLog } from '../../src/util/log.js';
import { testBackendName } from '../backend/select.js';
import { ROOT } from '../helpers.js';

const X = 2; // '#'
// wasm (XNNPACK, on the CPU) by default: the pure-JS cpu backend is ~10x slower on the 151936-row tied embedding.
const BACKEND = testBackendName('wasm');
const firstTokenIsX: RewardFunction = (_c, { completionIds }) =>
  completionIds.map((ids) => (ids[0] === X ? 1 : 0));

describe('GRPO toy run (tiny model, CPU via wasm)', () => {
  it('mean reward of the last 10 steps exceeds the first 10 by >= 0.3', async () => {
    // pid in the name: a concurrent run of the suite (another worker or checkout user) must not share the run dir.
    const outDir = path.join(ROOT, 'runs', 'test-artifacts', `grpo-toy-${process.pid}`);
    await rm(outDir, { recursive: true, force: true });
    await mkdir(outDir, { recursive: true });
    const train = path.join(path.dirname(outDir), `grpo-toy-${process.pid}-prompts.jsonl`); // outside the run folder (a fresh run refuses a non-empty one)
    const rows = ['Answer with #.', 'Reply with the symbol #.', 'Say #.', 'Output #.'].map((q) => ({
      question: q,
      answer: '#',
    }));
    await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const cfg = GrpoConfig.parse({
      model: 'tiny',
      outDir,
      backend: BACKEND,
      seed: 0,
      steps: 30,
      lr: 1e-3,
      minLrRatio: 1,
      batchSize: 16,
      promptsPerStep: 2,
      numGenerations: 8,
      maxResponseLen: 1,
      data: { train, promptTemplate: 'qwen' },
      reward: { format: 'boxed', workers: 0 },
    });
    await initBackend({ backend: BACKEND, log: () => {} }); // trainGrpo's own call is then a no-op
    const tensorsBefore = tf.memory().numTensors;
    const t0 = performance.now();
    const res = await trainGrpo(cfg, {
      rewardFn: firstTokenIsX,
      sampling: { allowedVocab: 8 },
      progress: null,
    });
    const r = readStepLog(res.logFile).map((x) => x.rewardMean as number);
    const first = r.slice(0, 10).reduce((a, b) => a + b, 0) / 10;
    const last = r.slice(-10).reduce((a, b) => a + b, 0) / 10;
    console.log(
      `toy GRPO: ${r.length} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; reward first 10 ${first.toFixed(3)}, last 10 ${last.toFixed(3)}`,
    );
    console.log(`toy GRPO artifact: ${outDir} (log.jsonl, rollouts.jsonl)`);
    // the JSONL files are the artifact; the final checkpoint (weights + moments, ~120 MB) is not worth keeping
    await rm(res.lastCheckpoint as string, { recursive: true, force: true });
    expect(r.length).toBe(30);
    expect(last).toBeGreaterThanOrEqual(first + 0.3);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // the run frees its model, optimizer and step tensors
  }, 240_000);
});

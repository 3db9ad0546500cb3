// GRPO resume through the shared Trainer: checkpoints hold the real sampling-rng state and the guard counters; a
// resume that changes a run setting (temperature) is refused naming the setting, its old and new value and the
// override; `allowConfigChange` continues on purpose; after two resumes log.jsonl and rollouts.jsonl have each step
// once. Rewards vary (completion length parity), so advantages are non-zero. Tiny model, wasm (OVR_TEST_BACKEND).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/load.js';
import { trainGrpo } from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import type { RewardFunction } from '../../src/train/rollout.js';
import { checkpointName } from '../../src/train/state.js';
import { readStepLog } from '../../src/util/log.js';
import { Rng } from '../../src/util/rng.js';
import { ROOT } from '../helpers.js';

const BACKEND = (process.env.OVR_TEST_BACKEND ?? 'wasm') as 'wasm' | 'cpu' | 'webgpu';
const TMP = path.join(ROOT, 'runs', 'test-artifacts', `grpo-resume-${process.pid}`);
const reward: RewardFunction = (c) => c.map((s) => (s.length % 2 ? 1 : 0));
let train: string;

beforeAll(async () => {
  await initBackend({ backend: BACKEND, log: () => {} });
  await rm(TMP, { recursive: true, force: true });
  train = path.join(TMP, 'prompts.jsonl');
  const rows = Array.from({ length: 6 }, (_, i) => ({
    id: `p${i}`,
    question: `What is ${i}+1?`,
    answer: i + 1,
  }));
  await mkdir(TMP, { recursive: true });
  await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}, 60_000);
afterAll(async () => {
  await rm(TMP, { recursive: true, force: true });
});

const cfg = (outDir: string, over: Record<string, unknown>) =>
  GrpoConfig.parse({
    model: 'tiny',
    backend: BACKEND,
    outDir,
    seed: 4,
    lr: 1e-3,
    batchSize: 4,
    promptsPerStep: 2,
    numGenerations: 2,
    maxResponseLen: 3,
    minLrRatio: 1,
    data: { train, promptTemplate: 'qwen' },
    reward: { format: 'boxed', workers: 0 },
    ...over,
  });

/** One trainGrpo call on a fresh tiny model (seed 3); returns its records. */
async function run(outDir: string, over: Record<string, unknown>) {
  const m = await loadModel('tiny', { seed: 3 });
  try {
    return (await trainGrpo(cfg(outDir, over), { model: m, rewardFn: reward, progress: null })).records;
  } finally {
    m.dispose();
  }
}

describe('GRPO resume on the shared Trainer', () => {
  it('checkpoints hold rng + guard state; a changed setting is refused; two resumes log each step once', async () => {
    const dir = path.join(TMP, 'run');
    const first = await run(dir, { steps: 3, saveEvery: 2 }); // checkpoints 2 and 3; logs 1..3
    expect(first.map((r) => r.step)).toEqual([1, 2, 3]);
    const state = JSON.parse(await readFile(path.join(dir, checkpointName(2), 'train_state.json'), 'utf8'));
    expect(state.rng).toEqual({ sampling: new Rng(4).split('sampling').getState() });
    expect(state.rng.sampling).not.toEqual(new Rng(5).split('sampling').getState());
    expect(state.extra).toMatchObject({ nonFiniteTotal: 0, nonFiniteConsecutive: 0 });
    expect(first.some((r) => r.rewardStd > 0)).toBe(true);

    // a changed run setting: refused before anything is trained or logged
    const ck2 = path.join(dir, checkpointName(2));
    await expect(run(dir, { steps: 4, resume: ck2, temperature: 0.7 })).rejects.toThrow(
      /temperature was 1, now 0\.7.*--allow-config-change/,
    );
    await expect(run(dir, { steps: 4, resume: ck2, seed: 5 })).rejects.toThrow(/seed was 4, now 5/);
    expect(readStepLog(path.join(dir, 'log.jsonl')).map((r) => r.step)).toEqual([1, 2, 3]);

    // resume 1: from checkpoint 2 (steps 3, 4 run again after the old step 3 line is dropped)
    const again = await run(dir, { steps: 4, resume: ck2 });
    expect(again.map((r) => r.step)).toEqual([3, 4]);
    expect(again[0].rewardMean).toBe(first[2].rewardMean);
    expect(again[0].loss).toBe(first[2].loss);
    // resume 2: from the latest (4), with a changed temperature allowed on purpose
    const third = await run(dir, { steps: 5, resume: 'latest', temperature: 0.7, allowConfigChange: true });
    expect(third.map((r) => r.step)).toEqual([5]);
    const steps = readStepLog(path.join(dir, 'log.jsonl')).map((r) => r.step);
    const rolls = readStepLog(path.join(dir, 'rollouts.jsonl')).map((r) => r.step);
    console.log('log steps', steps.join(','), '| rollout steps', [...new Set(rolls)].join(','));
    expect(steps).toEqual([1, 2, 3, 4, 5]);
    // 2 prompts x 2 generations per step, each step once
    expect(rolls).toEqual([1, 2, 3, 4, 5].flatMap((s) => [s, s, s, s]));
  }, 300_000);
});

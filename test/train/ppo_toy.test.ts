// PPO with a learned critic (advantage 'gae') on the random tiny Qwen2.5-VL (models/tiny, CPU via wasm). Toy task as
// the GRPO toy run: sampling restricted to ids 0..7 and 2 new tokens, reward 1 iff the first token is '#' (id 2), so
// the start is ~12.5%. Asserted: the mean reward rises, the critic's explained variance rises (its value at the second
// token can see the first one), the step log has the PPO fields, the ratio is exactly 1 (mu = 1, one minibatch), and
// a run resumed from a checkpoint (policy + critic) reproduces the uninterrupted run's next step (the critic's
// value loss and explained variance included). A LoRA run (policy adapter + a critic adapter on the shared base): the
// critic's explained variance rises and its value loss falls, the reward holds at what an adapter can reach here.
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/load.js';
import { trainGrpo } from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import type { RewardFunction } from '../../src/train/rollout.js';
import { readStepLog } from '../../src/util/log.js';
import { expectClose, ROOT } from '../helpers.js';

const X = 2; // '#'
const BACKEND = (process.env.OVR_TEST_BACKEND ?? 'wasm') as 'wasm' | 'cpu';
const firstTokenIsX: RewardFunction = (_c, { completionIds }) =>
  completionIds.map((ids) => (ids[0] === X ? 1 : 0));
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function setup(name: string) {
  const outDir = path.join(ROOT, 'runs', 'test-artifacts', `ppo-${name}-${process.pid}`);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const train = path.join(path.dirname(outDir), `ppo-${name}-${process.pid}-prompts.jsonl`); // outside the run folder
  const rows = ['Answer with #.', 'Reply with the symbol #.', 'Say #.', 'Output #.'].map((q) => ({
    question: q,
    answer: '#',
  }));
  await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return { outDir, train };
}

const cfgOf = (outDir: string, train: string, over: Record<string, unknown>) =>
  GrpoConfig.parse({
    model: 'tiny',
    outDir,
    backend: BACKEND,
    seed: 0,
    lr: 1e-3,
    minLrRatio: 1,
    batchSize: 16,
    promptsPerStep: 2,
    numGenerations: 8,
    maxResponseLen: 2,
    stopStrings: [],
    data: { train, promptTemplate: 'qwen' },
    reward: { format: 'boxed', workers: 0 },
    advantage: 'gae',
    critic: { lr: 1e-3, warmupSteps: 0, updateSteps: 4 },
    ...over,
  });

// ~140 s on one core: behind OVR_SLOW=1 (npm test stays fast); the resume check below always runs.
const slow = process.env.OVR_SLOW === '1' ? it : it.skip;

describe('PPO toy run (advantage gae, tiny model, CPU via wasm)', () => {
  slow(
    'reward rises, explained variance rises, ratio == 1, the log has the PPO fields',
    async () => {
      const { outDir, train } = await setup('toy');
      await initBackend({ backend: BACKEND, log: () => {} });
      const before = tf.memory().numTensors;
      const t0 = performance.now();
      const res = await trainGrpo(cfgOf(outDir, train, { steps: 24 }), {
        rewardFn: firstTokenIsX,
        sampling: { allowedVocab: 8 },
        progress: null,
      });
      const log = readStepLog(res.logFile);
      const r = log.map((x) => x.rewardMean as number);
      const ev = log.map((x) => x.explainedVariance as number);
      const first = avg(r.slice(0, 8));
      const last = avg(r.slice(-8));
      const evFirst = avg(ev.slice(0, 4).filter(Number.isFinite));
      const evLast = avg(ev.slice(-8).filter(Number.isFinite));
      console.log(
        `toy PPO: ${r.length} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; reward first 8 ${first.toFixed(3)}, last 8 ${last.toFixed(3)}; ` +
          `EV first 4 ${evFirst.toFixed(3)}, last 8 ${evLast.toFixed(3)}; value loss ${(log[0].valueLoss as number).toFixed(4)} -> ${(log.at(-1)!.valueLoss as number).toFixed(4)}`,
      );
      console.log(`toy PPO artifact: ${outDir} (log.jsonl, rollouts.jsonl)`);
      for (const k of [
        'valueLoss',
        'explainedVariance',
        'returnMean',
        'valueMean',
        'criticLr',
        'criticGradNorm',
      ]) {
        expect(log[0], k).toHaveProperty(k);
      }
      expect(log.every((x) => x.ratioMin === 1 && x.ratioMax === 1)).toBe(true);
      expect(
        await stat(path.join(res.lastCheckpoint as string, 'critic', 'value_head.safetensors')),
      ).toBeTruthy();
      await rm(res.lastCheckpoint as string, { recursive: true, force: true });
      expect(last).toBeGreaterThanOrEqual(first + 0.3);
      expect(evLast).toBeGreaterThan(evFirst + 0.2);
      expect(tf.memory().numTensors).toBe(before);
    },
    600_000,
  );

  // ~40 s (measured 35-39 s on a loaded 2-core machine): behind OVR_SLOW=1 like the full-copy run above; the critic
  // adapter's invariants (parity, isolation, resume) run in test/train/critic.test.ts
  slow(
    'LoRA (policy adapter + a critic adapter on the shared base): the critic learns, the reward holds',
    async () => {
      const { outDir, train } = await setup('lora');
      await initBackend({ backend: BACKEND, log: () => {} });
      const before = tf.memory().numTensors;
      const t0 = performance.now();
      // LoRA learns at a higher lr than full fine-tuning (the LoRA GRPO toy of lora_train.test.ts uses 5e-3)
      const res = await trainGrpo(
        cfgOf(outDir, train, {
          steps: 24,
          lr: 5e-3,
          lora: { r: 8, alpha: 16 },
          critic: { lr: 5e-3, warmupSteps: 0, updateSteps: 4 },
        }),
        { rewardFn: firstTokenIsX, sampling: { allowedVocab: 8 }, progress: null },
      );
      const log = readStepLog(res.logFile);
      const r = log.map((x) => x.rewardMean as number);
      const ev = log.map((x) => x.explainedVariance as number);
      const vl = log.map((x) => x.valueLoss as number);
      const [first, last] = [avg(r.slice(0, 8)), avg(r.slice(-8))];
      const [evFirst, evLast] = [
        avg(ev.slice(0, 4).filter(Number.isFinite)),
        avg(ev.slice(-8).filter(Number.isFinite)),
      ];
      console.log(
        `toy PPO + LoRA: ${r.length} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; reward first 8 ${first.toFixed(3)}, last 8 ${last.toFixed(3)}; ` +
          `EV first 4 ${evFirst.toFixed(3)}, last 8 ${evLast.toFixed(3)}; value loss first 4 ${avg(vl.slice(0, 4)).toFixed(4)}, last 8 ${avg(vl.slice(-8)).toFixed(4)}`,
      );
      const ck = res.lastCheckpoint as string;
      expect(await stat(path.join(ck, 'adapter_model.safetensors'))).toBeTruthy();
      expect(await stat(path.join(ck, 'critic', 'adapter_model.safetensors'))).toBeTruthy();
      await expect(stat(path.join(ck, 'critic', 'model.safetensors'))).rejects.toThrow();
      await rm(outDir, { recursive: true, force: true });
      // The reward cannot rise much here: an adapter on the tiny model caps p('#') near 0.3 (frozen final norm and tied
      // embedding, see lora_train.test.ts) and this seed starts there (measured: first 8 0.336, last 8 0.336). What
      // LoRA PPO adds is the critic adapter, and it learns (measured: EV 0.276 -> 0.487, value loss 0.083 -> 0.056).
      expect(last).toBeGreaterThanOrEqual(first - 0.05);
      expect(evLast).toBeGreaterThan(evFirst + 0.1);
      expect(avg(vl.slice(-8))).toBeLessThan(0.85 * avg(vl.slice(0, 4)));
      expect(tf.memory().numTensors).toBe(before);
    },
    900_000,
  );

  it('resume from checkpoint-1 (policy + critic) gives the same step 2 as an uninterrupted run', async () => {
    const { outDir, train } = await setup('resume');
    await initBackend({ backend: BACKEND, log: () => {} });
    const run = async (dir: string, over: Record<string, unknown>) => {
      const m = await loadModel('tiny', { seed: 3 });
      try {
        return (
          await trainGrpo(cfgOf(dir, train, { steps: 2, saveEvery: 1, ...over }), {
            model: m,
            rewardFn: firstTokenIsX,
            sampling: { allowedVocab: 8 },
            progress: null,
          })
        ).records;
      } finally {
        m.dispose();
      }
    };
    const full = await run(path.join(outDir, 'a'), {});
    const b = path.join(outDir, 'b');
    await run(b, { steps: 1, saveEvery: 0 });
    const resumed = await run(b, { resume: 'latest' });
    expect(resumed.map((x) => x.step)).toEqual([2]);
    const keys = [
      'rewardMean',
      'loss',
      'gradNorm',
      'valueLoss',
      'explainedVariance',
      'returnMean',
      'valueMean',
    ] as const;
    const got = keys.map((k) => resumed[0][k as keyof (typeof resumed)[0]] as number);
    const want = keys.map((k) => full[1][k as keyof (typeof full)[1]] as number);
    expect(got[0]).toBe(want[0]);
    expectClose(got, want, 1e-6, `resumed step 2 ${keys.join(', ')}`);
    await rm(outDir, { recursive: true, force: true });
  }, 600_000);
});

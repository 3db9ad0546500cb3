// GRPO with LoRA and its rollouts on a real `ovr-train serve` process (sglang client, rollout.weights 'adapter', cpu
// on both sides, loopback): every step writes the PEFT adapter atomically to <outDir>/rollout-weights/v<step> and the
// server loads it, so the engine samples from exactly the trainer's policy (logged mismatch ~0, nothing corrected);
// only the served version's folder is kept, and it is a PEFT adapter (no base weights).
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { loadModel } from '../../src/model/load.js';
import { detachAdapter } from '../../src/model/lora.js';
import { swapAdapter } from '../../src/model/peft.js';
import { LocalEngine } from '../../src/rollout/local.js';
import { trainGrpo } from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import type { RewardFunction } from '../../src/train/rollout.js';
import { readStepLog } from '../../src/util/log.js';
import { ROOT } from '../helpers.js';
import { toyStart } from './helpers.js';
import { type Proc, startServe } from './procs.js';

const evenFirst: RewardFunction = (_c, { completionIds }) =>
  completionIds.map((ids) => ((ids[0] ?? 1) % 2 === 0 ? 1 : 0));
const dir = path.join(ROOT, 'runs', 'test-artifacts', `grpo-adapter-${process.pid}`);
let server: Proc | undefined;
afterAll(async () => {
  await server?.kill();
  await rm(dir, { recursive: true, force: true });
});

describe('GRPO + LoRA with adapter sync to ovr-train serve', () => {
  it('each step syncs the adapter; the served policy equals the trainer (mismatch ~0)', async () => {
    await initBackend({ backend: 'cpu', log: () => {} });
    const { start, train } = await toyStart(dir);
    server = await startServe(start, { extra: ['--quiet'] });
    const cfg = GrpoConfig.parse({
      model: start,
      outDir: path.join(dir, 'run'),
      backend: 'cpu',
      seed: 0,
      steps: 3,
      lr: 5e-2,
      minLrRatio: 1,
      batchSize: 8,
      promptsPerStep: 2,
      numGenerations: 4,
      maxResponseLen: 2,
      saveEvery: 0,
      lora: { r: 4, alpha: 8 },
      data: { train, promptTemplate: 'qwen' },
      reward: { format: 'boxed', workers: 0 },
      rollout: { engine: 'sglang', url: server.url, weights: 'adapter', retry: { timeoutMs: 600_000 } },
    });
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    const res = await trainGrpo(cfg, { rewardFn: evenFirst, progress: null });
    console.log(
      `GRPO + LoRA, adapter synced to serve: ${res.steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(tf.memory().numTensors).toBe(before);
    const log = await readStepLog(res.logFile);
    console.log(
      `mismatch mean ${log.map((r) => (r.isMeanAbsDiff as number).toExponential(1)).join(' ')}, max ${log.map((r) => (r.isMaxAbsDiff as number).toExponential(1)).join(' ')}; sync ms ${log.map((r) => (r.syncMs as number).toFixed(0)).join(' ')}`,
    );
    expect(log.map((r) => r.servedVersion)).toEqual([1, 2, 3]);
    expect(log.map((r) => r.rolloutVersion)).toEqual([0, 1, 2]);
    for (const r of log) {
      expect(r.isMaxAbsDiff as number).toBeLessThan(1e-4);
      expect(r.isCorrectedFrac).toBe(0);
    }
    const synced = path.join(dir, 'run', 'rollout-weights');
    expect(await readdir(synced)).toEqual(['v00000003']);
    expect((await readdir(path.join(synced, 'v00000003'))).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
    ]);
    // the trained adapter moves the policy by far more than the logged mismatch: a stale or missing sync would show
    const m2 = await loadModel(start);
    const lora = await swapAdapter(m2, path.join(synced, 'v00000003'));
    const engine = new LocalEngine({ model: m2, padId: 151643 });
    const g = { n: 1, maxNewTokens: 1, temperature: 0, seed: 0, eosIds: [], allowedVocab: 151665 };
    const reqs = [{ promptIds: [151644, 872, 198, 13048, 264, 3409, 13] }];
    const adapted = (await engine.generate(reqs, g)).samples[0];
    lora.enabled = false;
    const basePolicy = (await engine.generate(reqs, g)).samples[0];
    detachAdapter(m2.params)?.dispose();
    m2.dispose();
    const moved = Math.abs(adapted.logprobs[0] - basePolicy.logprobs[0]);
    console.log(
      `trained adapter vs base: first greedy token ${adapted.tokens[0]} vs ${basePolicy.tokens[0]}, |Δ logprob| ${moved}`,
    );
    expect(adapted.tokens[0] !== basePolicy.tokens[0] || moved > 1e-3).toBe(true);
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((x) => x.id)).toEqual(['start', 'policy-v3']);
  }, 180_000);
});

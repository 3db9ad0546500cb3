// Rollout test helpers: a LoRA adapter that changes the model (PEFT init leaves B = 0, which equals the base model),
// the sampling settings of the engine tests, and the GRPO-on-serve toy's starting folder.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { QWEN_EOS_IDS } from '../../src/model/generate.js';
import { loadModel } from '../../src/model/load.js';
import { LoraAdapter, LoraConfig } from '../../src/model/lora.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { saveWeights } from '../../src/model/weights.js';
import type { RolloutSampling } from '../../src/rollout/types.js';
import { Rng } from '../../src/util/rng.js';

/** A PEFT-initialised adapter whose B is random too (B = 0 would equal the base model). */
export function randomAdapter(m: Qwen2_5_VL, seed: number, r = 4): LoraAdapter {
  const a = LoraAdapter.init(m.config, LoraConfig.parse({ r, alpha: 8 }), seed);
  const rng = new Rng(seed).split('test-b');
  for (const [k, v] of Object.entries(a.variables()))
    if (k.endsWith('lora_B.weight')) {
      const b = Float32Array.from({ length: v.size }, () => (2 * rng.uniform() - 1) * 0.2);
      tf.tidy(() => v.assign(tf.tensor(b, v.shape)));
    }
  return a;
}

/** Sampling settings of the engine tests (2 samples of 4 tokens, seed 7, the real Qwen ids), with overrides. */
export const sampling = (o: Partial<RolloutSampling> = {}): RolloutSampling => ({
  n: 2,
  maxNewTokens: 4,
  temperature: 1,
  seed: 7,
  eosIds: QWEN_EOS_IDS,
  allowedVocab: 151665,
  ...o,
});

/**
 * A fresh `dir` holding the GRPO-on-serve toy's start: the tiny model (seed 0) saved as F32 in `dir/start` (what
 * `serve` loads) and four prompts whose gold answer is 'x' in `dir/prompts.jsonl`.
 */
export async function toyStart(dir: string): Promise<{ start: string; train: string }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const start = path.join(dir, 'start');
  const m = await loadModel('tiny', { seed: 0 });
  await saveWeights(start, m.params, m.config, { dtype: 'F32' });
  m.dispose();
  const train = path.join(dir, 'prompts.jsonl');
  const rows = ['Say a word.', 'Name a thing.', 'Pick one.', 'Go.'].map((q) => ({
    question: q,
    answer: 'x',
  }));
  await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return { start, train };
}

// Greedy 8-token generation vs HF `generate` (DynamicCache, eager) for text_only_batch and one_image:
// per-step logits at logit_columns, logsumexp and top-2 margins ≤ 1e-4, generated ids exact — with the KV cache
// and without it (full forward over prompt + generated tokens each step). Leak check per cached step.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KVCache } from '../../src/model/kv_cache.js';
import type { ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { expectClose } from '../helpers.js';
import {
  type CaseName,
  type CasesJson,
  caseInputs,
  casesJson,
  fixtureModel,
  get,
  loadCase,
  logitStats,
  setupBackend,
} from './fixture.js';

let model: Qwen2_5_VL;
let meta: CasesJson;

beforeAll(async () => {
  await setupBackend();
  model = await fixtureModel();
  meta = await casesJson();
});
afterAll(() => model.dispose());

type StepStats = { columns: Float32Array; lse: Float64Array; margin: Float64Array; next: number[] };

/** Stats of last-position logits `[B, 1, V]`, then disposes them. */
async function stepStats(logits: tf.Tensor3D): Promise<StepStats> {
  const B = logits.shape[0];
  const ids = Array.from({ length: B }, () => [0]);
  const s = logitStats(await logits.data(), logits.shape[2], meta.logit_columns, ids);
  logits.dispose();
  return { columns: s.columns, lse: s.lse, margin: s.margin, next: Array.from(s.argmax) };
}

async function prompt(name: CaseName): Promise<{ inputs: ModelInputs; ids: number[][]; mask: number[][] }> {
  const m = meta.cases[name];
  const inputs = await caseInputs(name, m);
  return { inputs, ids: m.input_ids.map((r) => [...r]), mask: m.attention_mask.map((r) => [...r]) };
}

async function checkSteps(
  name: CaseName,
  steps: StepStats[],
  generated: number[][],
  label: string,
): Promise<void> {
  const c = await loadCase(name);
  const K = meta.logit_columns.length;
  const cat = <T extends ArrayLike<number>>(xs: T[]): number[] => xs.flatMap((x) => Array.from(x));
  expectClose(
    cat(steps.map((s) => s.columns)),
    get(c, 'generation.step_logits_columns_subset').data,
    1e-4,
    `${name} ${label} step logits at columns`,
  );
  expect(cat(steps.map((s) => s.columns)).length).toBe(8 * generated.length * K);
  expectClose(
    cat(steps.map((s) => s.lse)),
    get(c, 'generation.step_logsumexp').data,
    1e-4,
    `${name} ${label} step logsumexp`,
  );
  expectClose(
    cat(steps.map((s) => s.margin)),
    get(c, 'generation.step_top2_margin').data,
    1e-4,
    `${name} ${label} step top2 margin`,
  );
  expect(generated).toEqual(meta.cases[name].generation?.new_tokens);
}

describe.each(['text_only_batch', 'one_image'] as CaseName[])('greedy generation parity: %s', (name) => {
  it('with KV cache (and no tensor leak per decode step)', async () => {
    const { inputs } = await prompt(name);
    const B = meta.cases[name].input_ids.length;
    const cache = new KVCache();
    const steps: StepStats[] = [];
    steps.push(await stepStats(model.forward(inputs, { cache, lastOnly: true }).logits));
    inputs.pixelValues?.dispose();
    const baseline = tf.memory().numTensors;
    for (let s = 1; s < 8; s++) {
      const next = steps[s - 1].next.map((t) => [t]);
      steps.push(await stepStats(model.forward({ inputIds: next }, { cache }).logits));
      expect(tf.memory().numTensors).toBe(baseline);
    }
    expect(cache.length).toBe(meta.cases[name].input_ids[0].length + 7);
    const generated = Array.from({ length: B }, (_, b) => steps.map((s) => s.next[b]));
    await checkSteps(name, steps, generated, 'cached');
    cache.dispose();
  });

  it('without cache (full forward each step) gives the same', async () => {
    const { inputs, ids, mask } = await prompt(name);
    const steps: StepStats[] = [];
    for (let s = 0; s < 8; s++) {
      const { logits } = model.forward({ ...inputs, inputIds: ids, attentionMask: mask }, { lastOnly: true });
      steps.push(await stepStats(logits));
      steps[s].next.forEach((t, b) => {
        ids[b].push(t);
        mask[b].push(1);
      });
    }
    inputs.pixelValues?.dispose();
    const generated = steps[0].next.map((_, b) => steps.map((s) => s.next[b]));
    await checkSteps(name, steps, generated, 'no-cache');
  });
});

// Trainer step machinery on a tiny Qwen2.5-VL (models/tiny with a 256-row vocabulary so a cpu step takes ~0.1 s):
// trainable-part selection, frozen params bit-identical, accumulation invariance (batch 2 x accum 1 == batch 1 x
// accum 2), the NaN/Inf guard (skip, count, stop after K), checkpoint save/resume round trip, and no tensor leak.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Qwen2_5_VLConfig } from '../../src/model/config.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { isTrainableParam, selectTrainable, TRAINABLE_PARTS } from '../../src/model/trainable.js';
import { accumulateGrads } from '../../src/train/accumulate.js';
import { listCheckpoints } from '../../src/train/state.js';
import { Trainer, type TrainerConfig } from '../../src/train/trainer.js';
import { JsonlLogger, readStepLog } from '../../src/util/log.js';
import { Rng } from '../../src/util/rng.js';
import { useTestBackend } from '../backend/select.js';
import { expectClose, ROOT } from '../helpers.js';

let cfg: Qwen2_5_VLConfig;
let tmp: string;

const BASE: TrainerConfig = {
  lr: 1e-2,
  minLrRatio: 0.1,
  warmupSteps: 0,
  weightDecay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  maxGradNorm: 1,
  trainable: 'all',
  outDir: 'unused',
  keepLast: 2,
  logEvery: 1,
  maxConsecutiveNonFinite: 3,
};

// Two fixed sequences of different lengths (right-padded), labels only after the "prompt".
const SEQ_A = [5, 17, 42, 9, 100, 200, 31, 7, 8, 250];
const SEQ_B = [3, 11, 60, 61, 62, 63];
const labelsOf = (ids: number[]) => ids.map((t, i) => (i < 3 ? -100 : t));
const padTo = (xs: number[], T: number, v: number) => [...xs, ...new Array(T - xs.length).fill(v)];
const countLabels = (ls: number[][]) => ls.flat().filter((l) => l !== -100).length;

function batchOf(seqs: number[][]) {
  const T = Math.max(...seqs.map((s) => s.length));
  return {
    inputs: {
      inputIds: seqs.map((s) => padTo(s, T, 0)),
      attentionMask: seqs.map((s) =>
        padTo(
          s.map(() => 1),
          T,
          0,
        ),
      ),
    },
    labels: seqs.map((s) => padTo(labelsOf(s), T, -100)),
  };
}

async function snapshot(params: Record<string, tf.Tensor>): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of Object.entries(params)) out.set(k, (await t.data()) as Float32Array);
  return out;
}

beforeAll(async () => {
  await useTestBackend('cpu');
  await Trainer.ready();
  cfg = { ...(await loadConfig(path.join(ROOT, 'models', 'tiny'))), vocab_size: 256 };
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-trainer-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('trainable parts', () => {
  it('classifies HF names per part', () => {
    const names = [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'visual.blocks.0.attn.qkv.weight',
      'visual.patch_embed.proj.weight',
      'visual.merger.mlp.0.weight',
    ];
    const table = Object.fromEntries(
      TRAINABLE_PARTS.map((p) => [p, names.map((n) => (isTrainableParam(n, p) ? 1 : 0)).join('')]),
    );
    expect(table).toEqual({ all: '11111', lm: '11000', vision: '00111', 'lm+merger': '11001' });
  });

  it('selects variables and rejects an empty selection', () => {
    const model = Qwen2_5_VL.init(cfg, 0);
    const lm = selectTrainable(model.params, 'lm');
    expect(Object.keys(lm).some((k) => k.startsWith('visual.'))).toBe(false);
    expect(Object.keys(lm).length).toBe(
      Object.keys(model.params).filter((k) => !k.startsWith('visual.')).length,
    );
    expect(() =>
      selectTrainable({ 'model.norm.weight': model.params['model.norm.weight'] }, 'vision'),
    ).toThrow(/selects no parameter/);
    model.dispose();
  });
});

describe('Trainer.trainStep', () => {
  it("trains every LM param, leaves every visual.* bit-identical with 'lm', and does not leak", async () => {
    const model = Qwen2_5_VL.init(cfg, 1);
    const before = await snapshot(model.params);
    const t = new Trainer({ model, config: { ...BASE, trainable: 'lm' }, totalSteps: 6 });
    const { inputs, labels } = batchOf([SEQ_A, SEQ_B]);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let s = 0; s < 6; s++) {
      const r = await t.trainStep([() => model.loss(inputs, labels)], { tokens: 16 });
      losses.push(r.loss);
      counts.push(r.numTensors);
    }
    console.log('losses', losses.map((l) => l.toFixed(4)).join(' '), 'numTensors', counts.join(' '));
    expect(losses[5]).toBeLessThan(losses[0]);
    expect(new Set(counts.slice(1)).size).toBe(1);
    const after = await snapshot(model.params);
    for (const [k, v] of before) {
      const same = after.get(k)!.every((x, i) => Object.is(x, v[i]));
      expect(same, `${k} ${k.startsWith('visual.') ? 'frozen but changed' : 'trainable but unchanged'}`).toBe(
        k.startsWith('visual.'),
      );
    }
    t.dispose();
    model.dispose();
  });

  it('batch 2 x accum 1 gives the same update as batch 1 x accum 2 (within 1e-5)', async () => {
    const run = async (micro: number[][][]) => {
      const model = Qwen2_5_VL.init(cfg, 2);
      // eps 1e-6: some gradients are zero in exact arithmetic (k_proj.bias: softmax ignores a per-query shift) and
      // only rounding noise (~1e-9) in floats; with eps 1e-8 Adam's first step turns that noise into updates of up
      // to lr (tensorflow/oneDNN rounds a batch of 2 and two batches of 1 differently: 6e-5 apart).
      const t = new Trainer({ model, config: { ...BASE, eps: 1e-6 }, totalSteps: 2 });
      const all = micro.flat();
      const n = countLabels(all.map(labelsOf));
      const r = await t.trainStep(
        micro.map((seqs) => {
          const b = batchOf(seqs);
          return () => model.loss(b.inputs, b.labels, { numItemsInBatch: n });
        }),
        { tokens: 0 },
      );
      const p = await snapshot(model.params);
      t.dispose();
      model.dispose();
      return { r, p };
    };
    const big = await run([[SEQ_A, SEQ_B]]);
    const acc = await run([[SEQ_A], [SEQ_B]]);
    expectClose([acc.r.loss, acc.r.gradNorm], [big.r.loss, big.r.gradNorm], 1e-5, 'loss, gradNorm');
    let worst = 0;
    for (const [k, v] of big.p) worst = Math.max(worst, expectCloseQuiet(acc.p.get(k)!, v));
    console.log(`params after one step: max abs diff ${worst.toExponential(3)}`);
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('skips non-finite steps, counts them, and stops after K in a row', async () => {
    const model = Qwen2_5_VL.init(cfg, 3);
    const before = await snapshot(model.params);
    const log = path.join(tmp, 'nan.jsonl');
    const logger = new JsonlLogger(log);
    const t = new Trainer({ model, config: BASE, totalSteps: 10, logger });
    const { inputs, labels } = batchOf([SEQ_B]);
    const nan = () => tf.mul(model.loss(inputs, labels), Number.NaN) as tf.Scalar;
    const r1 = await t.trainStep([nan]);
    const r2 = await t.trainStep([nan]);
    expect([r1.skipped, r2.skipped, t.guard.total, t.optimizer.stepCount]).toEqual([true, true, 2, 0]);
    const after = await snapshot(model.params);
    for (const [k, v] of before)
      expect(
        after.get(k)!.every((x, i) => Object.is(x, v[i])),
        k,
      ).toBe(true);
    const ok = await t.trainStep([() => model.loss(inputs, labels)]);
    expect([ok.skipped, t.guard.consecutive, t.optimizer.stepCount]).toEqual([false, 0, 1]);
    await t.trainStep([nan]);
    await t.trainStep([nan]);
    await expect(t.trainStep([nan])).rejects.toThrow(/3 steps in a row had a non-finite gradient/);
    logger.close();
    const rows = readStepLog(log);
    expect(rows.map((r) => r.skipped ?? false)).toEqual([true, true, false, true, true, true]);
    expect(Number.isNaN(rows[0].loss)).toBe(true);
    t.dispose();
    model.dispose();
  });
});

describe('accumulateGrads', () => {
  it('frees its partial sums when a later micro-batch fails, and names a gradient-less selection', async () => {
    const model = Qwen2_5_VL.init(cfg, 5);
    const vars = selectTrainable(model.params, 'lm');
    const { inputs, labels } = batchOf([SEQ_B]);
    const before = tf.memory().numTensors;
    const bad = () => model.loss({ inputIds: [[1, 2, 999]] }, [[-100, 2, 999]]);
    expect(() => accumulateGrads([() => model.loss(inputs, labels), bad], vars)).toThrow(/out of range/);
    expect(tf.memory().numTensors).toBe(before);
    // text-only input: the vision tower gets no gradient, so training only 'vision' cannot work
    const vision = selectTrainable(model.params, 'vision');
    expect(() => accumulateGrads([() => model.loss(inputs, labels)], vision)).toThrow(
      /no trainable parameter received a gradient/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('Trainer save/resume', () => {
  it('resumes weights, moments, step and rng so the next losses match an uninterrupted run exactly', async () => {
    const { inputs, labels } = batchOf([SEQ_A, SEQ_B]);
    const make = (outDir: string) => {
      const model = Qwen2_5_VL.init(cfg, 4);
      const rng = new Rng(7).split('sampling');
      const t = new Trainer({ model, config: { ...BASE, outDir }, totalSteps: 4, rngs: { sampling: rng } });
      return { model, t, rng };
    };
    const steps = async (m: ReturnType<typeof make>, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await m.t.trainStep([() => m.model.loss(inputs, labels)])).loss);
      return out;
    };
    const a = make(path.join(tmp, 'a'));
    const full = await steps(a, 4);
    const b = make(path.join(tmp, 'b'));
    const first = await steps(b, 2);
    b.rng.uniform();
    const dir = await b.t.save({ epoch: 0, index: 2 });
    const rngAt = b.rng.getState();
    const c = make(path.join(tmp, 'b'));
    const state = await c.t.resume(dir);
    expect([c.t.step, state.dataPosition, c.rng.getState()]).toEqual([2, { epoch: 0, index: 2 }, rngAt]);
    const rest = await steps(c, 2);
    console.log('uninterrupted', full, 'resumed', [...first, ...rest]);
    expect([...first, ...rest]).toEqual(full);
    expect((await listCheckpoints(path.join(tmp, 'b'))).map((x) => x.step)).toEqual([2]);
    for (const m of [a, b, c]) {
      m.t.dispose();
      m.model.dispose();
    }
  });
});

function expectCloseQuiet(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

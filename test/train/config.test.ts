import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BACKEND_NAMES } from '../../src/backend/index.js';
import {
  BACKENDS,
  checkCommonTrainFields,
  commonTrainFields,
  isTrainableParam,
  SftConfig,
  sftDataFields,
} from '../../src/train/config.js';

const base = { model: 'tiny', data: { train: 'train.jsonl' } };
const issues = (input: unknown) => {
  const r = SftConfig.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('SftConfig', () => {
  it('fills documented defaults', () => {
    const c = SftConfig.parse(base);
    expect(c).toMatchObject({
      seed: 0,
      batchSize: 4,
      gradAccumSteps: 1,
      lr: 1e-5,
      betas: [0.9, 0.999],
      eps: 1e-8,
      maxGradNorm: 1,
      trainable: 'all',
      backend: 'auto',
      maxSeqLen: 1024,
      packing: false,
      lengthGrouping: true,
      data: { train: 'train.jsonl', format: 'auto', promptTemplate: 'qwen' },
    });
    expect(c.steps).toBeUndefined();
    expect(c.resume).toBeUndefined();
  });

  it('keeps seed 0 and accepts every trainable part and backend', () => {
    expect(SftConfig.parse({ ...base, seed: 0 }).seed).toBe(0);
    for (const trainable of ['all', 'lm', 'vision', 'lm+merger'])
      expect(issues({ ...base, trainable })).toEqual([]);
    for (const backend of ['cpu', 'wasm', 'webgpu', 'tensorflow', 'auto'])
      expect(issues({ ...base, backend })).toEqual([]);
    // the config accepts exactly the names initBackend understands
    expect([...BACKENDS]).toEqual([...BACKEND_NAMES]);
  });

  it('is strict: a typo fails and is named, also inside data', () => {
    expect(issues({ ...base, learningRate: 1 })[0]).toMatch(/Unrecognized key: "learningRate"/);
    expect(issues({ ...base, data: { train: 'x', fromat: 'messages' } })[0]).toMatch(
      /^data: Unrecognized key: "fromat"/,
    );
  });

  it('cross-field checks say how to fix the problem', () => {
    expect(issues({ ...base, steps: 10, epochs: 2 })).toEqual([
      'steps: set steps (10) or epochs (2), not both: remove one of them',
    ]);
    expect(issues({ ...base, steps: 10, warmupSteps: 10 })).toEqual([
      'warmupSteps: warmupSteps (10) must be less than steps (10): lower warmupSteps',
    ]);
    expect(issues({ ...base, steps: 10, saveEvery: 20 })).toEqual([
      'saveEvery: saveEvery (20) exceeds steps (10): use 0 to save only at the end',
    ]);
    expect(issues({ ...base, evalEvery: 50 })).toEqual([
      'data.eval: evalEvery (50) needs data.eval: pass --data.eval FILE or set evalEvery to 0',
    ]);
    expect(issues({ ...base, packing: true, padSide: 'left' })[0]).toMatch(
      /^padSide: packing .* drop --pad-side left or --packing/,
    );
    expect(issues({ ...base, resume: '' })[0]).toMatch(/^resume: resume is empty/);
    expect(
      issues({
        ...base,
        steps: 10,
        warmupSteps: 9,
        saveEvery: 10,
        evalEvery: 5,
        data: { train: 'a', eval: 'b' },
      }),
    ).toEqual([]);
  });

  it('range checks reject nonsense values', () => {
    for (const bad of [
      { lr: 0 },
      { batchSize: 0 },
      { batchSize: 1.5 },
      { betas: [1, 0.9] },
      { minLrRatio: 2 },
      { keepLast: 0 },
    ]) {
      expect(issues({ ...base, ...bad }).length, JSON.stringify(bad)).toBeGreaterThan(0);
    }
  });

  it('every field, including nested data fields, has a description', () => {
    const all = { ...commonTrainFields, ...SftConfig.shape, ...sftDataFields };
    const missing = Object.entries(all).filter(([, s]) => !(s as z.ZodType).description);
    expect(missing.map(([k]) => k)).toEqual([]);
  });
});

describe('commonTrainFields reuse', () => {
  it('spreads into another strict schema and its checks run from superRefine', () => {
    const Other = z
      .object({ ...commonTrainFields, numGenerations: z.number().int().default(4).describe('G') })
      .strict()
      .superRefine((c, ctx) => checkCommonTrainFields(c, ctx));
    expect(Other.parse({ model: 'tiny' }).numGenerations).toBe(4);
    const r = Other.safeParse({ model: 'tiny', steps: 3, epochs: 1 });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].message).toMatch(/set steps \(3\) or epochs \(1\), not both/);
  });
});

describe('isTrainableParam', () => {
  const names = [
    'visual.patch_embed.proj.weight',
    'visual.blocks.0.attn.qkv.weight',
    'visual.merger.mlp.0.weight',
    'model.embed_tokens.weight',
    'model.layers.0.self_attn.q_proj.bias',
    'lm_head.weight',
    'model.visual.merger.ln_q.weight',
    'model.language_model.norm.weight',
  ];
  const pick = (t: Parameters<typeof isTrainableParam>[1]) => names.map((n) => isTrainableParam(n, t));
  it('selects vision tower, merger and LM by HF name (legacy and new layouts)', () => {
    expect(pick('all')).toEqual([true, true, true, true, true, true, true, true]);
    expect(pick('lm')).toEqual([false, false, false, true, true, true, false, true]);
    expect(pick('vision')).toEqual([true, true, true, false, false, false, true, false]);
    expect(pick('lm+merger')).toEqual([false, false, true, true, true, true, true, true]);
    expect(() => isTrainableParam('x', 'text' as never)).toThrow(/unknown trainable 'text'/);
  });
});

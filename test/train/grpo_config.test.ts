import { describe, expect, it } from 'vitest';
import { helpText, parseArgs } from '../../src/cli/args.js';
import { GrpoConfig, grpoBatchPlan } from '../../src/train/grpo_config.js';

const base = { model: 'tiny', data: { train: 'prompts.jsonl' } };

/** All issue messages of a failed parse, joined. */
function errors(input: unknown): string {
  const r = GrpoConfig.safeParse(input);
  expect(r.success, 'expected the config to be rejected').toBe(false);
  return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
}

describe('GrpoConfig', () => {
  it('fills ORZ/DAPO-style defaults: no KL, no entropy, token loss, orz template and reward', () => {
    const c = GrpoConfig.parse(base);
    expect(c).toMatchObject({
      numGenerations: 8,
      promptsPerStep: 4,
      ppoEpochs: 1,
      temperature: 1,
      topP: 1,
      topK: 0,
      clipLow: 0.2,
      clipHigh: 0.2,
      lossAggregation: 'token',
      klCoef: 0,
      entropyCoef: 0,
      scaleRewardsByStd: true,
      dynamicSampling: false,
      stopStrings: ['</answer>'],
      lr: 1e-6,
      seed: 0,
      reward: { name: 'math', format: 'orz', workers: 1 },
      data: { train: 'prompts.jsonl', promptTemplate: 'orz', format: 'auto', shuffle: true },
    });
    expect(c.refModel).toBeUndefined();
    expect('gradAccumSteps' in c).toBe(false);
  });

  it('is strict: typos fail, at the top level and nested, and gradAccumSteps is derived not set', () => {
    expect(errors({ ...base, numGeneration: 4 })).toMatch(/numGeneration/);
    expect(errors({ ...base, data: { train: 'p.jsonl', promptTemplat: 'orz' } })).toMatch(/promptTemplat/);
    expect(errors({ ...base, reward: { fromat: 'boxed' } })).toMatch(/fromat/);
    expect(errors({ ...base, gradAccumSteps: 2 })).toMatch(/gradAccumSteps/);
    expect(errors({ model: 'tiny' })).toMatch(/data/);
  });

  it('rejects a minibatch that does not divide the rollout, naming the numbers and a fix', () => {
    const m = errors({ ...base, promptsPerStep: 2, numGenerations: 4, miniBatchSize: 6, batchSize: 2 });
    expect(m).toContain(
      'miniBatchSize (6) must divide the rollout, promptsPerStep x numGenerations (2 x 4 = 8)',
    );
    expect(m).toContain('miniBatchSize (6) must be a multiple of numGenerations (4)');
  });

  it('rejects a minibatch not divisible by batchSize', () => {
    const m = errors({ ...base, promptsPerStep: 2, numGenerations: 4, batchSize: 3 });
    expect(m).toContain('batchSize: miniBatchSize (8) must be divisible by batchSize (3)');
  });

  it('rejects inconsistent reward/template, KL and eval settings with fix-it messages', () => {
    expect(errors({ ...base, data: { train: 'p.jsonl', promptTemplate: 'qwen' } })).toContain(
      "reward.format: reward.format 'orz' needs <answer> tags, which the 'qwen' template does not ask for: use --reward.format boxed",
    );
    expect(errors({ ...base, refModel: 'ref/' })).toMatch(
      /refModel is only used when klCoef > 0: set --kl-coef/,
    );
    expect(errors({ ...base, evalEvery: 10 })).toMatch(/evalEvery \(10\) needs data.eval/);
    expect(errors({ ...base, steps: 10, epochs: 1 })).toMatch(/not both/);
    const ok = GrpoConfig.parse({ ...base, klCoef: 0.001, refModel: 'ref/', reward: { format: 'boxed' } });
    expect(ok.reward).toEqual({ name: 'math', format: 'boxed', workers: 1 });
  });

  it('rejects out-of-range sampling and loss values', () => {
    expect(errors({ ...base, temperature: 0 })).toMatch(/temperature/);
    expect(errors({ ...base, topP: 0 })).toMatch(/topP/);
    expect(errors({ ...base, topP: 1.5 })).toMatch(/topP/);
    expect(errors({ ...base, numGenerations: 1 })).toMatch(/numGenerations/);
    expect(errors({ ...base, clipLow: 1 })).toMatch(/clipLow/);
    expect(errors({ ...base, lossAggregation: 'sample' })).toMatch(/lossAggregation/);
    expect(errors({ ...base, klCoef: -1 })).toMatch(/klCoef/);
  });

  it('derives the batch plan of an RL step', () => {
    expect(grpoBatchPlan(GrpoConfig.parse({ ...base, batchSize: 4 }))).toEqual({
      rolloutSize: 32,
      miniBatchSize: 32,
      microBatchesPerUpdate: 8,
      updatesPerStep: 1,
    });
    const c = GrpoConfig.parse({
      ...base,
      promptsPerStep: 2,
      numGenerations: 4,
      miniBatchSize: 4,
      batchSize: 2,
      ppoEpochs: 2,
    });
    expect(grpoBatchPlan(c)).toEqual({
      rolloutSize: 8,
      miniBatchSize: 4,
      microBatchesPerUpdate: 2,
      updatesPerStep: 4,
    });
  });

  it('has a description on every field (the --help text has no gap) and parses kebab/nested flags', () => {
    const help = helpText(GrpoConfig, 'ovr-train grpo');
    expect(help).not.toContain('(no description)');
    for (const flag of [
      '--num-generations',
      '--clip-high',
      '--reward.format',
      '--data.prompt-template',
      '--kl-coef',
    ]) {
      expect(help).toContain(flag);
    }
    const r = parseArgs(GrpoConfig, [
      '--model',
      'tiny',
      '--data.train',
      'p.jsonl',
      '--num-generations',
      '4',
      '--reward.format',
      'boxed',
      '--data.prompt-template',
      'qwen',
      '--stop-strings',
      '</answer>,User:',
      '--no-scale-rewards-by-std',
    ]);
    expect(r.kind).toBe('config');
    if (r.kind === 'config') {
      expect(r.config.numGenerations).toBe(4);
      expect(r.config.reward.format).toBe('boxed');
      expect(r.config.data.promptTemplate).toBe('qwen');
      expect(r.config.stopStrings).toEqual(['</answer>', 'User:']);
      expect(r.config.scaleRewardsByStd).toBe(false);
    }
  });
});

// GRPO trainer on the random tiny Qwen2.5-VL (models/tiny): the on-policy invariant (mu = 1, one minibatch: ratio == 1
// and the gradient equals a hand-composed -A * grad log p loss), clipping on the real model, sampler vs forward
// log-probs (text and image prompts), prompt rows, loss rows, rewards (custom, null, ORZ truncation), dynamic
// sampling counts, the reference model only when klCoef > 0, resume, and tensor counts flat across 10 RL steps.
// Backend: OVR_TEST_BACKEND, default wasm (XNNPACK on the CPU; pure-JS cpu is ~10x slower on the 151936-row embedding).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { encodePrompt, PromptStream, rowToPrompt } from '../../src/data/prompts.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { selectTrainable } from '../../src/model/trainable.js';
import { rolloutPrompts } from '../../src/rollout/local.js';
import {
  completionLogprobs,
  type GrpoStepRecord,
  lossSettings,
  microBatchGrads,
  trainGrpo,
} from '../../src/train/grpo.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import {
  buildTrainRows,
  disposeRows,
  type RewardFunction,
  scoreCompletions,
} from '../../src/train/rollout.js';
import { readStepLog } from '../../src/util/log.js';
import { Rng } from '../../src/util/rng.js';
import { testBackendName } from '../backend/select.js';
import { expectClose, FIXTURE, ROOT } from '../helpers.js';

const BACKEND = testBackendName('wasm');
const TMP = path.join(ROOT, 'runs', 'test-artifacts', `grpo-unit-${process.pid}`);
let model: Qwen2_5_VL;
let tok: QwenTokenizer;

beforeAll(async () => {
  await initBackend({ backend: BACKEND, log: () => {} });
  model = await loadModel('tiny', { seed: 0 });
  tok = await defaultTokenizer();
  await rm(TMP, { recursive: true, force: true });
  await mkdir(TMP, { recursive: true });
}, 60_000);
afterAll(async () => {
  model?.dispose();
  await rm(TMP, { recursive: true, force: true });
});

const baseCfg = (over: Record<string, unknown>) =>
  GrpoConfig.parse({
    model: 'tiny',
    backend: BACKEND,
    outDir: TMP,
    lr: 1e-3,
    batchSize: 4,
    promptsPerStep: 2,
    numGenerations: 4,
    maxResponseLen: 3,
    data: { train: 'unused.jsonl', promptTemplate: 'qwen' },
    reward: { format: 'boxed', workers: 0 },
    ...over,
  });

/** Two short prompts and 8 completions of 1-3 tokens (all ids < vocab). */
const PROMPTS = [
  { ids: [785, 4226, 374, 220], pixels: null, gridThw: [] },
  { ids: [3838, 374, 220, 16, 10, 16, 30], pixels: null, gridThw: [] },
];
const COMPLETIONS = [[17], [18, 13], [17, 13, 151645], [19], [17], [20, 21], [16, 13, 151645], [22]];
const ROW_PROMPTS = COMPLETIONS.map((_, i) => PROMPTS[Math.floor(i / 4)]);
const ADV = [1.5, -0.5, -0.5, -0.5, 0.8, -0.8, 0.8, -0.8];

describe('buildTrainRows', () => {
  it('left-pads prompts, right-pads completions; targets and mask cover completions only', () => {
    const rows = buildTrainRows([PROMPTS[0], PROMPTS[1]], [[7], [8, 9]], 0);
    expect(rows.promptLen).toBe(7);
    expect(rows.inputs.inputIds).toEqual([
      [0, 0, 0, 785, 4226, 374, 220, 7, 0],
      [3838, 374, 220, 16, 10, 16, 30, 8, 9],
    ]);
    expect(rows.inputs.attentionMask).toEqual([
      [0, 0, 0, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1, 1],
    ]);
    expect(rows.targets).toEqual([
      [7, 0],
      [8, 9],
    ]);
    expect(rows.mask).toEqual([
      [1, 0],
      [1, 1],
    ]);
  });
});

describe('policy gradient on the real tiny model', () => {
  it('mu = 1, one minibatch: ratio == 1 and the gradient equals the hand-composed -A * grad log p loss', async () => {
    const cfg = baseCfg({});
    const vars = selectTrainable(model.params, 'all');
    const rows = buildTrainRows(ROW_PROMPTS, COMPLETIONS, tok.special.pad);
    const tokens = rows.mask.flat().reduce((a, b) => a + b, 0);
    const before = tf.memory().numTensors;
    const { grads, host } = await microBatchGrads(
      model,
      vars,
      { rows, advantages: ADV },
      lossSettings(cfg),
      tokens,
    );
    expect(host.stats.ratioMin).toBe(1);
    expect(host.stats.ratioMax).toBe(1);
    expect(host.stats.clipFraction).toBe(0);
    expect(host.stats.approxKl).toBe(0);
    // Hand-composed: log p of every next token from the model's own tokenLogprobs on the full rows, then
    // -sum_i A_i sum_t m_it log p_it / (#tokens), differentiated directly.
    const P = rows.promptLen;
    const ids = rows.inputs.inputIds as number[][];
    const next = ids.map((r) => [...r.slice(1), 0]);
    const weights = ids.map((r, i) =>
      r.map((_, t) => (t >= P - 1 && t - (P - 1) < COMPLETIONS[i].length ? ADV[i] : 0)),
    );
    const byName = new Map(Object.entries(vars).map(([k, v]) => [v.name, k]));
    const ref = tf.variableGrads(() => {
      const lp = model.tokenLogprobs(rows.inputs, next);
      return tf.div(tf.neg(tf.sum(tf.mul(lp, tf.tensor2d(weights)))), tokens) as tf.Scalar;
    }, Object.values(vars));
    expect(Object.keys(grads).sort()).toEqual([...Object.keys(ref.grads)].map((n) => byName.get(n)).sort());
    let worst = 0;
    let norm = 0;
    for (const [n, g] of Object.entries(ref.grads)) {
      const k = byName.get(n) as string;
      const want = (await g.data()) as Float32Array;
      const got = (await grads[k].data()) as Float32Array;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(want[i] - got[i]));
        norm = Math.max(norm, Math.abs(want[i]));
      }
    }
    console.log(
      `mu=1 gradient vs hand-composed PG: max abs diff ${worst.toExponential(3)} (max |grad| ${norm.toExponential(3)})`,
    );
    expect(norm).toBeGreaterThan(1e-4);
    expect(worst).toBeLessThanOrEqual(1e-6 + 1e-4 * norm);
    tf.dispose([...Object.values(grads), ...Object.values(ref.grads), ref.value]);
    expect(tf.memory().numTensors).toBe(before);
    disposeRows(rows);
  }, 120_000);

  it('old log-probs 1 nat below the current ones (ratio e > 1 + clipHigh) with A > 0: fully clipped, zero gradient', async () => {
    const cfg = baseCfg({});
    const vars = selectTrainable(model.params, 'lm');
    const rows = buildTrainRows(ROW_PROMPTS, COMPLETIONS, tok.special.pad);
    const lp = completionLogprobs(model, rows, lossSettings(cfg));
    const old = tf.tidy(() => tf.sub(lp, 1)) as tf.Tensor2D;
    const mb = { rows, advantages: ADV.map(Math.abs), oldLogprobs: old };
    const { grads, host } = await microBatchGrads(model, vars, mb, lossSettings(cfg), 12);
    expect(host.stats.clipFraction).toBeCloseTo(1, 6);
    expectClose([host.stats.ratioMean], [Math.E], 1e-4, 'ratio mean');
    const maxAbs = Math.max(
      ...(await Promise.all(Object.values(grads).map(async (g) => (await tf.max(tf.abs(g)).data())[0]))),
    );
    expect(maxAbs).toBe(0);
    tf.dispose([lp, old, ...Object.values(grads)]);
    disposeRows(rows);
  }, 120_000);
});

describe('sampler log-probs == forward log-probs', () => {
  const cases = [
    { name: 'text prompts', images: [] as string[] },
    { name: 'image prompt', images: [path.join(FIXTURE, 'images', 'img_h56_w84.png')] },
  ];
  for (const c of cases) {
    it(`${c.name}: generate() log-probs match completionLogprobs at temperature 0.7`, async () => {
      const data = baseCfg({}).data;
      const ex = [
        rowToPrompt(
          { file: 'p.jsonl', line: 1, value: { question: 'What is 2+2?', images: c.images } },
          data,
          '/',
        ),
      ];
      if (!c.images.length)
        ex.push(rowToPrompt({ file: 'p.jsonl', line: 2, value: { question: 'Name a colour.' } }, data, '/'));
      const enc = await Promise.all(ex.map((e) => encodePrompt(tok, e)));
      const gen = await rolloutPrompts(model, enc, {
        maxNewTokens: 4,
        numSamples: 3,
        temperature: 0.7,
        rng: new Rng(1).split('sampling'),
        padId: tok.special.pad,
        eosIds: [],
        allowedVocab: 151665,
      });
      const rows = buildTrainRows(
        gen.promptIndex.map((b) => enc[b]),
        gen.tokens,
        tok.special.pad,
      );
      const lp = (await completionLogprobs(model, rows, {
        temperature: 0.7,
        recompute: false,
      }).array()) as number[][];
      expectClose(
        gen.logprobs.flat(),
        lp.flatMap((r, i) => r.slice(0, gen.tokens[i].length)),
        1e-4,
        `${c.name} log-probs`,
      );
      disposeRows(rows);
    }, 120_000);
  }
});

describe('prompt rows and the prompt stream', () => {
  const data = baseCfg({}).data;
  it('question rows use the template; the answer falls back to the solution box; messages rows render chat', () => {
    const a = rowToPrompt(
      { file: 'p.jsonl', line: 3, value: { problem: 'Find x.', solution: 'so \\boxed{7}.' } },
      { ...data, promptTemplate: 'orz' },
      '/',
    );
    expect(a.answer).toBe('7');
    expect(a.id).toBe('p.jsonl:3');
    expect(a.prompt.endsWith('Find x.\nAssistant: <think>')).toBe(true);
    const m = rowToPrompt(
      {
        file: 'p.jsonl',
        line: 4,
        value: {
          id: 'q9',
          messages: [
            { role: 'user', content: 'Hi?' },
            { role: 'assistant', content: 'x' },
          ],
          answer: '1',
          image: 'a.png',
        },
      },
      data,
      '/data',
    );
    expect(m.id).toBe('q9');
    expect(m.images).toEqual(['/data/a.png']);
    expect(m.prompt).toContain(
      '<|vision_start|><|image_pad|><|vision_end|>Hi?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(m.prompt).not.toContain('x<|im_end|>');
  });
  it('multiple-choice rows list their choices after the question (PuzzleVQA rows)', () => {
    const v = {
      id: 'pz',
      image: 'images/a.png',
      question: 'Which colour?',
      choices: ['red', 'blue'],
      answer: 'blue',
    };
    const p = rowToPrompt({ file: 'p.jsonl', line: 1, value: v }, { ...data, promptTemplate: 'orz' }, '/d');
    expect(p.prompt).toContain('<|vision_start|><|image_pad|><|vision_end|>You must put');
    expect(p.prompt.endsWith('Which colour?\nChoices: red, blue\nAssistant: <think>')).toBe(true);
    expect(p.images).toEqual(['/d/images/a.png']);
    expect(() =>
      rowToPrompt({ file: 'p.jsonl', line: 2, value: { ...v, choices: 'red' } }, data, '/'),
    ).toThrow(/p.jsonl:2: 'choices' must be a list/);
  });
  it('responsePrefix is appended to chat prompts after the generation prompt', () => {
    const v = { messages: [{ role: 'user', content: 'Hi?' }], answer: '1' };
    const plain = rowToPrompt({ file: 'p.jsonl', line: 1, value: v }, data, '/');
    const pre = rowToPrompt(
      { file: 'p.jsonl', line: 1, value: v },
      { ...data, responsePrefix: '<think>' },
      '/',
    );
    expect(plain.prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(pre.prompt).toBe(`${plain.prompt}<think>`);
  });
  it('rows without a question name the field to set', () => {
    expect(() => rowToPrompt({ file: 'p.jsonl', line: 5, value: { answer: '1' } }, data, '/')).toThrow(
      /p.jsonl:5: no question.*data.questionField/,
    );
  });
  it('PromptStream: seeded epochs, crossing boundaries, resumable from its position', () => {
    const s = new PromptStream(5, 0, true);
    const first = s.next(7);
    expect([...first.slice(0, 5)].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(s.position).toEqual({ epoch: 1, index: 2 });
    const again = new PromptStream(5, 0, true, { epoch: 1, index: 2 });
    const s2 = new PromptStream(5, 0, true);
    s2.next(7);
    expect(again.next(6)).toEqual(s2.next(6));
    expect(new PromptStream(3, 0, false).next(4)).toEqual([0, 1, 2, 0]);
  });
});

describe('scoreCompletions', () => {
  const ctx = (finish: ('stop' | 'length')[]) => ({
    answers: finish.map(() => '2'),
    prompts: finish.map(() => 'p'),
    promptIds: finish.map(() => 'id'),
    finishReasons: finish,
    completionIds: finish.map(() => [1]),
  });
  it('custom rewards: null -> 0 (counted); ORZ mode zeroes truncated completions, boxed mode does not', async () => {
    const fn: RewardFunction = () => [1, null, 0.5];
    const c = ctx(['stop', 'stop', 'length']);
    expect(await scoreCompletions(['a', 'b', 'c'], c, { rewardFn: fn, format: 'orz' })).toEqual({
      rewards: [1, 0, 0],
      nulls: 1,
    });
    expect(await scoreCompletions(['a', 'b', 'c'], c, { rewardFn: fn, format: 'boxed' })).toEqual({
      rewards: [1, 0, 0.5],
      nulls: 1,
    });
  });
  it('default math reward (in-process) and clear errors for bad reward functions', async () => {
    const c = ctx(['stop', 'stop', 'length']);
    const r = await scoreCompletions(['so \\boxed{2}', '\\boxed{3}', '\\boxed{2}'], c, { format: 'boxed' });
    expect(r.rewards).toEqual([1, 0, 0]);
    await expect(
      scoreCompletions(['a'], ctx(['stop']), { rewardFn: () => [], format: 'boxed' }),
    ).rejects.toThrow(/returned 0 values for 1/);
    await expect(
      scoreCompletions(['a'], ctx(['stop']), { rewardFn: () => [Number.NaN], format: 'boxed' }),
    ).rejects.toThrow(/finite number or null/);
  });
});

async function promptsFile(name: string, n: number): Promise<string> {
  const file = path.join(TMP, `${name}.jsonl`);
  const rows = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ id: `p${i}`, question: `What is ${i}+1?`, answer: String(i + 1) }),
  );
  await writeFile(file, `${rows.join('\n')}\n`);
  return file;
}

describe('trainGrpo runs', () => {
  it('ORZ mode: truncated completions score 0 even when the reward says 1; all-equal groups dropped and counted', async () => {
    const train = await promptsFile('orz', 6);
    const outDir = path.join(TMP, 'orz');
    const cfg = baseCfg({
      outDir,
      steps: 1,
      maxResponseLen: 1,
      dynamicSampling: true,
      maxRefills: 1,
      data: { train, promptTemplate: 'orz' },
      reward: { format: 'orz', workers: 0 },
    });
    const res = await trainGrpo(cfg, { model, rewardFn: (c) => c.map(() => 1), progress: null });
    const rec = res.records[0];
    expect(rec.rewardMean).toBe(0);
    expect(rec.truncatedFrac).toBe(1);
    expect(rec.droppedGroups).toBe(4); // 2 prompts, then 1 refill of 2 prompts
    expect(rec.refills).toBe(1);
    expect(rec.groups).toBe(0);
    expect(rec.updates).toBe(0);
    const rolls = (await readFile(res.rolloutsFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rolls.length).toBe(16);
    expect(rolls.every((r) => r.reward === 0 && r.dropped === true && r.finishReason === 'length')).toBe(
      true,
    );
  }, 120_000);

  it('custom rewards reach the log; numTensors flat across 10 RL steps and back to the start after the run', async () => {
    const train = await promptsFile('mem', 5);
    const outDir = path.join(TMP, 'mem');
    const alternate: RewardFunction = (c) => c.map((_, i) => i % 2);
    const start = tf.memory().numTensors;
    const counts: number[] = [];
    const cfg = baseCfg({ outDir, steps: 10, data: { train, promptTemplate: 'qwen' } });
    const res = await trainGrpo(cfg, {
      model,
      rewardFn: alternate,
      progress: null,
      onStep: (r) => counts.push(r.numTensors),
    });
    console.log(`numTensors per step: ${counts.join(' ')}`);
    expect(counts.length).toBe(10);
    expect(new Set(counts).size).toBe(1);
    expect(tf.memory().numTensors).toBe(start);
    const log = readStepLog(res.logFile) as GrpoStepRecord[];
    expect(log.map((r) => r.rewardMean)).toEqual(Array(10).fill(0.5));
    expect(log.every((r) => r.updates === 1 && r.gradNorm > 0 && r.logprobDiffMax < 1e-4)).toBe(true);
    for (const k of [
      'rewardStd',
      'accuracy',
      'responseLenMean',
      'responseLenMax',
      'truncatedFrac',
      'clipFraction',
      'approxKl',
      'entropySampled',
      'droppedGroups',
      'timeRolloutMs',
      'timeRewardMs',
      'timeUpdateMs',
      'behaviors',
    ]) {
      expect(log[0], k).toHaveProperty(k);
    }
  }, 240_000);

  it('mu = 2 over 2 minibatches, sequence aggregation, entropy bonus, eval: off-policy ratios, old log-probs agree', async () => {
    const train = await promptsFile('mu2', 4);
    const outDir = path.join(TMP, 'mu2');
    const cfg = baseCfg({
      outDir,
      steps: 1,
      ppoEpochs: 2,
      miniBatchSize: 4,
      lr: 1e-2,
      lossAggregation: 'sequence',
      entropyCoef: 0.01,
      evalEvery: 1,
      data: { train, eval: train, promptTemplate: 'qwen' },
    });
    const res = await trainGrpo(cfg, { model, rewardFn: (c) => c.map((_, i) => i % 2), progress: null });
    const rec = res.records[0];
    console.log(
      `mu=2: approxKl ${rec.approxKl}, ratio [${rec.ratioMin}, ${rec.ratioMax}], entropy ${rec.entropy}, gen-vs-old ${rec.logprobDiffMax}`,
    );
    expect(rec.updates).toBe(4);
    expect(rec.logprobDiffMax).toBeLessThan(1e-4);
    expect(rec.approxKl).toBeGreaterThan(0);
    expect((rec.ratioMax as number) > 1 || (rec.ratioMin as number) < 1).toBe(true);
    expect(rec.entropy).toBeGreaterThan(0);
    expect(rec.entropy).toBeLessThanOrEqual(Math.log(151936));
    expect(typeof rec.evalReward).toBe('number');
  }, 120_000);

  it('a minibatch mixing an image prompt and a text prompt trains the vision tower and the LM', async () => {
    const train = path.join(TMP, 'mixed.jsonl');
    const img = path.join(FIXTURE, 'images', 'img_h56_w84.png');
    const rows = [
      { id: 'img', question: 'How many shapes?', image: img, answer: '3' },
      { id: 'txt', question: 'What is 1+1?', answer: '2' },
    ];
    await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const m = await loadModel('tiny', { seed: 5 });
    const keys = [
      'visual.merger.mlp.0.weight',
      'visual.blocks.0.attn.qkv.weight',
      'model.layers.0.mlp.up_proj.weight',
    ];
    const before = await Promise.all(keys.map(async (k) => Float32Array.from(await m.params[k].data())));
    try {
      const cfg = baseCfg({
        outDir: path.join(TMP, 'mixed'),
        steps: 1,
        data: { train, promptTemplate: 'qwen', shuffle: false },
      });
      const res = await trainGrpo(cfg, { model: m, rewardFn: (c) => c.map((_, i) => i % 2), progress: null });
      expect(res.records[0].updates).toBe(1);
      const rolls = (await readFile(res.rolloutsFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(new Set(rolls.map((r) => r.promptId))).toEqual(new Set(['img', 'txt']));
      for (const [i, k] of keys.entries()) {
        const after = (await m.params[k].data()) as Float32Array;
        expect(
          after.some((x, j) => x !== before[i][j]),
          `${k} changed`,
        ).toBe(true);
      }
    } finally {
      m.dispose();
    }
  }, 120_000);

  it('klCoef = 0 does not load a reference; klCoef > 0 does, and refKl is 0 before the first update, > 0 after', async () => {
    const train = await promptsFile('kl', 4);
    const counts: Record<string, number[]> = { off: [], on: [] };
    const recs: GrpoStepRecord[] = [];
    for (const [k, klCoef] of [
      ['off', 0],
      ['on', 0.1],
    ] as const) {
      const cfg = baseCfg({
        outDir: path.join(TMP, `kl-${k}`),
        steps: k === 'on' ? 2 : 1,
        klCoef,
        data: { train, promptTemplate: 'qwen' },
      });
      const m = await loadModel('tiny', { seed: 0 });
      const onStep = (r: GrpoStepRecord) => {
        counts[k].push(r.numTensors);
        if (k === 'on') recs.push(r);
      };
      try {
        await trainGrpo(cfg, { model: m, rewardFn: (c) => c.map((_, i) => i % 2), progress: null, onStep });
      } finally {
        m.dispose();
      }
    }
    const params = Object.keys(model.params).length;
    expect(counts.on[0] - counts.off[0]).toBe(params);
    expect(recs[0].refKl).toBe(0);
    expect(recs[1].refKl).toBeGreaterThan(0);
  }, 240_000);

  it('resume from checkpoint-1 gives the same step 2 as an uninterrupted run', async () => {
    const train = await promptsFile('resume', 6);
    const reward: RewardFunction = (c) => c.map((s) => (s.length % 2 ? 1 : 0));
    const run = async (outDir: string, over: Record<string, unknown>) => {
      const m = await loadModel('tiny', { seed: 3 });
      try {
        const cfg = baseCfg({
          outDir,
          steps: 2,
          saveEvery: 1,
          minLrRatio: 1,
          data: { train, promptTemplate: 'qwen' },
          ...over,
        });
        return (await trainGrpo(cfg, { model: m, rewardFn: reward, progress: null })).records;
      } finally {
        m.dispose();
      }
    };
    const full = await run(path.join(TMP, 'resume-a'), {});
    const b = path.join(TMP, 'resume-b');
    await run(b, { steps: 1, saveEvery: 0 });
    const resumed = await run(b, { resume: 'latest' });
    expect(resumed.length).toBe(1);
    expect(resumed[0].step).toBe(2);
    expect(resumed[0].rewardMean).toBe(full[1].rewardMean);
    expectClose(
      [resumed[0].loss, resumed[0].gradNorm],
      [full[1].loss, full[1].gradNorm],
      1e-6,
      'resumed step 2 loss, gradNorm',
    );
  }, 240_000);
});

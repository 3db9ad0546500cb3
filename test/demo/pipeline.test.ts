// Demo pipeline: the compact vocabulary (round trip, config check, culprit errors), rollout rows on literal
// arrays, and `ovr-train demo --quick` end to end: every artefact exists and is well formed (no learning claim).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BEHAVIORS, detectBehaviors } from '../../src/analysis/behaviors.js';
import { initBackend } from '../../src/backend/index.js';
import { demoCommand } from '../../src/cli/demo.js';
import { renderChat } from '../../src/data/chat.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { demoTokenizer } from '../../src/demo/eval.js';
import { demoReward, gradeDemo } from '../../src/demo/grade.js';
import { DEMO_MODEL_CONFIG } from '../../src/demo/options.js';
import { answerCounts } from '../../src/demo/report.js';
import { CAPTION_PROMPT, makeProblems } from '../../src/demo/tasks.js';
import { loadConfig } from '../../src/model/config.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { readStepLog } from '../../src/util/log.js';
import { startJudgeServer } from '../analysis/judge_peer.js';
import { testBackendName } from '../backend/select.js';

let tok: QwenTokenizer;
beforeAll(async () => {
  tok = await defaultTokenizer();
});

describe('demo vocabulary', () => {
  it('round-trips demo conversations and matches models/demo/config.json', async () => {
    const cfg = await loadConfig(path.dirname(DEMO_MODEL_CONFIG));
    const ct = demoTokenizer(tok, cfg.vocab_size);
    expect(() => ct.checkConfig(cfg)).not.toThrow();
    expect(ct.vocabSize).toBe(160);
    expect(ct.textEnd).toBeLessThanOrEqual(160 - 5);
    for (const p of makeProblems({ seed: 7, split: 'eval', count: 20 })) {
      const text = renderChat([
        { role: 'user', content: p.textPrompt },
        { role: 'assistant', content: p.target },
      ]);
      const ids = ct.encode(text);
      expect(Math.max(...ids)).toBeLessThan(ct.textEnd);
      expect(ct.decode(ids)).toBe(text);
    }
    expect(ct.encode('<|im_end|>')).toEqual([2]);
    expect(ct.encode('<|image_pad|>')).toEqual([cfg.image_token_id]);
    expect(() => ct.encode(' elephant')).toThrow(/not in the compact vocabulary/);
    expect(() => demoTokenizer(tok, 64)).toThrow(/vocabSize is 64/);
  });
});

describe('demoReward', () => {
  it('grades the last boxed answer; truncated completions score 0', async () => {
    const ctx = {
      answers: ['red', 'red', 'circle'],
      prompts: ['', '', ''],
      promptIds: ['a', 'b', 'c'],
      finishReasons: ['stop', 'length', 'stop'] as ('stop' | 'length')[],
      completionIds: [[], [], []],
    };
    const done = '<answer> \\boxed{red} </answer>';
    expect(await demoReward([done, done, '<answer> \\boxed{square} </answer>'], ctx)).toEqual([1, 0, 0]);
  });
});

describe('answerCounts', () => {
  it('counts the last boxed answer per task, normalised, and completions without one', () => {
    const rows = [
      { task: 'largest', completion: '\\boxed{circle} wait \\boxed{Square}' },
      { task: 'largest', completion: '<answer> \\boxed{square} </answer>' },
      { task: 'largest', completion: 'no answer' },
      { task: 'compare', completion: '\\boxed{red}' },
    ];
    expect(answerCounts(rows)).toEqual({ largest: { square: 2, '(none)': 1 }, compare: { red: 1 } });
  });
});

const readJsonl = (f: string) =>
  readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

describe('ovr-train demo --quick', () => {
  let out = '';
  beforeAll(async () => {
    await initBackend({ backend: testBackendName('wasm'), log: () => {} });
    out = path.join(mkdtempSync(path.join(tmpdir(), 'ovr-demo-')), 'run');
  });
  afterAll(() => rmSync(path.dirname(out), { recursive: true, force: true }));

  it('--help and a bad flag', async () => {
    expect(await demoCommand(['--help'])).toBe(0);
    expect(await demoCommand(['--stepz', '3'])).toBe(2);
  });

  it('writes checkpoints, logs, evals, charts and the report; no tensor leak', async () => {
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    expect(await demoCommand(['--quick', '--out', out, '--seed', '3'])).toBe(0);
    console.log(`demo --quick: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(tf.memory().numTensors).toBe(before);
    const opts = JSON.parse(readFileSync(path.join(out, 'options.json'), 'utf8'));
    expect(opts.seed).toBe(3);

    const sft = readJsonl(path.join(out, 'sft', 'log.jsonl'));
    expect(sft.map((r) => r.step)).toEqual([...Array(opts.sft.steps).keys()].map((k) => k + 1));
    for (const r of sft) expect(Number.isFinite(r.loss) && r.loss > 0).toBe(true);

    const rl = readJsonl(path.join(out, 'rl', 'log.jsonl'));
    expect(rl.map((r) => r.step)).toEqual([...Array(opts.rl.steps).keys()].map((k) => k + 1));
    const answerOf = new Map(readJsonl(path.join(out, 'data', 'rl.jsonl')).map((x) => [x.id, x.answer]));
    const rollouts = readJsonl(path.join(out, 'rl', 'rollouts.jsonl'));
    expect(rollouts).toHaveLength(opts.rl.steps * opts.rl.batchSize * opts.rl.groupSize);
    for (const r of rl) {
      const mine = rollouts.filter((x) => x.step === r.step);
      // the logged mean reward is the mean of that step's rollout rewards, and each reward is the demo grade
      expect(r.rewardMean).toBeCloseTo(mine.reduce((a, x) => a + x.reward, 0) / mine.length, 12);
      expect(Object.keys(r.behaviors).sort()).toEqual([...BEHAVIORS].sort());
    }
    for (const x of rollouts) {
      expect(['stop', 'length']).toContain(x.finishReason);
      expect(x.reward).toBe(
        x.finishReason === 'length' ? 0 : gradeDemo(x.completion, answerOf.get(x.promptId)),
      );
    }

    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'));
    for (const [file, key] of [
      ['cold_start_image.jsonl', 'coldStartImageAccuracy'],
      ['cold_start_text.jsonl', 'coldStartTextAccuracy'],
      ['rl_image.jsonl', 'rlImageAccuracy'],
    ]) {
      const rows = readJsonl(path.join(out, 'eval', file));
      expect(rows).toHaveLength(opts.evalCount);
      for (const r of rows) expect(r.reward).toBe(gradeDemo(r.completion, r.answer));
      expect(summary[key]).toBeCloseTo(
        rows.reduce((a: number, r: { reward: number }) => a + r.reward, 0) / rows.length,
        12,
      );
    }

    const pre = readJsonl(path.join(out, 'pretrain', 'log.jsonl'));
    expect(pre.map((r) => r.step)).toEqual([...Array(opts.pretrain.steps).keys()].map((k) => k + 1));
    // stage-1 data: text renderings (no image; some primed: the scene given as the reply's untrained opening) +
    // replayed stage-0 rows; an image row is a caption or a presence question, never a task question.
    const sftRows = readJsonl(path.join(out, 'data', 'sft.jsonl'));
    let primed = 0;
    for (const r of sftRows) {
      if (Array.isArray(r.messages[1].content)) {
        expect(r.messages[1].content[0].train).toBe(false);
        expect(r.image).toBeUndefined();
        primed++;
      }
      if (r.image === undefined) continue;
      const [image, text] = r.messages[0].content;
      expect(image).toEqual({ type: 'image' });
      expect(
        text.text === CAPTION_PROMPT || /^Is there a (red|green|blue) shape here\?$/.test(text.text),
      ).toBe(true);
      expect(existsSync(path.join(out, 'data', r.image))).toBe(true);
    }
    expect(primed).toBe(Math.round(opts.primedFraction * Math.max(64, opts.sft.steps * opts.sft.batchSize)));
    for (const [file, key] of [
      ['base_captions.jsonl', 'base'],
      ['rl_captions.jsonl', 'rl'],
    ] as const) {
      const rows = readJsonl(path.join(out, 'eval', file));
      expect(rows).toHaveLength(opts.evalCount);
      const items = rows.reduce((a: number, r: { items: number }) => a + r.items, 0);
      const right = rows.reduce((a: number, r: { itemsRight: number }) => a + r.itemsRight, 0);
      expect(summary.captionItemAccuracy[key]).toBeCloseTo(right / items, 12);
    }

    for (const stage of ['base', 'sft', 'rl']) {
      const dir = path.join(out, 'checkpoints', stage);
      for (const f of ['model.safetensors', 'config.json', 'compact_vocab.json'])
        expect(existsSync(path.join(dir, f))).toBe(true);
    }
    const back = await Qwen2_5_VL.load(path.join(out, 'checkpoints', 'rl'));
    expect(back.config.vocab_size).toBe(160);
    back.dispose();

    const html = readFileSync(path.join(out, 'report', 'index.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('held-out image accuracy, after RL');
    expect(html).toContain('Held-out answers given, by task');
    expect(html).toContain('<th>all</th><th>boxed</th>');
    // behaviour transfer: three stages, four pairs; offline the backtracking pair is the lexicon's, checked here
    // against detectBehaviors on the written trace files
    expect(html).toContain('Behaviour transfer rate BTR');
    expect(summary.rlAlgorithm).toBe('grpo');
    expect(summary.btrScorer).toBe('lexicon');
    expect(summary.btr.map((r: { stage: string }) => r.stage)).toEqual(['base', 'cold start', 'RL']);
    const traces = (f: string) =>
      readFileSync(path.join(out, 'eval', f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    const vis = traces('btr_visual.jsonl');
    const ling = traces('btr_linguistic.jsonl');
    expect(vis).toHaveLength(3 * opts.evalCount);
    expect(ling).toHaveLength(3 * opts.evalCount);
    for (const [step, stage] of ['base', 'cold start', 'RL'].entries()) {
      const rate = (rows: { step: number; completion: string }[], b: 'visualReflection' | 'backtracking') => {
        const mine = rows.filter((r) => r.step === step);
        return mine.filter((r) => detectBehaviors(r.completion)[b]).length / mine.length;
      };
      const row = summary.btr.find((r: { stage: string }) => r.stage === stage);
      expect(row.backtracking.cbrV).toBeCloseTo(rate(vis, 'visualReflection'), 12);
      expect(row.backtracking.cbrL).toBeCloseTo(rate(ling, 'backtracking'), 12);
      expect(row.subgoal.cbrV).toBeNull(); // NaN in JSON: no lexicon for visual divide-and-conquer
    }
    for (const name of ['reward', 'accuracy', 'response_length', 'behaviors', 'sft_loss']) {
      const png = path.join(out, 'report', `${name}.png`);
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(200);
      expect(html).toContain(`alt="${name}"`);
    }
  }, 300_000);

  it('--rl-algo ppo with an LLM judge (loopback judge server process): critic logs, critic checkpoint, judged BTR', async () => {
    const { proc, url } = await startJudgeServer(0);
    try {
      const out2 = path.join(path.dirname(out), 'ppo');
      const argv = ['--quick', '--out', out2, '--seed', '3', '--rl-algo', 'ppo'];
      expect(await demoCommand([...argv, '--judge-url', `${url}/v1`, '--judge-model', 'judge'])).toBe(0);
      const summary = JSON.parse(readFileSync(path.join(out2, 'summary.json'), 'utf8'));
      expect(summary.rlAlgorithm).toBe('ppo');
      expect(summary.btrScorer).toBe('judge');
      const rl = readStepLog(path.join(out2, 'rl', 'log.jsonl'));
      for (const r of rl) expect(Number.isFinite(r.valueLoss as number)).toBe(true);
      expect(rl[0]).toHaveProperty('explainedVariance');
      const ck = readdirSync(path.join(out2, 'rl')).filter((f) => f.startsWith('checkpoint-'));
      expect(existsSync(path.join(out2, 'rl', ck.at(-1) as string, 'critic', 'value_head.safetensors'))).toBe(
        true,
      );
      // the server counts "image again" for visual reflection and "wait" for backtracking
      const traces = (f: string) =>
        readFileSync(path.join(out2, 'eval', f), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
      const share = (rows: { step: number; completion: string }[], step: number, word: string) => {
        const mine = rows.filter((r) => r.step === step);
        return mine.filter((r) => r.completion.toLowerCase().includes(word)).length / mine.length;
      };
      const vis = traces('btr_visual.jsonl');
      const ling = traces('btr_linguistic.jsonl');
      summary.btr.forEach((row: { backtracking: { cbrV: number; cbrL: number } }, step: number) => {
        expect(row.backtracking.cbrV).toBeCloseTo(share(vis, step, 'image again'), 12);
        expect(row.backtracking.cbrL).toBeCloseTo(share(ling, step, 'wait'), 12);
      });
      expect(existsSync(path.join(out2, 'judge-cache'))).toBe(true);
      expect(readFileSync(path.join(out2, 'report', 'index.html'), 'utf8')).toContain('LLM judge');
    } finally {
      proc.kill('SIGTERM');
    }
  }, 300_000);
});

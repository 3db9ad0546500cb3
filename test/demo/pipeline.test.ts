// Demo pipeline: the compact vocabulary (round trip, config check, culprit errors), rollout rows on literal
// arrays, and `ovr-train demo --quick` end to end: every artefact exists and is well formed (no learning claim).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BEHAVIORS } from '../../src/analysis/behaviors.js';
import { initBackend } from '../../src/backend/index.js';
import { demoCommand } from '../../src/cli/demo.js';
import { renderChat } from '../../src/data/chat.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { DEMO_EOS, DemoVocab } from '../../src/demo/eval.js';
import { DEMO_MODEL_CONFIG, rolloutRows } from '../../src/demo/pipeline.js';
import { gradeDemo, makeProblems } from '../../src/demo/tasks.js';
import { loadConfig } from '../../src/model/config.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';

let tok: QwenTokenizer;
beforeAll(async () => {
  tok = await defaultTokenizer();
});

describe('DemoVocab', () => {
  it('round-trips demo conversations and matches models/demo/config.json', async () => {
    const cfg = await loadConfig(path.dirname(DEMO_MODEL_CONFIG));
    const vocab = DemoVocab.build(tok, cfg.vocab_size);
    expect(() => vocab.checkConfig(cfg)).not.toThrow();
    expect(vocab.size).toBe(cfg.vocab_size);
    expect(vocab.textEnd).toBeLessThanOrEqual(cfg.vocab_size - 4);
    for (const p of makeProblems({ seed: 7, split: 'eval', count: 20 })) {
      const text = renderChat([
        { role: 'user', content: p.textPrompt },
        { role: 'assistant', content: p.target },
      ]);
      const compact = vocab.toCompact(tok.encode(text));
      expect(Math.max(...compact)).toBeLessThan(vocab.textEnd);
      expect(vocab.decode(compact)).toBe(text);
    }
    expect(vocab.toCompact([tok.tokenToId('<|im_end|>') as number])).toEqual([DEMO_EOS]);
    expect(vocab.toCompact([tok.tokenToId('<|image_pad|>') as number])).toEqual([cfg.image_token_id]);
    expect(vocab.toCompact([-100])).toEqual([-100]);
  });

  it('names the culprit: an unknown token, a too-small vocab, a config pointing elsewhere', async () => {
    const cfg = await loadConfig(path.dirname(DEMO_MODEL_CONFIG));
    const vocab = DemoVocab.build(tok, cfg.vocab_size);
    expect(() => vocab.toCompact(tok.encode(' elephant'))).toThrow(/not in the demo vocabulary/);
    expect(() => DemoVocab.build(tok, 64)).toThrow(/vocab_size 64/);
    expect(() => vocab.checkConfig({ ...cfg, image_token_id: 151655 })).toThrow(
      /image_token_id is 151655, expected 158/,
    );
  });
});

describe('rolloutRows', () => {
  it('left-padded prompt + completion, targets shifted by one, mask on completion predictions', () => {
    const prompts = {
      inputIds: [
        [0, 7, 8],
        [9, 10, 11],
      ],
      attentionMask: [
        [0, 1, 1],
        [1, 1, 1],
      ],
    };
    const r = rolloutRows(prompts, [[20, 2], [21]], [0, 1]);
    expect(r.inputIds).toEqual([
      [0, 7, 8, 20, 2],
      [9, 10, 11, 21, 0],
    ]);
    expect(r.attentionMask).toEqual([
      [0, 1, 1, 1, 1],
      [1, 1, 1, 1, 0],
    ]);
    expect(r.targets).toEqual([
      [7, 8, 20, 2, 0],
      [10, 11, 21, 0, 0],
    ]);
    // position 2 (last prompt token) predicts the first completion token
    expect(r.mask).toEqual([
      [0, 0, 1, 1, 0],
      [0, 0, 1, 0, 0],
    ]);
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
    await initBackend({ backend: 'wasm', log: () => {} });
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
    expect(sft.map((r) => r.step)).toEqual([...Array(opts.sft.steps).keys()]);
    for (const r of sft) expect(Number.isFinite(r.loss) && r.loss > 0).toBe(true);

    const rl = readJsonl(path.join(out, 'rl', 'log.jsonl'));
    expect(rl.map((r) => r.step)).toEqual([...Array(opts.rl.steps).keys()]);
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
      expect(x.reward).toBe(x.finishReason === 'length' ? 0 : gradeDemo(x.completion, x.answer));
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

    for (const stage of ['sft', 'rl']) {
      const dir = path.join(out, 'checkpoints', stage);
      for (const f of ['model.safetensors', 'config.json', 'demo_vocab.json'])
        expect(existsSync(path.join(dir, f))).toBe(true);
    }
    const back = await Qwen2_5_VL.load(path.join(out, 'checkpoints', 'rl'));
    expect(back.config.vocab_size).toBe(160);
    back.dispose();

    const html = readFileSync(path.join(out, 'report', 'index.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('held-out image accuracy, after RL');
    for (const name of ['reward', 'accuracy', 'response_length', 'behaviors', 'sft_loss']) {
      const png = path.join(out, 'report', `${name}.png`);
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(200);
      expect(html).toContain(`alt="${name}"`);
    }
  }, 300_000);
});

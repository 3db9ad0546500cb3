// Eval harness: format detection on literal rows, avg@K / per-subject / per-level arithmetic on literal records,
// verdicts, and two end-to-end runs with the tiny random model (accuracy ~0: the plumbing is what is tested):
// the first 20 MATH500 problems, and 3 MATH-Vision problems whose images are read from ../shared.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { EvalArgs, evalRun } from '../../src/cli/eval.js';
import { readEvalItems, toItem } from '../../src/eval/data.js';
import { type EvalRecord, gradeCompletion, summarizeRecords } from '../../src/eval/harness.js';
import { loadConfig } from '../../src/model/config.js';
import { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { saveWeights } from '../../src/model/weights.js';
import { ROOT, shared } from '../helpers.js';

describe('eval data formats', () => {
  it('detects MATH500, MATH-Vision and MathVerse rows', () => {
    const m = toItem(
      { problem: 'What is $1+1$?', answer: '2', subject: 'Algebra', level: 1, unique_id: 'test/a/1.json' },
      'f:1',
      '/d',
    );
    expect(m).toEqual({
      id: 'test/a/1.json',
      format: 'math500',
      question: 'What is $1+1$?',
      answer: '2',
      subject: 'Algebra',
      level: '1',
    });
    const v = toItem(
      {
        id: 'mathv-9',
        image: 'images/9.jpg',
        question: 'Which?',
        answer: 'B',
        choices: ['$1$', '$2$'],
        level: 3,
        subject: 'logic',
      },
      'f:2',
      '/d',
    );
    expect(v.format).toBe('mathvision');
    expect(v.image).toBe(path.resolve('/d', 'images/9.jpg'));
    expect(v.choices).toEqual(['A', 'B']);
    expect(v.question).toBe('Which?\nChoices:\nA. $1$\nB. $2$');
    const letters = toItem(
      { id: 'x', image: 'i.png', question: 'Q', answer: 'C', choices: ['A', 'B', 'C'] },
      'f:3',
      '/d',
    );
    expect(letters.question).toBe('Q');
    const mv = toItem(
      { id: 'mathverse-to-1', question: 'Q\nChoices:\nA:1', answer: 'A', question_type: 'multi-choice' },
      'f:4',
      '/d',
    );
    expect(mv).toMatchObject({
      format: 'mathverse',
      subject: 'all',
      level: 'all',
      choices: ['A', 'B', 'C', 'D', 'E'],
    });
  });

  it('names the culprit line and field on bad rows', () => {
    expect(() => toItem({ question: 'Q' }, 'data.jsonl:7', '.')).toThrow(/data.jsonl:7: row has no 'answer'/);
    expect(() => toItem({ text: 'Q', answer: '1' }, 'data.jsonl:8', '.')).toThrow(
      /data.jsonl:8: .*'problem'.*'question'/,
    );
  });

  it('reads the shared samples with --limit', async () => {
    const mv = await readEvalItems(shared('data', 'mathverse_testmini_text_only', 'dev.jsonl'), 5);
    expect(mv).toHaveLength(5);
    expect(mv.every((i) => i.format === 'mathverse')).toBe(true);
    const vis = await readEvalItems(shared('data', 'mathvision_testmini', 'dev.jsonl'), 3);
    expect(vis.map((i) => i.id)).toEqual(['mathv-4', 'mathv-5', 'mathv-7']);
    for (const i of vis) expect(existsSync(i.image as string)).toBe(true);
  });
});

describe('scoring', () => {
  const rec = (id: string, subject: string, level: string, correct: boolean): EvalRecord => ({
    id,
    format: 'math500',
    subject,
    level,
    sample: 0,
    answer: '1',
    completion: '',
    extracted: null,
    correct,
    reason: '',
    finishReason: 'stop',
    tokens: 1,
  });

  it('avg@K averages per problem, then over problems; groups by subject and level', () => {
    // a: 2/2, b: 1/2, c: 0/2 -> (1 + 0.5 + 0) / 3
    const rs = [
      rec('a', 'S', '1', true),
      rec('a', 'S', '1', true),
      rec('b', 'S', '2', true),
      rec('b', 'S', '2', false),
      rec('c', 'T', '2', false),
      rec('c', 'T', '2', false),
    ];
    const s = summarizeRecords(rs, 2);
    expect(s.metric).toBe('avg@2');
    expect(s.n).toBe(3);
    expect(s.accuracy).toBeCloseTo(0.5, 12);
    expect(s.bySubject).toEqual({ S: { n: 2, accuracy: 0.75 }, T: { n: 1, accuracy: 0 } });
    expect(s.byLevel).toEqual({ '1': { n: 1, accuracy: 1 }, '2': { n: 2, accuracy: 0.25 } });
    expect(summarizeRecords([rec('a', 'S', '1', true)], 1).metric).toBe('pass@1');
  });

  it('verifies boxed answers and option letters', () => {
    const item = {
      id: 'x',
      format: 'math500' as const,
      question: '',
      answer: '\\frac{1}{2}',
      subject: 's',
      level: '1',
    };
    expect(gradeCompletion(item, 'so \\boxed{0.5}').correct).toBe(true);
    expect(gradeCompletion(item, 'so \\boxed{2}').correct).toBe(false);
    const mc = { ...item, answer: 'C', choices: ['A', 'B', 'C', 'D'] };
    expect(gradeCompletion(mc, 'The answer is \\boxed{C}').correct).toBe(true);
    expect(gradeCompletion(mc, 'The answer is \\boxed{B}').correct).toBe(false);
  });
});

describe('end to end with the tiny random model', () => {
  let dir = '';
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', log: () => {} });
    dir = mkdtempSync(path.join(tmpdir(), 'ovr-eval-'));
    const model = Qwen2_5_VL.init(await loadConfig(path.join(ROOT, 'models', 'tiny')), 0);
    await saveWeights(path.join(dir, 'model'), model.params, model.config, { dtype: 'F32' });
    model.dispose();
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('MATH500, first 20 problems: every completion and verdict saved, accuracy per subject/level', async () => {
    const data = shared('data', 'math500', 'test.jsonl');
    const before = tf.memory().numTensors;
    const args = EvalArgs.parse({
      model: path.join(dir, 'model'),
      data,
      limit: 20,
      maxNewTokens: 3,
      batchSize: 10,
      out: path.join(dir, 'm500'),
    });
    const s = await evalRun(args, () => {});
    expect(tf.memory().numTensors).toBe(before);
    const gold = readFileSync(data, 'utf8')
      .split('\n')
      .slice(0, 20)
      .map((l) => JSON.parse(l));
    const lines = readFileSync(path.join(dir, 'm500', 'completions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(20);
    expect(lines.map((l) => l.id)).toEqual(gold.map((g) => g.unique_id));
    expect(lines.map((l) => l.answer)).toEqual(gold.map((g) => g.answer));
    for (const l of lines) expect(typeof l.correct).toBe('boolean');
    expect(s.n).toBe(20);
    expect(s.metric).toBe('pass@1');
    expect(s.accuracy).toBeLessThanOrEqual(0.1); // a random model
    const subjects = new Set(gold.map((g) => g.subject));
    expect(new Set(Object.keys(s.bySubject))).toEqual(subjects);
    expect(Object.values(s.bySubject).reduce((a, b) => a + b.n, 0)).toBe(20);
    const summary = JSON.parse(readFileSync(path.join(dir, 'm500', 'summary.json'), 'utf8'));
    expect(summary.accuracy).toBe(s.accuracy);
  }, 240_000);

  it('MATH-Vision: reads the images beside the JSONL, avg@2 with sampling', async () => {
    const args = EvalArgs.parse({
      model: path.join(dir, 'model'),
      data: shared('data', 'mathvision_testmini', 'dev.jsonl'),
      limit: 3,
      samples: 2,
      maxNewTokens: 2,
      maxPixels: 28 * 28 * 16,
      out: path.join(dir, 'mv'),
    });
    const s = await evalRun(args, () => {});
    expect(s.metric).toBe('avg@2');
    expect(s.n).toBe(3);
    const lines = readFileSync(path.join(dir, 'mv', 'completions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(6);
    expect(lines.map((l) => `${l.id}/${l.sample}`)).toEqual([
      'mathv-4/0',
      'mathv-4/1',
      'mathv-5/0',
      'mathv-5/1',
      'mathv-7/0',
      'mathv-7/1',
    ]);
  }, 240_000);

  it('a missing image names the file', async () => {
    const bad = path.join(dir, 'bad.jsonl');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(bad, `${JSON.stringify({ id: 'b', image: 'nope.png', question: 'Q', answer: '1' })}\n`);
    const args = EvalArgs.parse({
      model: path.join(dir, 'model'),
      data: bad,
      maxNewTokens: 1,
      out: path.join(dir, 'bad'),
    });
    await expect(evalRun(args, () => {})).rejects.toThrow(/nope\.png/);
  }, 60_000);

  it('refuses a demo checkpoint (compact vocabulary), naming the file that marks it', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const demo = path.join(dir, 'demo-model');
    mkdirSync(demo, { recursive: true });
    writeFileSync(path.join(demo, 'compact_vocab.json'), '{}\n');
    const args = EvalArgs.parse({ model: demo, data: shared('data', 'math500', 'test.jsonl'), limit: 1 });
    await expect(evalRun(args, () => {})).rejects.toThrow(/demo checkpoint.*compact_vocab\.json/);
  });
});

// Evidence on real data: the 232 dev cases (accuracy, zero false positives, per-category table), self-consistency
// on MATH500 / MathVerse / MATH-Vision gold answers, and a digit-mutation false-positive check on MATH500.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { rowOptions } from '../../src/cli/grade.js';
import { verify } from '../../src/reward/verify.js';
import { shared } from '../helpers.js';

const load = (p: string): any[] =>
  fs
    .readFileSync(shared(p), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('reward_cases/dev.jsonl', () => {
  it('accuracy >= 99% with zero false positives', () => {
    const rows = load('data/reward_cases/dev.jsonl');
    const cats = new Map<string, { n: number; fp: number; fn: number }>();
    const misses: string[] = [];
    for (const r of rows) {
      const v = verify(r.gold, r.prediction, rowOptions(r.config));
      const c = cats.get(r.category) ?? { n: 0, fp: 0, fn: 0 };
      c.n++;
      if (v.equal && !r.expected) c.fp++;
      if (!v.equal && r.expected) c.fn++;
      if (v.equal !== r.expected)
        misses.push(`${r.id} [${r.category}] ${r.flag ?? ''} expected ${r.expected}: ${v.reason}`);
      cats.set(r.category, c);
    }
    const lines = [...cats.entries()]
      .sort()
      .map(
        ([k, c]) =>
          `${k.padEnd(22)} ${String(c.n).padStart(3)} ${((100 * (c.n - c.fp - c.fn)) / c.n).toFixed(1).padStart(6)}% FP ${c.fp} FN ${c.fn}`,
      );
    const fp = [...cats.values()].reduce((a, c) => a + c.fp, 0);
    const fn = [...cats.values()].reduce((a, c) => a + c.fn, 0);
    const acc = (rows.length - fp - fn) / rows.length;
    console.log(
      `dev: accuracy ${(100 * acc).toFixed(1)}% (${rows.length - fp - fn}/${rows.length}), FP ${fp}, FN ${fn}`,
    );
    console.log(lines.join('\n'));
    console.log(`misses:\n  ${misses.join('\n  ')}`);
    expect(fp).toBe(0);
    expect(acc).toBeGreaterThanOrEqual(0.99);
  });
});

function selfConsistency(name: string, pairs: [string, string, string][]): void {
  const misses = pairs
    .filter(([, gold, pred]) => !verify(gold, pred).equal)
    .map(([id, gold]) => `${id}: ${gold}`);
  const rate = 1 - misses.length / pairs.length;
  console.log(
    `${name}: ${(100 * rate).toFixed(2)}% (${pairs.length - misses.length}/${pairs.length}); misses: ${misses.join(' | ') || 'none'}`,
  );
  expect(rate).toBeGreaterThanOrEqual(0.995);
}

describe('self-consistency: verify(answer, solution)', () => {
  it('MATH500 gold solution against its own answer', () => {
    const rows = load('data/math500/test.jsonl');
    selfConsistency(
      'math500',
      rows.map((r) => [r.unique_id, r.answer, r.solution]),
    );
  });
  it('MathVerse (text-only) answers as \\boxed{answer}', () => {
    const rows = load('data/mathverse_testmini_text_only/dev.jsonl');
    selfConsistency(
      'mathverse',
      rows.map((r) => [r.id, r.answer, `The answer is $\\boxed{${r.answer}}$.`]),
    );
  });
  it('MATH-Vision answers as \\boxed{answer}', () => {
    const rows = load('data/mathvision_testmini/dev.jsonl');
    selfConsistency(
      'mathvision',
      rows.map((r) => [r.id, r.answer, `The answer is $\\boxed{${r.answer}}$.`]),
    );
  });
});

describe('false-positive probe on real answers', () => {
  it('changing one digit of a MATH500 answer makes it wrong', () => {
    const rows = load('data/math500/test.jsonl');
    const equal: string[] = [];
    let n = 0;
    for (const r of rows) {
      const a: string = r.answer;
      const m = /\d(?!.*\d)/s.exec(a);
      // Units are dropped by design (`15\mbox{ cm}^2` ≡ 15), so a digit inside a unit's exponent is not a change.
      if (!m || /\\mbox|\\text\{\s*(?:cm|inches)/.test(a)) continue;
      const mutated = a.slice(0, m.index) + String((Number(m[0]) + 1) % 10) + a.slice(m.index + 1);
      n++;
      if (verify(a, `The final answer is $\\boxed{${mutated}}$`).equal) equal.push(`${a} ~ ${mutated}`);
    }
    console.log(`digit mutations: ${n}, judged equal: ${equal.length} ${equal.join(' | ')}`);
    expect(equal).toEqual([]);
  });
});

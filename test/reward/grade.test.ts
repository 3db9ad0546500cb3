// `ovr-train grade`: verdict file, one-line summary, accuracy/FP/FN and per-category table on the dev cases.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { gradeCommand, parseGradeArgs } from '../../src/cli/grade.js';
import { main } from '../../src/cli/index.js';
import { shared } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovr-grade-'));

function capture() {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void lines.push(a.join(' ')));
  const err = vi.spyOn(console, 'error').mockImplementation((...a) => void lines.push(a.join(' ')));
  const restore = () => {
    log.mockRestore();
    err.mockRestore();
  };
  return { lines, restore };
}

afterEach(() => vi.restoreAllMocks());

describe('ovr-train grade', () => {
  it('grades dev.jsonl: verdicts file, summary, accuracy, FP/FN, per-category table', async () => {
    const out = path.join(tmp, 'verdicts.jsonl');
    const cap = capture();
    const code = await main(['grade', shared('data/reward_cases/dev.jsonl'), '--out', out]);
    cap.restore();
    console.log(cap.lines.join('\n'));
    expect(code).toBe(0);
    const verdicts = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(verdicts).toHaveLength(232);
    // The fields --help promises (timedOut only on a timeout).
    expect(Object.keys(verdicts[0]).sort()).toEqual(['extracted', 'id', 'ms', 'reason', 'verdict']);
    for (const v of verdicts) expect(v.ms).toBeGreaterThanOrEqual(0);
    expect(verdicts.every((v) => v.ms < 2000)).toBe(true);
    expect(cap.lines[0]).toMatch(/^graded 232: \d+ equal, \d+ not equal, 0 timeouts/);
    const acc = /accuracy ([\d.]+)% .* false positives (\d+), false negatives (\d+)/.exec(cap.lines[1]);
    expect(acc).not.toBeNull();
    expect(Number(acc![1])).toBeGreaterThanOrEqual(99);
    expect(Number(acc![2])).toBe(0);
    expect(cap.lines.some((l) => l.startsWith('tuple_set_list'))).toBe(true);
  });

  it('custom field names and rows without expected', async () => {
    const file = path.join(tmp, 'rows.jsonl');
    fs.writeFileSync(file, `${JSON.stringify({ out: '\\boxed{0.5}', ref: '\\frac12' })}\n\n`);
    const cap = capture();
    const code = await gradeCommand([file, '--pred-field', 'out', '--gold-field', 'ref', '--threads', '1']);
    cap.restore();
    expect(code).toBe(0);
    expect(cap.lines).toHaveLength(1);
    expect(cap.lines[0]).toMatch(/^graded 1: 1 equal, 0 not equal/);
  });

  it('--help, bad flags and bad files give clear messages', async () => {
    const cap = capture();
    expect(await gradeCommand(['--help'])).toBe(0);
    expect(await gradeCommand(['x.jsonl', '--frobnicate', '1'])).toBe(2);
    expect(await gradeCommand([path.join(tmp, 'missing.jsonl')])).toBe(2);
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, '{"prediction": "1"}\n');
    expect(await gradeCommand([bad])).toBe(2);
    cap.restore();
    const text = cap.lines.join('\n');
    expect(text).toMatch(/--pred-field/);
    expect(text).toMatch(/unknown flag --frobnicate/);
    expect(text).toMatch(/no such file/);
    expect(text).toMatch(/bad\.jsonl:1 needs string fields 'prediction' and 'gold'/);
    expect(() => parseGradeArgs(['a', '--threads', '0'])).toThrow(/--threads must be a positive integer/);
  });
});

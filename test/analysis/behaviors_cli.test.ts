import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { behaviorsCommand, formatRatesTable, ratesByStep } from '../../src/cli/behaviors.js';
import { main } from '../../src/cli/index.js';
import { capture as run } from '../cli/run.js';

const ROLLOUTS = [
  { step: 2, completion: 'Wait, let me look at the image again.', reward: 1 },
  { step: 1, completion: 'First, count. Check: 3.' },
  { step: 1, completion: 'The answer is 3.' },
  { step: 2, completion: ['Working backwards: 8 - 5 = 3.', 'Done.'] },
];
const jsonl = (rows: object[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

function tmpFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'ovr-beh-')), 'rollouts.jsonl');
  writeFileSync(file, text);
  return file;
}

afterEach(() => vi.restoreAllMocks());

describe('ratesByStep', () => {
  it('groups by step (sorted), flattens arrays, and computes rates', () => {
    const rows = ratesByStep(jsonl(ROLLOUTS), 'completion', 'step');
    expect(rows.map((r) => [r.step, r.n])).toEqual([
      [1, 2],
      [2, 3],
    ]);
    expect(rows[0].rates).toEqual({
      backtracking: 0,
      verification: 0.5,
      subgoal: 0.5,
      backwardChaining: 0,
      visualReflection: 0,
    });
    expect(rows[1].rates.backtracking).toBeCloseTo(1 / 3, 12);
    expect(rows[1].rates.visualReflection).toBeCloseTo(1 / 3, 12);
    expect(rows[1].rates.backwardChaining).toBeCloseTo(1 / 3, 12);
  });

  it('uses one group "all" when no row has a step, and other field names', () => {
    const rows = ratesByStep(jsonl([{ text: 'Wait.' }, { text: 'ok' }]), 'text', 'iter');
    expect(rows).toEqual([{ step: 'all', n: 2, rates: expect.objectContaining({ backtracking: 0.5 }) }]);
  });

  it('names the file and line of bad input', () => {
    expect(() =>
      ratesByStep('{"step":1,"completion":"a"}\nnot json\n', 'completion', 'step', 'r.jsonl'),
    ).toThrow(/r\.jsonl:2: not valid JSON/);
    expect(() => ratesByStep(jsonl([{ step: 1, text: 'a' }]), 'completion', 'step', 'r.jsonl')).toThrow(
      /r\.jsonl:1: field 'completion' is not a string or string\[\]; pass --text-field/,
    );
    expect(() => ratesByStep(jsonl([{ step: 'x', completion: 'a' }]), 'completion', 'step')).toThrow(
      /field 'step' is "x", expected a number/,
    );
    expect(() =>
      ratesByStep(jsonl([{ step: 1, completion: 'a' }, { completion: 'b' }]), 'completion', 'step'),
    ).toThrow(/1 of 2 rows lack 'step'/);
  });

  it('formats a fixed-width table', () => {
    const table = formatRatesTable(ratesByStep(jsonl(ROLLOUTS), 'completion', 'step'));
    const lines = table.split('\n');
    expect(lines[0].split(/\s+/).filter(Boolean)).toEqual([
      'step',
      'n',
      'backtracking',
      'verification',
      'subgoal',
      'backwardChaining',
      'visualReflection',
    ]);
    expect(lines[1].trim().split(/\s+/)).toEqual(['1', '2', '0.000', '0.500', '0.500', '0.000', '0.000']);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});

describe('ovr-train behaviors', () => {
  it('prints JSON through the CLI table', async () => {
    const file = tmpFile(jsonl(ROLLOUTS));
    const r = await run(() => main(['behaviors', file, '--json']));
    expect(r.code).toBe(0);
    const parsed = JSON.parse(r.out);
    expect(parsed.map((x: { step: number }) => x.step)).toEqual([1, 2]);
    expect(parsed[0].rates.verification).toBe(0.5);
  });

  it('prints a table with custom field names', async () => {
    const file = tmpFile(jsonl([{ it: 0, text: 'First, add.' }]));
    const r = await run(() => behaviorsCommand([file, '--text-field', 'text', '--step-field', 'it']));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\s*step\s+n\s+backtracking/);
    expect(r.out.split('\n')[1].trim().split(/\s+/)).toEqual([
      '0',
      '1',
      '0.000',
      '0.000',
      '1.000',
      '0.000',
      '0.000',
    ]);
  });

  it('usage errors return 2; --help returns 0; a missing file throws naming it', async () => {
    expect((await run(() => behaviorsCommand([]))).code).toBe(2);
    expect((await run(() => behaviorsCommand(['--json', 'x.jsonl']))).err).toContain(
      'the rollouts file comes first',
    );
    const typo = await run(() => behaviorsCommand(['x.jsonl', '--text-feld', 'a']));
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('text-field');
    const help = await run(() => behaviorsCommand(['--help']));
    expect(help.code).toBe(0);
    expect(help.out).toContain('--text-field');
    await expect(behaviorsCommand(['/nonexistent/r.jsonl'])).rejects.toThrow(
      /cannot read '\/nonexistent\/r\.jsonl'/,
    );
  });
});

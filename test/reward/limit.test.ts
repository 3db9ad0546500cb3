// The hard time limit of every reward entry point (issue #19 item 3): `verify`, `mathRewardSync`, `mathReward`
// without a pool and the pool itself stop within the limit (+ slack) on inputs that used to block for 27 s to
// minutes; the next call after a timeout is answered by a fresh worker; the limit is configurable and validated.
// Also the unclosed-box false positive and non-ASCII digits.
import { describe, expect, it } from 'vitest';
import { mathReward, mathRewardSync } from '../../src/reward/reward.js';
import { verify } from '../../src/reward/verify.js';

const LIMIT = 1000;
const SLACK = 600; // Atomics wake-up + terminate on a loaded 2-core machine
const pm = (n: number) => `x = ${Array.from({ length: n }, (_, i) => `\\pm ${i + 2}`).join(' ')}`;
// Not caught by any cheap guard: a double sum of a million sine terms blocks the CAS for minutes.
const STUCK = '\\boxed{\\sum_{k=1}^{999}\\sum_{j=1}^{999} \\sin(jk)}';

describe('in-process time limit (synchronous worker)', () => {
  it('verify() returns a timeout verdict within the limit and the next call works', () => {
    verify('1', '1'); // warm the worker: the limit counts from a warm worker
    const t0 = performance.now();
    const v = verify('1', STUCK, { timeLimitMs: LIMIT });
    const ms = performance.now() - t0;
    console.log(`stuck sum: ${ms.toFixed(0)} ms, ${v.reason}`);
    expect(v.timedOut).toBe(true);
    expect(v.equal).toBe(false);
    expect(v.reason).toBe(`timeout after ${LIMIT} ms`);
    expect(ms).toBeLessThan(LIMIT + SLACK);
    const after = verify('\\frac12', '\\boxed{0.5}');
    expect(after.equal).toBe(true);
    expect(after.timedOut).toBeUndefined();
  });

  it.each([
    ['ten \\pm (27 s before)', '1', pm(10)],
    ['twelve \\pm (> 5 min before)', '1', pm(12)],
    ['\\binom{1000000}{500000} (34 s before)', '1', '\\boxed{\\binom{1000000}{500000}}'],
    ['power tower', '9^{9^9}', '\\boxed{9^{9^9}+1}'],
    ['1 MB of digits', '1', `\\boxed{${'1'.repeat(1_000_000)}}`],
  ])('verify() is bounded on %s', (name, gold, pred) => {
    verify('1', '1');
    const t0 = performance.now();
    const v = verify(gold, pred, { timeLimitMs: LIMIT });
    const ms = performance.now() - t0;
    console.log(`${name}: ${ms.toFixed(0)} ms, ${v.reason}`);
    expect(v.equal).toBe(false);
    expect(ms).toBeLessThan(LIMIT + SLACK);
  });

  it('mathRewardSync and mathReward without a pool go through the same limit', async () => {
    const c = { completion: STUCK, gold: '1', format: 'boxed' as const };
    verify('1', '1');
    let t0 = performance.now();
    expect(mathRewardSync(c, { timeLimitMs: LIMIT })).toBe(0);
    expect(performance.now() - t0).toBeLessThan(LIMIT + SLACK);
    verify('1', '1');
    t0 = performance.now();
    expect(await mathReward(c, { verify: { timeLimitMs: LIMIT } })).toBe(0);
    expect(performance.now() - t0).toBeLessThan(LIMIT + SLACK);
  });

  it('\\pm within the expansion limit still works', () => {
    expect(
      verify(
        '\\{1+\\sqrt2+\\sqrt3, 1+\\sqrt2-\\sqrt3, 1-\\sqrt2+\\sqrt3, 1-\\sqrt2-\\sqrt3\\}',
        '1 \\pm \\sqrt2 \\pm \\sqrt3',
      ).equal,
    ).toBe(true);
    expect(verify('\\{1+\\sqrt2, 1-\\sqrt2\\}', '1 \\pm \\sqrt2 \\pm \\sqrt3').equal).toBe(false);
  });

  it('rejects a bad limit, naming it', () => {
    expect(() => verify('1', '1', { timeLimitMs: 0 })).toThrow(/timeLimitMs must be a positive number/);
    expect(() => verify('1', '1', { timeLimitMs: Number.NaN })).toThrow(/timeLimitMs/);
  });
});

describe('hostile answers from issue #19', () => {
  it.each([1, 3, 50, 500, 5000])('an unclosed \\boxed{ with %i braces is no answer (never 1)', (n) => {
    const v = verify('1', `\\boxed${'{'.repeat(n)}1`);
    expect(v.equal).toBe(false);
    expect(v.extracted).toBeNull();
  });
  it('an unclosed last box does not fall back to an earlier one', () => {
    expect(verify('2', '\\boxed{2}, no wait: \\boxed{{3').equal).toBe(false);
    expect(verify('2', 'so \\boxed{2}.').equal).toBe(true);
  });
  it.each([
    ['full-width', '12', '\\boxed{１２}'],
    ['full-width prose', '12', 'The answer is １２。'],
    ['Arabic-Indic', '12', '\\boxed{١٢}'],
    ['Arabic-Indic decimal separator', '1.5', '\\boxed{١٫٥}'],
    ['Extended Arabic-Indic (Persian)', '47', '\\boxed{۴۷}'],
    ['Devanagari', '305', '\\boxed{३०५}'],
    ['full-width gold', '３', '\\boxed{3}'],
  ])('%s digits are read as digits', (_n, gold, pred) => {
    const v = verify(gold, pred);
    expect(v.reason).not.toMatch(/empty/);
    expect(v.equal).toBe(true);
  });
  it('non-ASCII digits keep their value (no false positive)', () => {
    expect(verify('13', '\\boxed{١٢}').equal).toBe(false);
    expect(verify('12', '\\boxed{１３}').equal).toBe(false);
  });
});

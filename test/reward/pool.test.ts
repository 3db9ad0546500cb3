// VerifierPool: warm workers, hard per-case time limit, respawn after a timeout, close(); and the seeded fuzz run
// (>= 10,000 adversarial pairs by default, 100,000 with OVR_FUZZ=big): zero crashes, every case within budget.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierPool } from '../../src/reward/pool.js';
import { mathRewardBatch, scoreCompletion } from '../../src/reward/reward.js';
import { fuzzPairs } from './fuzz.js';

const BUDGET = 2000;
const SLACK = 500; // timer + message latency on a loaded 2-core machine
let pool: VerifierPool;

beforeAll(async () => {
  pool = new VerifierPool({ threads: 2, budgetMs: BUDGET });
  await pool.ready();
});
afterAll(async () => {
  await pool?.close();
});

describe('VerifierPool', () => {
  it('verifies in warm workers (worker started from the .ts source under vitest)', async () => {
    const v = await pool.verify('\\frac12', 'The answer is $\\boxed{0.5}$');
    expect(v.equal).toBe(true);
    expect(v.ms).toBeLessThan(BUDGET);
    const many = await pool.verifyMany([
      { gold: '2', prediction: '\\boxed{2}' },
      { gold: '2', prediction: '\\boxed{3}' },
      { gold: 'C', prediction: 'The answer is (C).' },
    ]);
    expect(many.map((x) => x.equal)).toEqual([true, false, true]);
  });

  it.each([
    ['power tower', '9^{9^9}', '\\boxed{9^{9^9}+1}'],
    ['huge sum', '\\frac{n}{2}', '\\boxed{\\sum_{k=1}^{10^9}k}'],
    ['1 MB of digits', '1', `\\boxed{${'1'.repeat(1_000_000)}}`],
    ['10^{10^{10^{10}}}', '10^{10^{10^{10}}}', '\\boxed{10^{10^{10^{10}}}+1}'],
    ['10,000 nested braces', '1', `\\boxed{${'{'.repeat(10_000)}1${'}'.repeat(10_000)}}`],
    ['regex bomb', '2', `${'$'.repeat(300_000)}${'\\['.repeat(100_000)}${' 1,'.repeat(100_000)}`],
    ['1 MB a+a+…', 'a', `\\boxed{${'a+'.repeat(500_000)}a}`],
  ])('returns within budget on %s', async (_name, gold, prediction) => {
    const t0 = performance.now();
    const v = await pool.verify(gold, prediction);
    const ms = performance.now() - t0;
    console.log(`${_name}: ${ms.toFixed(0)} ms, equal ${v.equal}, ${v.reason}`);
    expect(v.equal).toBe(false);
    expect(ms).toBeLessThan(BUDGET + SLACK);
  });

  it('terminates a stuck worker, reports the timeout and respawns', async () => {
    const small = new VerifierPool({ threads: 1, budgetMs: 300 });
    try {
      await small.ready();
      // A double sum of a million sine terms: not caught by the cheap guards, blocks the CAS for minutes.
      const v = await small.verify('1', '\\boxed{\\sum_{k=1}^{999}\\sum_{j=1}^{999} \\sin(jk)}');
      expect(v.timedOut).toBe(true);
      expect(v.reason).toMatch(/timeout after 300 ms/);
      expect(small.stats.timeouts).toBe(1);
      expect(small.stats.respawns).toBe(1);
      const after = await small.verify('2', '\\boxed{2}'); // the fresh worker answers
      expect(after.equal).toBe(true);
    } finally {
      await small.close();
    }
    await expect(small.verify('1', '1')).rejects.toThrow(/after close/);
  });

  it('fails loudly, instead of respawning forever, when workers cannot start', async () => {
    const doomed = new VerifierPool({ threads: 1, maxMemoryMb: 16 }); // every worker dies of OOM loading the CAS
    const v = await doomed.verify('1', '1');
    expect(v).toMatchObject({ equal: false, reason: expect.stringMatching(/workers fail to start/) });
    await expect(doomed.verify('1', '1')).rejects.toThrow(/workers fail to start/);
    await doomed.close();
  });

  it('rejects bad options and arguments with a clear message', () => {
    expect(() => new VerifierPool({ threads: 0 })).toThrow(/threads must be a positive integer/);
    expect(() => new VerifierPool({ budgetMs: -1 })).toThrow(/budgetMs/);
    expect(() => new VerifierPool({ maxMemoryMb: 1 })).toThrow(/maxMemoryMb must be >= 16/);
    return expect(pool.verify(1 as any, '1')).rejects.toThrow(/must be strings/);
  });
});

describe('math reward through the pool', () => {
  it('ORZ format: last \\boxed{} inside <answer>; truncation scores 0', async () => {
    const ok = '<think>2+2</think> <answer>The answer is $\\boxed{4}$</answer>';
    expect((await scoreCompletion({ completion: ok, gold: '4' }, { pool })).reward).toBe(1);
    const truncated = await scoreCompletion({ completion: ok, gold: '4', finishReason: 'length' }, { pool });
    expect(truncated).toMatchObject({ reward: 0, reason: expect.stringMatching(/truncated/) });
    const noTag = await scoreCompletion({ completion: 'The answer is $\\boxed{4}$', gold: '4' }, { pool });
    expect(noTag).toMatchObject({ reward: 0, reason: expect.stringMatching(/answer>/) });
    const noBox = await scoreCompletion({ completion: '<answer>4</answer>', gold: '4' }, { pool });
    expect(noBox.reward).toBe(0);
    expect(
      (await scoreCompletion({ completion: '<answer>4</answer>', gold: '4', format: 'any' }, { pool }))
        .reward,
    ).toBe(1);
  });

  it('TRL-style batch: null without a gold answer, one reward per completion', async () => {
    const r = await mathRewardBatch(
      ['\\boxed{1}', '\\boxed{2}', '\\boxed{3}', 'no box 4'],
      ['1', null, '4', '4'],
      { pool, format: 'boxed', finishReasons: ['stop', 'stop', 'stop', 'stop'] },
    );
    expect(r).toEqual([1, null, 0, 0]);
    const reasons: string[] = [];
    await mathRewardBatch(['no box'], ['4'], {
      pool,
      format: 'boxed',
      onScore: (i, s) => reasons.push(`${i}:${s.reason}`),
    });
    expect(reasons).toEqual(['0:no \\boxed{}']);
    await expect(mathRewardBatch(['a'], [], { pool })).rejects.toThrow(/1 completions but 0 golds/);
  });
});

describe('fuzz (seeded)', () => {
  const big = process.env.OVR_FUZZ === 'big';
  const N = big ? 100_000 : 10_000;
  it(`${N} adversarial pairs: zero crashes, every case within budget`, async () => {
    const pairs = fuzzPairs(N, 0);
    const before = { ...pool.stats };
    const t0 = performance.now();
    const verdicts = await pool.verifyMany(pairs);
    const seconds = (performance.now() - t0) / 1000;
    const crashes = pool.stats.crashes - before.crashes;
    const errors = verdicts.filter((v) => v.reason.startsWith('error:') || v.reason.startsWith('worker'));
    const timeouts = verdicts.filter((v) => v.timedOut).length;
    const worst = Math.max(...verdicts.map((v) => v.ms ?? 0));
    console.log(
      `fuzz: ${N} pairs in ${seconds.toFixed(1)} s (${(N / seconds).toFixed(0)}/s), crashes ${crashes}, errors ${errors.length}, timeouts ${timeouts}, worst ${worst.toFixed(0)} ms, equal ${verdicts.filter((v) => v.equal).length}`,
    );
    expect(verdicts).toHaveLength(N);
    expect(crashes).toBe(0);
    expect(errors.map((v) => v.reason)).toEqual([]);
    expect(worst).toBeLessThan(BUDGET + SLACK);
    expect(timeouts).toBeLessThanOrEqual(N / 100); // legitimate verdicts for junk that keeps the CAS busy
  }, 600_000);
});

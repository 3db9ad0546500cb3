// The generated corpus (corpus.ts: rewrites that must be equal, near-misses that must not, for every MATH500 /
// MATH-Vision / MathVerse gold answer): >= 99% accuracy with zero false positives. The default run checks a
// deterministic 1-in-8 sample; OVR_SLOW=1 runs all of it. Cases go through the worker pool (2 threads).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierPool } from '../../src/reward/pool.js';
import { buildCorpus, type CorpusCase, sampleCorpus } from './corpus.js';

const SLOW = process.env.OVR_SLOW === '1';
let pool: VerifierPool;
beforeAll(async () => {
  pool = new VerifierPool({ threads: 2 });
  await pool.ready();
});
afterAll(async () => {
  await pool?.close();
});

describe('generated corpus', () => {
  it('has thousands of labelled cases from all three datasets, both labels, many rules', () => {
    const all = buildCorpus();
    expect(all.length).toBeGreaterThan(5000);
    expect(new Set(all.map((c) => c.dataset))).toEqual(new Set(['math500', 'mathvision', 'mathverse']));
    expect(all.filter((c) => !c.expected).length).toBeGreaterThan(1500);
    expect(new Set(all.map((c) => c.rule.split('/')[1])).size).toBeGreaterThan(30);
    expect(buildCorpus()).toEqual(all); // deterministic
  });

  it(`${SLOW ? 'all cases' : '1-in-8 sample'}: >= 99% with zero false positives`, async () => {
    const cases: CorpusCase[] = SLOW ? buildCorpus() : sampleCorpus(buildCorpus(), 8);
    const verdicts = await Promise.all(cases.map((c) => pool.verify(c.gold, c.prediction)));
    const wrong = cases.map((c, i) => ({ c, v: verdicts[i] })).filter(({ c, v }) => v.equal !== c.expected);
    const fp = wrong.filter(({ c }) => !c.expected);
    const acc = 1 - wrong.length / cases.length;
    console.log(
      `corpus: ${cases.length} cases, accuracy ${(100 * acc).toFixed(2)}%, FP ${fp.length}, FN ${wrong.length - fp.length}`,
    );
    for (const { c, v } of wrong.slice(0, 20)) console.log(`  ${c.rule} gold ${c.gold} | ${v.reason}`);
    expect(verdicts.filter((v) => v.timedOut)).toEqual([]);
    expect(fp.map(({ c }) => `${c.id}: ${c.prediction}`)).toEqual([]);
    expect(acc).toBeGreaterThanOrEqual(0.99);
  });
});

import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  argmax,
  kthLargest,
  nucleus,
  QWEN_REAL_VOCAB,
  StopChecker,
  sampleNext,
  sampleRow,
  sampleRows,
} from '../../src/model/sampling.js';
import { Rng } from '../../src/util/rng.js';
import { useTestBackend } from '../backend/select.js';
import { expectClose } from '../helpers.js';

beforeAll(async () => {
  await useTestBackend('cpu');
});

/** Counts of the ids drawn n times from one row. */
function draw(
  row: number[],
  opts: Parameters<typeof sampleRow>[1],
  n: number,
  seed = 0,
): Map<number, number> {
  const rng = new Rng(seed);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const { id } = sampleRow(row, opts, rng);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Pearson chi-square of observed counts against expected probabilities. */
function chiSquare(counts: Map<number, number>, probs: number[], n: number): number {
  let chi = 0;
  probs.forEach((p, id) => {
    const e = p * n;
    if (e > 0) chi += ((counts.get(id) ?? 0) - e) ** 2 / e;
  });
  return chi;
}

const logOf = (ps: number[]): number[] => ps.map(Math.log);

describe('greedy', () => {
  it('takes the argmax (lowest id on ties) and reports log softmax(logits) at T = 1', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    const r = sampleRow([1, 2, 3], { greedy: true }, new Rng(0));
    expect(r.id).toBe(2);
    // 3 - log(e + e^2 + e^3), by hand
    expectClose([r.logprob], [-0.40760596444437], 1e-12, 'greedy logprob');
  });

  it('temperature 0 is greedy and draws no random numbers', () => {
    const rng = new Rng(5);
    const before = rng.getState();
    expect(sampleRow([0.1, -2, 0.3, 0.2], { temperature: 0 }, rng).id).toBe(2);
    expect(rng.getState()).toEqual(before);
  });

  it('T -> 0 sampling equals greedy on random rows', () => {
    const g = new Rng(1);
    const rng = new Rng(2);
    for (let k = 0; k < 50; k++) {
      const row = Array.from({ length: 40 }, () => 3 * g.normal());
      expect(sampleRow(row, { temperature: 1e-4 }, rng).id).toBe(argmax(row));
    }
  });
});

describe('top-p (nucleus)', () => {
  const probs = [0.05, 0.5, 0.25, 0.15, 0.05];

  it('keeps the smallest most-probable set reaching p, at least one id', () => {
    expect(nucleus(probs, 0.7)).toEqual([1, 2]);
    expect(nucleus(probs, 0.76)).toEqual([1, 2, 3]);
    expect(nucleus(probs, 0.1)).toEqual([1]);
    expect(nucleus(probs, 1)).toEqual([0, 1, 2, 3, 4]);
    // ties rank the lower id first: 0 and 4 both 0.05, only one is needed for 0.95
    expect(nucleus(probs, 0.95)).toEqual([0, 1, 2, 3]);
  });

  it('finds the nucleus among tiny probabilities too (threshold fallback)', () => {
    const p = new Array(1000).fill(1 / 1000);
    expect(nucleus(p, 0.5).length).toBe(500);
    expect(nucleus(p, 0.5)[499]).toBe(499);
  });

  it('samples only inside the nucleus, with renormalised frequencies', () => {
    const n = 6000;
    const counts = draw(logOf(probs), { topP: 0.7 }, n, 3);
    expect([...counts.keys()].sort()).toEqual([1, 2]);
    const chi = chiSquare(counts, [0, 2 / 3, 1 / 3, 0, 0], n);
    console.log(`top-p 0.7 chi-square (1 dof): ${chi.toFixed(3)}`);
    expect(chi).toBeLessThan(10.83); // p = 0.001
  });
});

describe('top-k', () => {
  it('kthLargest selects the k-th largest value, duplicates included', () => {
    expect(kthLargest([1, 3, 2, 2, 0], 1)).toBe(3);
    expect(kthLargest([1, 3, 2, 2, 0], 2)).toBe(2);
    expect(kthLargest([1, 3, 2, 2, 0], 3)).toBe(2);
    expect(kthLargest([1, 3, 2, 2, 0], 5)).toBe(0);
    expect(kthLargest([-Infinity, 4, -Infinity], 2)).toBe(-Infinity);
  });

  it('keeps ids tied with the k-th score (HF semantics)', () => {
    const row = [1, 3, 2, 2, 0];
    expect([...draw(row, { topK: 2 }, 3000).keys()].sort()).toEqual([1, 2, 3]);
    expect([...draw(row, { topK: 1 }, 200).keys()]).toEqual([1]);
    expect([...draw(row, { topK: 4 }, 3000).keys()].sort()).toEqual([0, 1, 2, 3]);
  });

  it('applies before top-p (top-p on the top-k renormalised distribution)', () => {
    // probs 0.4 0.3 0.2 0.1 -> top-2 gives 4/7, 3/7; top-p 0.5 on that keeps only id 0
    const row = logOf([0.4, 0.3, 0.2, 0.1]);
    expect([...draw(row, { topK: 2, topP: 0.5 }, 500).keys()]).toEqual([0]);
    expect([...draw(row, { topK: 3, topP: 0.6 }, 2000).keys()].sort()).toEqual([0, 1]);
  });
});

describe('sampling distribution', () => {
  it('empirical frequencies match softmax(logits / T) (chi-square, seeded)', () => {
    const logits = [0.3, -1.2, 1.5, 0.0, 2.1];
    for (const T of [1, 0.7, 2]) {
      const e = logits.map((x) => Math.exp(x / T));
      const z = e.reduce((a, b) => a + b, 0);
      const probs = e.map((x) => x / z);
      const n = 20000;
      const chi = chiSquare(draw(logits, { temperature: T }, n, 11), probs, n);
      console.log(`T=${T} chi-square (4 dof): ${chi.toFixed(3)}`);
      expect(chi).toBeLessThan(18.47); // p = 0.001
    }
  });

  it('returns log softmax(logits / T) of the unmodified distribution, whatever top-k/top-p/penalty keep', () => {
    const logits = [1, 2, 0.5, -1];
    const T = 0.5;
    const lse = Math.log(logits.reduce((a, x) => a + Math.exp(x / T), 0));
    const r = sampleRow(logits, { temperature: T, topK: 1, repetitionPenalty: 1.5 }, new Rng(0), [1]);
    expect(r.id).toBe(1);
    expectClose([r.logprob], [2 / T - lse], 1e-12, 'unmodified logprob');
    // the cap does not renormalise the reported log-prob either
    const c = sampleRow([5, 1, 9], { temperature: 1, allowedVocab: 2, topK: 1 }, new Rng(0));
    expect(c.id).toBe(0);
    expectClose(
      [c.logprob],
      [5 - Math.log(Math.exp(5) + Math.exp(1) + Math.exp(9))],
      1e-12,
      'capped logprob',
    );
  });

  it('is reproducible for a seed (incl. 0) and differs across seeds', () => {
    const g = new Rng(9);
    const rows = Array.from({ length: 4 }, () => Array.from({ length: 30 }, () => g.normal()));
    const run = (seed: number) => {
      const rng = new Rng(seed).split('sampling');
      return Array.from(
        { length: 20 },
        () => sampleRows(rows, { temperature: 1.3, topP: 0.9 }, rng).ids,
      ).flat();
    };
    expect(run(0)).toEqual(run(0));
    expect(run(0)).not.toEqual(run(1));
  });

  it('never picks ids >= allowedVocab', () => {
    const row = new Array(QWEN_REAL_VOCAB + 3).fill(0);
    row[QWEN_REAL_VOCAB + 1] = 50;
    row[7] = 5;
    expect(sampleRow(row, { greedy: true, allowedVocab: QWEN_REAL_VOCAB }, new Rng(0)).id).toBe(7);
    const small = [0, 0, 0, 10, 10];
    const counts = draw(small, { allowedVocab: 3 }, 300);
    expect([...counts.keys()].every((id) => id < 3)).toBe(true);
  });

  it('applies the HF repetition penalty (divide positive, multiply negative) over the history', () => {
    // with penalty 2 on ids 0 and 3: [2, 1.9, -1, -0.5] -> [1, 1.9, -1, -1]
    expect(
      sampleRow([2, 1.9, -1, -0.5], { greedy: true, repetitionPenalty: 2 }, new Rng(0), [0, 3, 0]).id,
    ).toBe(1);
    expect(sampleRow([2, 1.9, -1, -0.5], { greedy: true, repetitionPenalty: 2 }, new Rng(0), []).id).toBe(0);
    expect(sampleRow([-2, -1.9, -3], { greedy: true, repetitionPenalty: 2 }, new Rng(0), [1]).id).toBe(0);
  });

  it('rejects bad options and bad logits with a clear message', () => {
    const rng = new Rng(0);
    expect(() => sampleRow([1, 2], { topP: 0 }, rng)).toThrow(/topP must be in \(0, 1\]/);
    expect(() => sampleRow([1, 2], { temperature: -1 }, rng)).toThrow(/temperature/);
    expect(() => sampleRow([1, 2], { topK: 1.5 }, rng)).toThrow(/topK/);
    expect(() => sampleRow([1, Number.NaN], {}, rng)).toThrow(/NaN at id 1/);
    expect(() => sampleRow([-Infinity, -Infinity], {}, rng)).toThrow(/-Infinity/);
    expect(() => sampleRows([[1]], {}, rng, [[], []])).toThrow(/history has 2 rows/);
  });
});

describe('sampleNext (tensor)', () => {
  it('matches the host variant and leaks no tensor', async () => {
    const g = new Rng(4);
    const rows = Array.from({ length: 3 }, () => Array.from({ length: 16 }, () => 2 * g.normal()));
    const logits = tf.tensor2d(rows);
    const before = tf.memory().numTensors;
    const a = await sampleNext(logits, { temperature: 0.8, topP: 0.95 }, new Rng(7));
    expect(tf.memory().numTensors).toBe(before);
    const b = sampleRows(
      rows.map((r) => Float32Array.from(r)),
      { temperature: 0.8, topP: 0.95 },
      new Rng(7),
    );
    expect(a.ids).toEqual(b.ids);
    expectClose(a.logprobs, b.logprobs, 0, 'tensor vs host logprobs');
    logits.dispose();
    await expect(sampleNext(tf.zeros([2]), {}, new Rng(0))).rejects.toThrow(/must be \[B, V\]/);
  });
});

describe('StopChecker', () => {
  it('stops on EOS (kept in the length), on the budget, and ignores finished rows', () => {
    const s = new StopChecker(3, { maxNewTokens: 3, eosIds: [9] });
    expect(s.push([1, 9, 1])).toBe(false);
    expect(s.finishReasons).toEqual([null, 'stop', null]);
    expect(s.push([2, 1, 9])).toBe(false);
    expect(s.push([9, 5, 4])).toBe(true);
    expect(s.finishReasons).toEqual(['stop', 'stop', 'stop']);
    expect(s.lengths).toEqual([3, 1, 2]);
    const t = new StopChecker(1, { maxNewTokens: 2, eosIds: [9] });
    t.push([1]);
    expect(t.push([2])).toBe(true);
    expect(t.finishReasons).toEqual(['length']);
  });

  it('matches stop strings across token boundaries and records where the match ends', () => {
    const s = new StopChecker(2, { maxNewTokens: 10, stopStrings: ['</answer>'] });
    s.push([1, 1], ['<answer>4', 'x']);
    s.push([1, 1], ['</ans', 'y']);
    expect(s.allDone).toBe(false);
    s.push([1, 1], ['wer> tail', 'z']);
    expect(s.finishReasons).toEqual(['stop', null]);
    expect(s.texts[0].slice(0, s.stopTextEnd[0])).toBe('<answer>4</answer>');
    expect(s.stopTextEnd[1]).toBe(-1);
    expect(() => s.push([1, 1])).toThrow(/decoded text piece per row/);
  });

  it('prefers stop over length on the last token and validates its options', () => {
    const s = new StopChecker(1, { maxNewTokens: 1, eosIds: [3] });
    s.push([3]);
    expect(s.finishReasons).toEqual(['stop']);
    expect(() => new StopChecker(1, { maxNewTokens: 0 })).toThrow(/maxNewTokens/);
    expect(() => new StopChecker(1, { maxNewTokens: 1, stopStrings: [''] })).toThrow(/non-empty/);
  });
});

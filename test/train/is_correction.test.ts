// importanceWeights on literal arrays: each mode's weights computed by hand, statistics, and the errors.
import { describe, expect, it } from 'vitest';
import { importanceWeights } from '../../src/train/is_correction.js';

const lp = [[-1, -2, -0.5], [-3]];
const lq = [[-1, -2.5, -0.2], [-1]]; // d = [0, 0.5, -0.3], [-2]
const close = (a: number[][], b: number[][]) => {
  a.forEach((r, i) => {
    r.forEach((x, t) => {
      expect(x).toBeCloseTo(b[i][t], 12);
    });
  });
};

describe('importanceWeights', () => {
  it('token_truncate: min(exp(d), cap)', () => {
    const r = importanceWeights(lp, lq, { mode: 'token_truncate', cap: 1.5 });
    close(r.weights, [[1, 1.5, Math.exp(-0.3)], [Math.exp(-2)]]);
    expect(r.correctedFraction).toBe(1 / 4);
    expect(r.meanAbsDiff).toBeCloseTo((0 + 0.5 + 0.3 + 2) / 4, 12);
    expect(r.maxAbsDiff).toBeCloseTo(2, 12);
    const k3 = [0, 0.5, -0.3, -2].reduce((a, d) => a + Math.exp(d) - 1 - d, 0) / 4;
    expect(r.klEstimate).toBeCloseTo(k3, 12);
  });
  it('token_mask: 1 where exp(d) <= cap, else 0', () => {
    close(importanceWeights(lp, lq, { mode: 'token_mask', cap: 1.5 }).weights, [[1, 0, 1], [1]]);
  });
  it('sequence modes: one ratio exp(sum d) per row', () => {
    // row 0: exp(0.2) = 1.2214; row 1: exp(-2)
    close(importanceWeights(lp, lq, { mode: 'sequence_truncate', cap: 1.1 }).weights, [
      [1.1, 1.1, 1.1],
      [Math.exp(-2)],
    ]);
    close(importanceWeights(lp, lq, { mode: 'sequence_mask', cap: 1.1 }).weights, [[0, 0, 0], [1]]);
    const r = importanceWeights(lp, lq, { mode: 'sequence_mask', cap: 3 });
    close(r.weights, [[1, 1, 1], [1]]);
    expect(r.correctedFraction).toBe(0);
  });
  it('identical log-probs: weights 1, mismatch 0; empty rows are fine', () => {
    const r = importanceWeights([[-1, -2], []], [[-1, -2], []], { mode: 'token_truncate', cap: 2 });
    expect(r.weights).toEqual([[1, 1], []]);
    expect([r.meanAbsDiff, r.maxAbsDiff, r.correctedFraction, r.klEstimate]).toEqual([0, 0, 0, 0]);
    expect(importanceWeights([], [], { mode: 'token_mask', cap: 2 }).meanAbsDiff).toBe(0);
  });
  it('errors name the problem', () => {
    expect(() => importanceWeights(lp, lq, { mode: 'token_truncate', cap: 0.5 })).toThrow(
      /cap must be a finite number >= 1/,
    );
    expect(() => importanceWeights(lp, [lq[0]], { mode: 'token_truncate', cap: 2 })).toThrow(
      /2 trainer rows but 1 engine rows/,
    );
    expect(() => importanceWeights([[-1]], [[-1, -2]], { mode: 'token_truncate', cap: 2 })).toThrow(
      /row 0 has 1 trainer and 2 engine/,
    );
    expect(() =>
      importanceWeights([[-1]], [[Number.NEGATIVE_INFINITY]], { mode: 'token_truncate', cap: 2 }),
    ).toThrow(/non-finite/);
    expect(() => importanceWeights(lp, lq, { mode: 'nope' as never, cap: 2 })).toThrow(/is not one of/);
  });
});

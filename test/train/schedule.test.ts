import { describe, expect, it } from 'vitest';
import { constant, warmupCosine } from '../../src/train/schedule.js';

describe('warmupCosine', () => {
  const s = warmupCosine({ lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 });
  it('ramps linearly during warmup, starting above zero', () => {
    expect(s(0)).toBeCloseTo(1e-4, 15);
    expect(s(4)).toBeCloseTo(5e-4, 15);
    expect(s(9)).toBeCloseTo(1e-3, 15);
  });
  it('decays on a cosine from peak to floor', () => {
    expect(s(10)).toBeCloseTo(1e-3, 15); // progress 0
    // halfway (progress 0.5): floor + (peak - floor) / 2 = 1e-4 + 4.5e-4
    expect(s(60)).toBeCloseTo(5.5e-4, 15);
    // progress 0.25: 1e-4 + 0.5 * 9e-4 * (1 + cos(pi/4))
    expect(s(35)).toBeCloseTo(1e-4 + 0.5 * 9e-4 * (1 + Math.SQRT1_2), 15);
    expect(s(110)).toBeCloseTo(1e-4, 15);
    expect(s(500)).toBeCloseTo(1e-4, 15);
  });
  it('is monotone non-increasing after warmup', () => {
    for (let t = 10; t < 120; t++) expect(s(t + 1)).toBeLessThanOrEqual(s(t));
  });
  it('without warmup starts at the peak and minLrRatio defaults to 0', () => {
    const z = warmupCosine({ lr: 2, warmupSteps: 0, totalSteps: 4 });
    expect([0, 1, 2, 3, 4].map(z)).toEqual(
      [2, 1 + Math.SQRT1_2, 1, 1 - Math.SQRT1_2, 0].map((x) => expect.closeTo(x, 12)),
    );
  });
  it('rejects bad options by name', () => {
    expect(() => warmupCosine({ lr: 1, warmupSteps: 0, totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => warmupCosine({ lr: Number.NaN, warmupSteps: 0, totalSteps: 3 })).toThrow(/lr/);
    expect(() => warmupCosine({ lr: 1, warmupSteps: 1.5, totalSteps: 3 })).toThrow(/warmupSteps/);
  });
});

describe('constant', () => {
  it('is constant after optional warmup', () => {
    expect(constant(3e-5)(0)).toBe(3e-5);
    expect(constant(3e-5)(1000)).toBe(3e-5);
    expect(constant(1, 4)(1)).toBe(0.5);
    expect(constant(1, 4)(4)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';

describe('Rng', () => {
  it('is reproducible for a seed, including seed 0', () => {
    const a = new Rng(0);
    const b = new Rng(0);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(new Set(xs).size).toBe(5);
    expect(new Rng(1).nextUint32()).not.toBe(new Rng(0).nextUint32());
  });

  it('restores a saved state exactly', () => {
    const a = new Rng(42);
    a.uniform();
    const st = a.getState();
    const next = [a.uniform(), a.uniform()];
    const b = new Rng(7);
    b.setState(st);
    expect([b.uniform(), b.uniform()]).toEqual(next);
  });

  it('splits into independent named streams that do not advance the parent', () => {
    const a = new Rng(3);
    const s1 = a.split('data').uniform();
    const s2 = a.split('sampling').uniform();
    expect(s1).not.toBe(s2);
    expect(a.split('data').uniform()).toBe(s1);
  });

  it('draws uniforms in [0,1) with the right mean and normals with unit variance', () => {
    const r = new Rng(11);
    let sum = 0;
    let sq = 0;
    let min = 1;
    let max = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      sum += u;
      min = Math.min(min, u);
      max = Math.max(max, u);
      const z = r.normal();
      sq += z * z;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.05);
  });

  it('shuffles to a permutation and rejects bad arguments', () => {
    const xs = new Rng(5).shuffle([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...xs].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(() => new Rng(0).int(0)).toThrow(/positive integer/);
    expect(() => new Rng(Number.NaN)).toThrow(/finite/);
    expect(() => new Rng([0, 0, 0, 0])).toThrow(/not all zero/);
  });
});

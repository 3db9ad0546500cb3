// Golden behaviour of the CAS adapter (compute-engine 0.140.0). If an upgrade changes any of these, the verifier's
// assumptions break: fix the adapter, not these expectations.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  casEvalAt,
  casFreeSymbols,
  casHasIndexed,
  casMatrix,
  casNumeric,
  casParse,
  casRename,
  casSame,
} from '../../src/reward/cas.js';
import { ROOT } from '../helpers.js';

const num = (s: string) => {
  const e = casParse(s);
  return e === null ? null : casNumeric(e);
};

describe('cas adapter (compute-engine 0.140.0 golden behaviour)', () => {
  it('is the pinned version', () => {
    const file = path.join(ROOT, 'node_modules', '@cortex-js', 'compute-engine', 'package.json');
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).version).toBe('0.140.0');
  });

  it('parses and evaluates closed numbers', () => {
    expect(num('\\frac{1}{2}')).toEqual({ re: 0.5, im: 0 });
    expect(num('\\sqrt{4}')?.re).toBe(2);
    expect(num('2^{-99}')?.re).toBe(2 ** -99);
    expect(num('\\frac{3}{4}i')).toEqual({ re: 0, im: 0.75 });
    expect(num('\\sum_{k=1}^{4} k^2')?.re).toBe(30);
    expect(num('\\binom{5}{2}')?.re).toBe(10);
    expect(num('(-8)^{5/3}')?.re).toBeCloseTo(-32, 12); // real odd root, not the principal complex value
    expect(num('e')?.re).toBeCloseTo(Math.E, 15);
  });

  it('reports non-numbers and failures as null', () => {
    expect(num('\\frac{1}{0}')).toBeNull(); // ComplexInfinity
    expect(num('\\infty')).toBeNull();
    expect(num('x+1')).toBeNull();
    expect(num('10^{10^{10^{10}}}')).toBeNull(); // BigInt overflow becomes an Error node, not a throw
    expect(casParse('\\frac{')).toBeNull();
    expect(casParse('\\frac{'.repeat(3000))).toBeNull(); // deep nesting: RangeError caught
  });

  it('lists free symbols without bound or library symbols', () => {
    expect(casFreeSymbols(casParse('x^2+y+\\pi+e')!)).toEqual(['x', 'y']);
    expect(casFreeSymbols(casParse('\\sum_{k=0}^{n} k')!)).toEqual(['n']);
    expect(casHasIndexed(casParse('\\sum_{k=0}^{n} k')!)).toBe(true);
    expect(casHasIndexed(casParse('x+1')!)).toBe(false);
  });

  it('evaluates at points and renames symbols', () => {
    expect(casEvalAt(casParse('x^2+y')!, { x: 2, y: 3 })?.re).toBe(7);
    const r = casRename(casParse('f(y)+y')!, { y: 'x' });
    expect(casSame(r, casParse('f(x)+x')!)).toBe(true);
  });

  it('compares canonical structure (sorted products), not values', () => {
    const a = casParse('\\sum_{k=0}^{n-1} F_k F_{n-k-1}')!;
    const b = casParse('\\sum_{k=0}^{n-1} F_{n-k-1} F_k')!;
    expect(casSame(a, b)).toBe(true);
    expect(casSame(casParse('x+1')!, casParse('x+2')!)).toBe(false);
  });

  it('evaluates matrix expressions to numbers', () => {
    const m = casMatrix(
      casParse('\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}')!,
    );
    expect(m?.map((r) => r.map((c) => c.re))).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('reads the conventions the structure layer overrides', () => {
    // These are why shapes are decided before the CAS (see structure.ts).
    expect(casParse('10\\%')!.key).toBe('0.1');
    expect(casParse('[1,2]')!.key).toContain('List');
    expect(casParse('A:B')!.key).toContain('Colon');
  });
});

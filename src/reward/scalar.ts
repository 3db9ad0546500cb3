// Equality of scalars: closed numbers and expressions, through the CAS adapter (cas.ts).
//   Closed numbers → exact for two decimal literals, else a relative tolerance (1e-9 by default, or rounding to
//   `floatRounding` decimals), so 1/2^98 ≠ 1/2^99 and 10^{-11} ≠ 0 (compute-engine's isEqual uses an absolute 1e-10).
//   Expressions with free symbols → canonical structural equality, else seeded numeric probing: both sides are
//   evaluated at 8 points (integers when a Σ/Π is present); equal only if ≥ 3 points are finite, none disagree,
//   and magnitudes stay below 1e12 (so (x+1)^{1000} vs itself + 1 is undecided, hence not equal).

import {
  type CasExpr,
  type Complex,
  casEvalAt,
  casFreeSymbols,
  casHasIndexed,
  casNumeric,
  casParse,
  casRename,
  casSame,
} from './cas.js';
import type { Node } from './structure.js';

export interface CompareOptions {
  /** Relative tolerance for closed numbers. */
  rtol: number;
  /** When set, closed numbers are compared after rounding to this many decimals. */
  floatRounding?: number;
  /** false: variable names do not matter (`f(x)` = `f(y)`). */
  strict: boolean;
  /** Let a gold set/interval match a prediction written as an inequality chain. */
  allowSetRelationComp: boolean;
  /** Compare bare comma lists as unordered sets (explicit `\{…\}` sets are always unordered). */
  unorderedLists: boolean;
}

const PROBES = 8;
export const MIN_AGREE = 3;
export const MAX_MAG = 1e12;

/** Deterministic probe points (a tiny LCG: the verdict must not depend on any global state). */
export function probePoints(vars: string[], integer: boolean): Record<string, number>[] {
  let s = 0x2545f491;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const pts: Record<string, number>[] = [];
  for (let k = 0; k < PROBES; k++) {
    const p: Record<string, number> = {};
    // Points 0-4 are positive (no branch cuts for sqrt/log); 5-7 negative (to separate x from |x|).
    for (const v of vars)
      p[v] = integer ? 1 + Math.floor(next() * 11) : (k < 5 ? 1 : -1) * (0.35 + 2.6 * next());
    pts.push(p);
  }
  return pts;
}

/** |a-b| ≤ rtol·max(|a|,|b|) on both parts (exact zeros compare equal). */
export function closeComplex(a: Complex, b: Complex, rtol: number): boolean {
  const scale = Math.max(Math.hypot(a.re, a.im), Math.hypot(b.re, b.im));
  const d = Math.hypot(a.re - b.re, a.im - b.im);
  return d === 0 || d <= rtol * scale;
}

function roundTo(x: number, n: number): number {
  const f = 10 ** n;
  return Math.round(x * f) / f;
}

export function numbersEqual(a: Complex, b: Complex, o: CompareOptions): boolean {
  if (o.floatRounding !== undefined) {
    const n = o.floatRounding;
    return roundTo(a.re, n) === roundTo(b.re, n) && roundTo(a.im, n) === roundTo(b.im, n);
  }
  return closeComplex(a, b, o.rtol);
}

/** Probes two expressions with the same free symbols; true only on positive evidence. */
function probeEqual(a: CasExpr, b: CasExpr, vars: string[]): boolean {
  const integer = casHasIndexed(a) || casHasIndexed(b);
  let agree = 0;
  for (const [k, pt] of probePoints(vars, integer).entries()) {
    const va = casEvalAt(a, pt);
    const vb = casEvalAt(b, pt);
    if (va === null || vb === null) {
      if (k === 1 && agree === 0) return false; // not evaluable (unknown functions): stop early, undecided
      continue;
    }
    if (Math.max(Math.abs(va.re), Math.abs(va.im), Math.abs(vb.re), Math.abs(vb.im)) > MAX_MAG) continue;
    const realA = Math.abs(va.im) <= 1e-12 * Math.max(1, Math.abs(va.re));
    const realB = Math.abs(vb.im) <= 1e-12 * Math.max(1, Math.abs(vb.re));
    // Branch cuts: where either side is complex, only the positive points count (√(1/n) = 1/√n for n > 0).
    if (realA !== realB || (k >= 5 && !(realA && realB))) continue;
    if (!closeComplex(va, vb, 1e-8)) return false;
    agree++;
  }
  return agree >= MIN_AGREE;
}

/** Equality of two parsed scalar expressions. */
export function casEqual(a: CasExpr, b: CasExpr, o: CompareOptions): boolean {
  if (casSame(a, b)) return true;
  const va = casFreeSymbols(a);
  const vb = casFreeSymbols(b);
  if (va.length === 0 && vb.length === 0) {
    const na = casNumeric(a);
    const nb = casNumeric(b);
    return na !== null && nb !== null && numbersEqual(na, nb, o);
  }
  if (!o.strict && va.length === vb.length && va.join() !== vb.join()) {
    const map: Record<string, string> = {};
    va.forEach((v, i) => {
      map[v] = vb[i];
    });
    const renamed = casRename(a, map);
    if (casSame(renamed, b) || probeEqual(renamed, b, vb)) return true;
  }
  // Probe over the union of symbols: x - x + 1 equals 1, and x never equals y (different random values).
  return probeEqual(a, b, [...new Set([...va, ...vb])].sort());
}

/** Canonical text of a plain decimal literal (`-0012.50` → `-12.5`), or null if it is not one. */
export function decimalKey(latex: string): string | null {
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(latex.replace(/\s+/g, ''));
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const int = m[2].replace(/^0+(?=\d)/, '') || '0';
  const frac = (m[3] ?? '').replace(/0+$/, '');
  const body = frac ? `${int}.${frac}` : int;
  return body === '0' ? '0' : `${m[1]}${body}`;
}

/** Fewest significant digits a decimal must show to stand for an exact value it rounds to (Math-Verify: 6 decimals). */
export const MIN_SIGNIFICANT = 6;

/**
 * A decimal literal written to the precision shown stands for an exact closed value that rounds to it, when it shows
 * at least MIN_SIGNIFICANT significant digits: `0.333333` ≡ `\frac13`, `2.666667` ≡ `\frac83`, but `0.33` ≢ `\frac13`
 * and `0.000000` ≢ `10^{-7}` (Math-Verify rounds both sides to 6 decimals, which accepts the last two).
 */
function roundedLiteralEqual(literal: string, exact: CasExpr): boolean {
  const digits = literal.replace(/^-/, '').replace('.', '').replace(/^0+/, '');
  const decimals = (literal.split('.')[1] ?? '').length;
  if (digits.length < MIN_SIGNIFICANT || decimals === 0) return false;
  const v = casNumeric(exact);
  if (v === null || v.im !== 0) return false;
  return Math.abs(v.re - Number(literal)) <= 0.5 * 10 ** -decimals * (1 + 1e-9);
}

export function scalarEqual(
  g: Extract<Node, { t: 'expr' }>,
  p: Extract<Node, { t: 'expr' }>,
  o: CompareOptions,
): boolean {
  if (!/[A-Za-z0-9\\]/.test(g.latex) || !/[A-Za-z0-9\\]/.test(p.latex)) return false;
  if (g.latex.replace(/\s+/g, '') === p.latex.replace(/\s+/g, '')) return true;
  // Two plain decimal literals compare exactly (digit by digit): 11111111100 ≠ 11111111101 under any tolerance.
  const dg = decimalKey(g.latex);
  const dp = decimalKey(p.latex);
  if (dg !== null && dp !== null && o.floatRounding === undefined && !g.percent && !p.percent)
    return dg === dp;
  const a = casParse(g.latex);
  const b = casParse(p.latex);
  if (a === null || b === null) return false;
  if (casEqual(a, b, o)) return true;
  if (o.floatRounding === undefined && !g.percent && !p.percent && (dg === null) !== (dp === null)) {
    if (roundedLiteralEqual(dg ?? (dp as string), dg === null ? a : b)) return true;
  }
  if (!g.percent && !p.percent && g.degree === p.degree) return false;
  // `28\%` matches 28 (hendrycks/Qwen strip the sign) and 0.28 (its value); `90^\circ` matches 90 and π/2.
  const na = casNumeric(a);
  const nb = casNumeric(b);
  if (na === null || nb === null) return false;
  const scales = (x: Extract<Node, { t: 'expr' }>) => [
    1,
    ...(x.percent ? [0.01] : []),
    ...(x.degree ? [Math.PI / 180] : []),
  ];
  const scale = (c: Complex, k: number) => ({ re: c.re * k, im: c.im * k });
  return scales(g).some((kg) => scales(p).some((kp) => numbersEqual(scale(na, kg), scale(nb, kp), o)));
}

/** A one-to-one matching between two item lists (unordered). */

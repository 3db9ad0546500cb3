// The only file that talks to the CAS (@cortex-js/compute-engine 0.140.0, pinned exactly: npm resolves 0.27 on
// Node 20 otherwise, and its API changes often). Everything above this adapter works on plain values:
// complex numbers as {re, im}, free symbols as strings, matrices as number[][]. test/reward/cas.test.ts holds the
// golden behaviour we rely on, so an upgrade that changes it fails loudly.
// We deliberately do NOT use `isEqual` (absolute tolerance 1e-10, `undefined` for many identities) — equality
// decisions are made in compare.ts with a relative tolerance and seeded numeric probing.

import { ComputeEngine } from '@cortex-js/compute-engine';

/** A parsed expression; opaque outside this file. */
export interface CasExpr {
  readonly expr: any;
  /** MathJSON as a string, for hashing and structural checks. */
  readonly key: string;
}

/** A complex value with finite parts. */
export interface Complex {
  re: number;
  im: number;
}

let engine: ComputeEngine | null = null;

/** Lazily created engine (a cold load costs ~0.1–0.5 s; workers do it once at start). */
export function casEngine(): ComputeEngine {
  if (engine === null) engine = new ComputeEngine();
  return engine;
}

/**
 * Runs `fn` with compute-engine's own console.error noise dropped ("ComputeEngine: error canonicalizing …" is
 * printed, not thrown, for malformed input); other console.error output passes through.
 */
function quiet<T>(fn: () => T): T {
  const orig = console.error;
  console.error = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('ComputeEngine:')) return;
    orig(...args);
  };
  try {
    return fn();
  } finally {
    console.error = orig;
  }
}

/**
 * Inputs whose evaluation is known to block compute-engine for seconds to minutes (power towers, huge literal
 * exponents or factorials, sums over huge ranges): we do not evaluate them at all. The pool's time limit is the
 * real guard; this only keeps the common bombs cheap.
 */
export function tooExpensive(latex: string): boolean {
  return (
    /\^\s*\{?\s*[-(]?\s*\d+\s*\^|\^\s*\{?\s*-?\d{5,}|\d{4,}\s*!|\\(?:sum|prod)[\s\S]*\^\s*\{?\s*\d{5,}/.test(
      latex,
    ) ||
    // \pm/\mp are expanded into alternatives before the CAS (structure.ts); answers with more than MAX_PM_SIGNS
    // of them are not expanded and must not reach the CAS either (it enumerates 2^n sign choices).
    /\\(?:pm|mp)(?![a-zA-Z])/.test(latex) ||
    // Binomials of 5-digit arguments: \binom{1000000}{500000} is a 300,000-digit BigInt computation.
    /\\[dt]?binom\s*\{?\s*\d{5,}|\\[dt]?binom\s*\{[^{}]*\}\s*\{?\s*\d{5,}|\d{5,}\s*\}?\s*\\choose/.test(
      latex,
    ) ||
    latex.length > 2000
  );
}

/** MathJSON heads that mean the parse failed or produced something we cannot evaluate safely. */
const BAD_KEY = /"Error"|"Missing"|"Nothing"|ComplexInfinity|"Undefined"|"NaN"/;

/**
 * Parses LaTeX. Returns null when the CAS reports an invalid expression or throws (e.g. a stack overflow on
 * thousands of nested groups).
 * @example casParse('\\frac{1}{2}')!.key // '["Rational",1,2]'
 */
export function casParse(latex: string): CasExpr | null {
  if (tooExpensive(latex)) return null;
  try {
    const expr = quiet(() => casEngine().parse(latex));
    if (!expr.isValid) return null;
    const key = JSON.stringify(expr.json);
    if (BAD_KEY.test(key)) return null;
    return { expr, key };
  } catch {
    return null;
  }
}

function toComplex(v: any): Complex | null {
  if (v === null || v === undefined) return null;
  const re = v.re;
  const im = v.im;
  if (typeof re !== 'number' || typeof im !== 'number') return null;
  if (!Number.isFinite(re) || !Number.isFinite(im)) return null;
  return { re, im };
}

/**
 * Numeric value of a closed expression, or null when it has free symbols, is infinite or is not a number.
 * @example casNumeric(casParse('\\sqrt{4}')!) // { re: 2, im: 0 }
 */
export function casNumeric(e: CasExpr): Complex | null {
  try {
    const v = quiet(() => e.expr.N());
    if (BAD_KEY.test(JSON.stringify(v.json))) return null;
    return toComplex(v);
  } catch {
    return null;
  }
}

/** Free symbols (sorted), excluding bound variables of sums and library constants (`e`, `\pi`, `i`). */
export function casFreeSymbols(e: CasExpr): string[] {
  try {
    return [...(e.expr.unknowns as string[])].sort();
  } catch {
    return [];
  }
}

/** Numeric value with the free symbols set to the given numbers; null if not finite. */
export function casEvalAt(e: CasExpr, at: Record<string, number>): Complex | null {
  try {
    const ce = casEngine();
    const subs: Record<string, any> = {};
    for (const [k, v] of Object.entries(at)) subs[k] = ce.number(v);
    const v = quiet(() => e.expr.subs(subs).N());
    if (BAD_KEY.test(JSON.stringify(v.json))) return null;
    return toComplex(v);
  } catch {
    return null;
  }
}

/** Renames free symbols (`{y: 'x'}`); used when variable names do not matter (`strict: false`). */
export function casRename(e: CasExpr, map: Record<string, string>): CasExpr {
  const ce = casEngine();
  const subs: Record<string, any> = {};
  for (const [k, v] of Object.entries(map)) subs[k] = ce.symbol(v);
  const expr = e.expr.subs(subs);
  return { expr, key: JSON.stringify(expr.json) };
}

/** Structural equality of the canonical forms (sorted sums/products), e.g. `F_k F_{n-k-1}` = `F_{n-k-1} F_k`. */
export function casSame(a: CasExpr, b: CasExpr): boolean {
  try {
    return a.key === b.key || a.expr.isSame(b.expr) === true;
  } catch {
    return false;
  }
}

/** True when the expression contains a sum or product over an index (probe those at integers). */
export function casHasIndexed(e: CasExpr): boolean {
  return /"(?:Sum|Product)"/.test(e.key);
}

/**
 * Evaluates an expression whose value is a matrix (e.g. a product of two pmatrix literals) to numbers.
 * @example casMatrix(casParse('\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}^2')!) // [[1,0],[0,1]]
 */
export function casMatrix(e: CasExpr): Complex[][] | null {
  try {
    const json = quiet(() => e.expr.N().json);
    const rows = Array.isArray(json) && json[0] === 'Matrix' ? json[1] : json;
    if (!Array.isArray(rows) || rows[0] !== 'List') return null;
    const out: Complex[][] = [];
    for (const row of rows.slice(1)) {
      if (!Array.isArray(row) || row[0] !== 'List') return null;
      const cells: Complex[] = [];
      for (const cell of row.slice(1)) {
        const c = toComplex(casEngine().box(cell).N());
        if (c === null) return null;
        cells.push(c);
      }
      out.push(cells);
    }
    return out.length > 0 ? out : null;
  } catch {
    return null;
  }
}

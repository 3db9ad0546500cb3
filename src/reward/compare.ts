// Equivalence of two answer shapes (structure.ts). Scalars go to the CAS adapter (cas.ts):
//   closed numbers → relative tolerance (1e-9 by default, or rounding to `floatRounding` decimals), so
//   1/2^98 ≠ 1/2^99 and 10^{-11} ≠ 0 (compute-engine's isEqual uses an absolute 1e-10);
//   expressions with free symbols → canonical structural equality, else seeded numeric probing: both sides are
//   evaluated at 8 random points (integers when a Σ/Π is present); equal only if ≥ 3 points are finite, none
//   disagree, and magnitudes stay below 1e12 (so (x+1)^{1000} vs itself + 1 is undecided, hence not equal).

import {
  type CasExpr,
  type Complex,
  casEvalAt,
  casFreeSymbols,
  casHasIndexed,
  casMatrix,
  casNumeric,
  casParse,
  casRename,
  casSame,
} from './cas.js';
import type { Node, RelOp } from './structure.js';

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
const MIN_AGREE = 3;
const MAX_MAG = 1e12;

/** Deterministic probe points (a tiny LCG: the verdict must not depend on any global state). */
function probePoints(vars: string[], integer: boolean): Record<string, number>[] {
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
      p[v] = integer ? 1 + Math.floor(next() * 7) : (k < 5 ? 1 : -1) * (0.35 + 2.6 * next());
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

function numbersEqual(a: Complex, b: Complex, o: CompareOptions): boolean {
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

function scalarEqual(
  g: Extract<Node, { t: 'expr' }>,
  p: Extract<Node, { t: 'expr' }>,
  o: CompareOptions,
): boolean {
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
function sameMultiset(g: Node[], p: Node[], o: CompareOptions): boolean {
  if (g.length !== p.length) return false;
  const used = new Array<boolean>(p.length).fill(false);
  for (const x of g) {
    const j = p.findIndex((y, k) => !used[k] && nodesEqual(x, y, o));
    if (j < 0) return false;
    used[j] = true;
  }
  return true;
}

function sameSeq(g: Node[], p: Node[], o: CompareOptions): boolean {
  return g.length === p.length && g.every((x, i) => nodesEqual(x, p[i], o));
}

type Interval = Extract<Node, { t: 'interval' }>;

function intervalsEqual(g: Interval, p: Interval, o: CompareOptions): boolean {
  return (
    g.loOpen === p.loOpen && g.hiOpen === p.hiOpen && nodesEqual(g.lo, p.lo, o) && nodesEqual(g.hi, p.hi, o)
  );
}

const FLIP: Record<RelOp, RelOp> = {
  '=': '=',
  '\\ne': '\\ne',
  '<': '>',
  '>': '<',
  '\\le': '\\ge',
  '\\ge': '\\le',
};

/** Canonical `f op 0` with op in {=, ≠, <, ≤}: `a > b` → `b - a < 0`. */
function relSides(a: string, op: RelOp, b: string): { f: string; op: RelOp } {
  if (op === '>' || op === '\\ge') return { f: `(${b})-(${a})`, op: FLIP[op] };
  return { f: `(${a})-(${b})`, op };
}

/** `f1 op 0` ≡ `f2 op 0` when f1 = c·f2 for a constant c (c > 0 for inequalities), by probing. */
function relationEqual(g: Extract<Node, { t: 'rel' }>, p: Extract<Node, { t: 'rel' }>): boolean {
  if (g.ops.length !== p.ops.length) return false;
  const side = (n: Node) => (n.t === 'expr' ? n.latex : '');
  for (let i = 0; i < g.ops.length; i++) {
    const a = relSides(side(g.parts[i]), g.ops[i], side(g.parts[i + 1]));
    const candidates = [i, p.ops.length - 1 - i];
    const ok = candidates.some((j) => {
      const b = relSides(side(p.parts[j]), p.ops[j], side(p.parts[j + 1]));
      return a.op === b.op && proportional(a.f, b.f, a.op === '=' || a.op === '\\ne');
    });
    if (!ok) return false;
  }
  return true;
}

function proportional(fa: string, fb: string, anySign: boolean): boolean {
  const a = casParse(fa);
  const b = casParse(fb);
  if (a === null || b === null) return false;
  if (casSame(a, b)) return true;
  const vars = [...new Set([...casFreeSymbols(a), ...casFreeSymbols(b)])].sort();
  if (vars.length === 0) return false;
  const va = casFreeSymbols(a).join();
  if (va !== casFreeSymbols(b).join()) return false;
  let ratio: number | null = null;
  let agree = 0;
  const pts = probePoints(vars, false);
  for (const pt of pts) {
    const x = casEvalAt(a, pt);
    const y = casEvalAt(b, pt);
    if ((x === null || y === null) && agree === 0 && ratio === null && pt === pts[1]) return false;
    if (x === null || y === null || Math.abs(x.im) > 1e-12 || Math.abs(y.im) > 1e-12) continue;
    if (Math.abs(y.re) < 1e-12 || Math.abs(x.re) > MAX_MAG || Math.abs(y.re) > MAX_MAG) continue;
    const r = x.re / y.re;
    if (ratio === null) ratio = r;
    else if (Math.abs(r - ratio) > 1e-8 * Math.max(Math.abs(r), Math.abs(ratio))) return false;
    agree++;
  }
  return agree >= MIN_AGREE && ratio !== null && ratio !== 0 && (anySign || ratio > 0);
}

/** Solution set of a one-variable inequality chain, as an interval (`-2 \le x \le 7` → [-2,7]), or null. */
function relationToInterval(r: Extract<Node, { t: 'rel' }>): Interval | null {
  const inf: Node = { t: 'expr', latex: '\\infty', percent: false };
  const ninf: Node = { t: 'expr', latex: '-\\infty', percent: false };
  const lower = (op: RelOp) => op === '<' || op === '\\le';
  if (r.parts.length === 3 && lower(r.ops[0]) && lower(r.ops[1])) {
    return {
      t: 'interval',
      lo: r.parts[0],
      hi: r.parts[2],
      loOpen: r.ops[0] === '<',
      hiOpen: r.ops[1] === '<',
    };
  }
  if (
    r.parts.length === 3 &&
    !lower(r.ops[0]) &&
    !lower(r.ops[1]) &&
    r.ops.every((x) => x !== '=' && x !== '\\ne')
  ) {
    return {
      t: 'interval',
      lo: r.parts[2],
      hi: r.parts[0],
      loOpen: r.ops[1] === '>',
      hiOpen: r.ops[0] === '>',
    };
  }
  if (r.parts.length !== 2 || r.ops[0] === '=' || r.ops[0] === '\\ne') return null;
  const [a, b] = r.parts;
  const aVar = a.t === 'expr' && /^[a-zA-Z]$/.test(a.latex.trim());
  const open = r.ops[0] === '<' || r.ops[0] === '>';
  const up = lower(r.ops[0]) === aVar; // variable below the bound
  const bound = aVar ? b : a;
  return up
    ? { t: 'interval', lo: ninf, hi: bound, loOpen: true, hiOpen: open }
    : { t: 'interval', lo: bound, hi: inf, loOpen: open, hiOpen: true };
}

function asSetLike(n: Node): Node[] | null {
  if (n.t === 'set' || n.t === 'list') return n.items;
  if (n.t === 'record') return n.fields.map((f) => f.value);
  return null;
}

function matrixCells(n: Node): Complex[][] | null {
  if (n.t === 'matrix') {
    const rows: Complex[][] = [];
    for (const r of n.rows) {
      const row: Complex[] = [];
      for (const c of r) {
        const e = c.t === 'expr' ? casParse(c.latex) : null;
        const v = e ? casNumeric(e) : null;
        if (v === null) return null;
        row.push(v);
      }
      rows.push(row);
    }
    return rows;
  }
  if (n.t === 'expr' && /\\begin\{[pbvBV]?matrix\}/.test(n.latex)) {
    const e = casParse(n.latex);
    return e ? casMatrix(e) : null;
  }
  return null;
}

function matrixEqual(g: Node, p: Node, o: CompareOptions): boolean {
  if (g.t === 'matrix' && p.t === 'matrix') {
    if (g.rows.length !== p.rows.length) return false;
    if (
      g.rows.every(
        (r, i) => r.length === p.rows[i].length && r.every((c, j) => nodesEqual(c, p.rows[i][j], o)),
      )
    )
      return true;
  }
  const a = matrixCells(g);
  const b = matrixCells(p);
  if (a === null || b === null || a.length !== b.length) return false;
  return a.every((r, i) => r.length === b[i].length && r.every((c, j) => numbersEqual(c, b[i][j], o)));
}

function textOf(n: Node): string | null {
  if (n.t === 'text') return n.value;
  if (n.t === 'expr') return n.latex.replace(/\s+/g, '').toLowerCase();
  return null;
}

/**
 * Mathematical equality of a gold shape and a predicted shape. The gold is the first argument: a few rules are
 * one-sided (a gold inequality matches a predicted interval; the reverse needs `allowSetRelationComp`).
 * @example nodesEqual(parseNode('x=1'), parseNode('1'), opts) // true
 */
export function nodesEqual(g: Node, p: Node, o: CompareOptions): boolean {
  if (g.t === 'member') return nodesEqual(g.set, p.t === 'member' ? p.set : p, o);
  if (p.t === 'member') {
    if (g.t === 'rel') {
      const iv = relationToInterval(g);
      return iv !== null && nodesEqual(iv, p.set, o);
    }
    return o.allowSetRelationComp || g.t === 'interval' || g.t === 'union' ? nodesEqual(g, p.set, o) : false;
  }
  if (g.t === 'assign' && p.t === 'assign') {
    if (g.label === p.label) return nodesEqual(g.value, p.value, o);
    return nodesEqual(assignToRel(g), assignToRel(p), o);
  }
  if (g.t === 'assign') return p.t === 'rel' ? nodesEqual(assignToRel(g), p, o) : nodesEqual(g.value, p, o);
  if (p.t === 'assign') return g.t === 'rel' ? nodesEqual(g, assignToRel(p), o) : nodesEqual(g, p.value, o);
  if (g.t === 'rel' && p.t === 'rel') return relationEqual(g, p);
  if (
    g.t === 'rel' &&
    (p.t === 'interval' || (p.t === 'list' && p.bracket === '(' && p.items.length === 2))
  ) {
    const iv = relationToInterval(g);
    return iv !== null && nodesEqual(iv, p, o);
  }
  if (p.t === 'rel' && g.t === 'interval' && o.allowSetRelationComp) {
    const iv = relationToInterval(p);
    return iv !== null && intervalsEqual(g, iv, o);
  }
  if (g.t === 'rel' || p.t === 'rel') return false;
  if (g.t === 'matrix' || p.t === 'matrix') return matrixEqual(g, p, o);
  if (g.t === 'interval' && p.t === 'interval') return intervalsEqual(g, p, o);
  if (g.t === 'interval' && p.t === 'list' && p.bracket === '(' && p.items.length === 2)
    return intervalsEqual(
      g,
      { t: 'interval', lo: p.items[0], hi: p.items[1], loOpen: true, hiOpen: true },
      o,
    );
  if (p.t === 'interval' && g.t === 'list' && g.bracket === '(' && g.items.length === 2)
    return intervalsEqual(
      { t: 'interval', lo: g.items[0], hi: g.items[1], loOpen: true, hiOpen: true },
      p,
      o,
    );
  if (g.t === 'union' && p.t === 'union') return sameMultiset(g.items, p.items, o);
  if (g.t === 'union' || p.t === 'union') {
    const a = g.t === 'union' ? g.items : asSetLike(g);
    const b = p.t === 'union' ? p.items : asSetLike(p);
    return a !== null && b !== null && unionOfSetsEqual(a, b, o);
  }
  if (g.t === 'record' && p.t === 'record') {
    return (
      g.fields.length === p.fields.length &&
      g.fields.every((f) => p.fields.some((h) => h.label === f.label && nodesEqual(f.value, h.value, o)))
    );
  }
  return collectionsEqual(g, p, o);
}

function assignToRel(a: Extract<Node, { t: 'assign' }>): Node {
  const v = a.value;
  return v.t === 'expr'
    ? { t: 'rel', parts: [{ t: 'expr', latex: a.label, percent: false }, v], ops: ['='] }
    : v;
}

/** `{1,2} ∪ {2,3}` vs `{1,2,3}` style: compare the flattened element sets. */
function unionOfSetsEqual(a: Node[], b: Node[], o: CompareOptions): boolean {
  const flat = (xs: Node[]) => xs.flatMap((x) => (x.t === 'set' || x.t === 'list' ? x.items : [x]));
  const fa = dedupe(flat(a), o);
  const fb = dedupe(flat(b), o);
  return sameMultiset(fa, fb, o);
}

function dedupe(xs: Node[], o: CompareOptions): Node[] {
  const out: Node[] = [];
  for (const x of xs) if (!out.some((y) => nodesEqual(y, x, o))) out.push(x);
  return out;
}

function collectionsEqual(g: Node, p: Node, o: CompareOptions): boolean {
  const ga = asSetLike(g);
  const pa = asSetLike(p);
  if (ga !== null && pa !== null) {
    const ordered = g.t !== 'set' && p.t !== 'set' && !(g.t === 'record' || p.t === 'record');
    const tupleItems = (xs: Node[]) => xs.length > 0 && xs.every((x) => x.t === 'list' && x.bracket === '(');
    const unordered = !ordered || o.unorderedLists || (tupleItems(ga) && tupleItems(pa));
    if (g.t === 'list' && p.t === 'list' && (g.bracket === ':') !== (p.bracket === ':')) return false;
    if (!unordered) return sameSeq(ga, pa, o);
    if (g.t === 'set' || p.t === 'set') return sameMultiset(dedupe(ga, o), dedupe(pa, o), o);
    return sameMultiset(ga, pa, o);
  }
  // A set that collapses to one element (`\boxed{15\frac{39}{40}}, or \boxed{\frac{639}{40}}`) is that element.
  const gOne = g.t === 'set' && ga !== null ? dedupe(ga, o) : null;
  if (gOne !== null && gOne.length === 1) return nodesEqual(gOne[0], p, o);
  const pOne = p.t === 'set' && pa !== null ? dedupe(pa, o) : null;
  if (pOne !== null && pOne.length === 1) return nodesEqual(g, pOne[0], o);
  if (g.t === 'ellipsis' || p.t === 'ellipsis') return g.t === p.t;
  if (g.t === 'expr' && p.t === 'expr') return scalarEqual(g, p, o);
  const tg = textOf(g);
  const tp = textOf(p);
  return tg !== null && tp !== null && (g.t === 'text' || p.t === 'text') && tg === tp;
}

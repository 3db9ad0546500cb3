// Relations: equations and inequalities as `f op 0`, compared up to a constant factor by probing, and
// one-variable inequality chains as intervals.

import { casEvalAt, casFreeSymbols, casParse, casSame } from './cas.js';
import { MAX_MAG, MIN_AGREE, probePoints } from './scalar.js';
import type { Node, RelOp } from './structure.js';

type Interval = Extract<Node, { t: 'interval' }>;

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
export function relationEqual(g: Extract<Node, { t: 'rel' }>, p: Extract<Node, { t: 'rel' }>): boolean {
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
export function relationToInterval(r: Extract<Node, { t: 'rel' }>): Interval | null {
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

/** `|x - c|` / `|x + c|` / `|x|` with a one-letter variable: [variable, c as LaTeX], or null. */
function absArgument(s: string): [string, string] | null {
  const m = /^\|\s*([a-zA-Z])\s*(?:([+-])\s*([^|]+?))?\s*\|$/.exec(s.trim());
  if (!m) return null;
  if (!m[2]) return [m[1], '0'];
  return [m[1], m[2] === '-' ? `(${m[3]})` : `-(${m[3]})`];
}

function exprOf(latex: string): Node {
  return { t: 'expr', latex, percent: false };
}

/**
 * `|x - c| < a` → (c-a, c+a); `|x - c| \ge a` → (-∞, c-a] ∪ [c+a, ∞); any other one-variable chain as in
 * relationToInterval. Null when the relation is not a one-variable inequality we can solve by form.
 */
export function relationToSet(r: Extract<Node, { t: 'rel' }>): Node | null {
  if (r.parts.length === 2 && r.ops[0] !== '=' && r.ops[0] !== '\\ne') {
    const [a, b] = r.parts.map((p) => (p.t === 'expr' ? p.latex : ''));
    const left = absArgument(a);
    const right = absArgument(b);
    const abs = left ?? right;
    if (abs !== null && (left === null || right === null)) {
      const bound = left ? b : a;
      // Orient as |…| op bound.
      const op = left ? r.ops[0] : FLIP[r.ops[0]];
      const c = abs[1];
      const lo = exprOf(`${c}-(${bound})`);
      const hi = exprOf(`${c}+(${bound})`);
      const strict = op === '<' || op === '>';
      if (op === '<' || op === '\\le') return { t: 'interval', lo, hi, loOpen: strict, hiOpen: strict };
      return {
        t: 'union',
        items: [
          { t: 'interval', lo: exprOf('-\\infty'), hi: lo, loOpen: true, hiOpen: strict },
          { t: 'interval', lo: hi, hi: exprOf('\\infty'), loOpen: strict, hiOpen: true },
        ],
      };
    }
  }
  return relationToInterval(r);
}

/** The solution set of a relation or of `x < 1 or x > 2` (a set of one-variable relations), or null. */
export function solutionSet(n: Node): Node | null {
  if (n.t === 'rel') return relationToSet(n);
  if (n.t === 'set' && n.items.length >= 2 && n.items.every((x) => x.t === 'rel')) {
    const items = n.items.map((x) => relationToSet(x as Extract<Node, { t: 'rel' }>));
    if (items.some((x) => x === null)) return null;
    return { t: 'union', items: (items as Node[]).flatMap((x) => (x.t === 'union' ? x.items : [x])) };
  }
  return null;
}

// Equivalence of two answer shapes (structure.ts): sets, tuples, intervals, unions, records, matrices, text.
// Scalars are compared in scalar.ts, relations in relation.ts.

import { type Complex, casMatrix, casNumeric, casParse } from './cas.js';
import { relationEqual, solutionSet } from './relation.js';
import { type CompareOptions, numbersEqual, scalarEqual } from './scalar.js';
import type { Node } from './structure.js';

export type { CompareOptions } from './scalar.js';

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
    const gs = solutionSet(g);
    if (gs !== null) return nodesEqual(gs, p.set, o);
    if (g.t === 'rel') return false;
    return o.allowSetRelationComp || g.t === 'interval' || g.t === 'union' ? nodesEqual(g, p.set, o) : false;
  }
  if (g.t === 'assign' && p.t === 'assign') {
    if (g.label === p.label) return nodesEqual(g.value, p.value, o);
    return nodesEqual(assignToRel(g), assignToRel(p), o);
  }
  if (g.t === 'assign') return p.t === 'rel' ? nodesEqual(assignToRel(g), p, o) : nodesEqual(g.value, p, o);
  if (p.t === 'assign') return g.t === 'rel' ? nodesEqual(g, assignToRel(p), o) : nodesEqual(g, p.value, o);
  if (g.t === 'rel' && p.t === 'rel') return relationEqual(g, p);
  // A gold inequality (`|x-1| < 2`, `x < 1 or x > 2`) matches the predicted interval/union it solves to; the
  // reverse (a predicted inequality against a gold set) needs allowSetRelationComp, as in Math-Verify.
  const pSet = asIntervalish(p);
  const gSet = asIntervalish(g);
  if (pSet !== null && g.t !== 'interval' && g.t !== 'union') {
    const gs = solutionSet(g);
    if (gs !== null) return nodesEqual(gs, pSet, o);
  }
  if (gSet !== null && o.allowSetRelationComp && p.t !== 'interval' && p.t !== 'union') {
    const ps = solutionSet(p);
    if (ps !== null) return nodesEqual(gSet, ps, o);
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

/** An interval, a union, or a `(a, b)` pair (which reads as the open interval too); else null. */
function asIntervalish(n: Node): Node | null {
  if (n.t === 'interval' || n.t === 'union') return n;
  if (n.t === 'list' && n.bracket === '(' && n.items.length === 2)
    return { t: 'interval', lo: n.items[0], hi: n.items[1], loOpen: true, hiOpen: true };
  return null;
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

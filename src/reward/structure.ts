// Our structure layer: turns one normalised answer string into a tree of answer shapes (sets, tuples, intervals,
// relations, assignments, matrices, text, scalar expressions). Scalars stay LaTeX strings here; the CAS only sees
// them in compare.ts. The CAS's own readings of `[1,2]`, `(1,2)`, `A:B=1`, `1,000` differ from answer-grading
// conventions (see ../shared/research/reward_libraries.md), so shapes are decided here, before the CAS.

import { DEGREE_MARK } from './normalize.js';

/** Relation operators after normalisation. */
export type RelOp = '=' | '<' | '>' | '\\le' | '\\ge' | '\\ne';

export type Node =
  | { t: 'expr'; latex: string; percent: boolean; degree?: boolean }
  | { t: 'text'; value: string }
  | { t: 'set'; items: Node[] }
  | { t: 'list'; items: Node[]; bracket: '(' | '[' | '' | ':' }
  | { t: 'interval'; lo: Node; hi: Node; loOpen: boolean; hiOpen: boolean }
  | { t: 'union'; items: Node[] }
  | { t: 'rel'; parts: Node[]; ops: RelOp[] }
  | { t: 'assign'; label: string; value: Node }
  | { t: 'record'; fields: { label: string; value: Node }[] }
  | { t: 'matrix'; rows: Node[][] }
  | { t: 'ellipsis' }
  | { t: 'member'; set: Node };

export interface ParseContext {
  /** Read `1,22` as 1.22 (plain-number extraction only). */
  decimalComma?: boolean;
}

const MAX_DEPTH = 12;
const MAX_ITEMS = 64;

/** Depth (brackets, braces, \begin…\end) before each index; linear. */
function depths(s: string): Int32Array {
  const d = new Int32Array(s.length + 1);
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    d[i] = depth;
    const c = s[i];
    if (c === '\\') {
      if (s.startsWith('\\begin', i)) depth++;
      else if (s.startsWith('\\end', i)) depth--;
      else if (s[i + 1] === '{' || s[i + 1] === '}') {
        depth += s[i + 1] === '{' ? 1 : -1;
        d[i + 1] = depth;
        i++;
      }
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
  }
  d[s.length] = depth;
  return d;
}

/**
 * Splits `s` at top-level (depth-0) matches of `re` (global). Returns parts and the separators between them.
 * @example splitTop('(1,2),3', /,/g) // { parts: ['(1,2)', '3'], seps: [','] }
 */
export function splitTop(s: string, re: RegExp): { parts: string[]; seps: string[] } {
  const d = depths(s);
  const parts: string[] = [];
  const seps: string[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (d[m.index] !== 0 || m.index < last) continue;
    parts.push(s.slice(last, m.index));
    seps.push(m[0]);
    last = m.index + m[0].length;
  }
  parts.push(s.slice(last));
  return { parts: parts.map((p) => p.trim()), seps };
}

/** True when the bracket opening at 0 closes at the last character. */
function wraps(s: string): boolean {
  if (s.length < 2) return false;
  const d = depths(s);
  for (let i = 1; i < s.length - 1; i++) if (d[i] <= 0 && d[i + 1] <= 0) return false;
  return d[s.length] === 0 && d[1] === 1;
}

const LABEL_RE =
  /^(?:[a-zA-Z][a-zA-Z.]*(?:\s+[a-zA-Z.]+){1,5}|\\?[a-zA-Z]+(?:_\{?[a-zA-Z0-9,]+\}?)?(?:'|\^\{?\*\}?)?(?:\([a-zA-Z,\s]*\))?|\\frac\{[a-zA-Z\s]+\}\{[a-zA-Z\s]+\}|[a-zA-Z][\w{}]*(?:\s*:\s*[a-zA-Z][\w{}]*)+|\\angle\s*[a-zA-Z]+|\|[a-zA-Z]{1,4}\||\\overline\{[A-Z]{1,4}\}|\([a-zA-Z,\s]+\))$/;

/**
 * True for the left side of an assignment: `x`, `x_1`, `f(x)`, `(p,q)`, `\frac{NO}{BO}`, `A:B`, `V_1:V_2`,
 * `S_{MBCN}:S`, `|AB|`, `\overline{AB}`.
 */
export function isLabel(s: string): boolean {
  const t = s.trim();
  if (/^\\(?:frac|sqrt|sin|cos|tan|log|ln|pi|infty)(?![a-zA-Z])/.test(t) && !t.startsWith('\\frac'))
    return false;
  return t.length > 0 && t.length <= 40 && LABEL_RE.test(t);
}

/** Most `\pm`/`\mp` signs expanded in one answer (2^4 = 16 alternatives); the CAS refuses any left over. */
export const MAX_PM_SIGNS = 4;

/** Expand `a \pm b` into `[a+b, a-b]` (and `\mp`) when it has at most MAX_PM_SIGNS signs (16 items). */
export function expandPm(s: string): string[] {
  // More signs than that: not expanded at all (the CAS then refuses the \pm), else every alternative would be
  // expanded again one level down — 16^depth work (ten \pm took 85 s).
  if ((s.match(/\\(?:pm|mp)(?![a-zA-Z])/g)?.length ?? 0) > MAX_PM_SIGNS) return [s];
  let out = [s];
  for (let k = 0; k < MAX_PM_SIGNS; k++) {
    const next: string[] = [];
    for (const x of out) {
      const m = /\\(pm|mp)(?![a-zA-Z])/.exec(x);
      if (!m) {
        next.push(x);
        continue;
      }
      const [a, b] = m[1] === 'pm' ? ['+', '-'] : ['-', '+'];
      next.push(x.slice(0, m.index) + a + x.slice(m.index + m[0].length));
      next.push(x.slice(0, m.index) + b + x.slice(m.index + m[0].length));
    }
    out = next;
  }
  return out.map((x) => x.replace(/^\s*\+/, '').trim());
}

function exprNode(latex: string, ctx: ParseContext): Node {
  // Space-separated thousands (`1 000 000`, `2\,220` after normalisation) are one number; any other digit-space-digit
  // (`1 2`) is not a number at all: the CAS would read it as 12.
  let s = latex.trim().replace(/(?<![\d.])\d{1,3}(?: \d{3})+(?![\d.])/g, (m) => m.replace(/ /g, ''));
  if (/(?:^|[^\d._^])\d+(?:\.\d+)? \d/.test(s)) return { t: 'text', value: s }; // not `\log_2 8`, `x^2 3`
  let percent = false;
  const p = /\s*(?:\\%|%)\s*$/.exec(s);
  if (p) {
    percent = true;
    s = s.slice(0, p.index);
  }
  const degree = s.includes(DEGREE_MARK);
  if (degree) s = s.split(DEGREE_MARK).join(' ').trim();
  if (ctx.decimalComma) s = s.replace(/^(-?\d+),(\d+)$/, '$1.$2');
  s = s.replace(/(\d*)\.(\d*)\\overline\s*\{(\d{1,12})\}/g, (_m, i: string, f: string, r: string) =>
    repeating(i, f, r),
  );
  // Mixed numbers: `-3 \frac{1}{2}` = -(3 + 1/2) when the fraction is proper (MATH convention).
  s = s.replace(/(^|[\s(+=])(-?)(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}/g, (m, pre, sign, w, a, b) =>
    Number(a) < Number(b) ? `${pre}${sign}(${w}+\\frac{${a}}{${b}})` : m,
  );
  s = s.replace(/^\.(\d)/, '0.$1').replace(/([^\d])\.(\d)/g, '$10.$2');
  return degree ? { t: 'expr', latex: s, percent, degree } : { t: 'expr', latex: s, percent };
}

/** `0.1\overline{6}` → `\frac{15}{90}`: a repeating decimal as an exact fraction. */
function repeating(int: string, fixed: string, rep: string): string {
  const a = BigInt(`${int || '0'}${fixed}${rep}`) - BigInt(`${int || '0'}${fixed}`);
  const den = `${'9'.repeat(rep.length)}${'0'.repeat(fixed.length)}`;
  return `\\frac{${a}}{${den}}`;
}

function textNode(s: string): Node | null {
  const m = /^\\text\s*\{([^{}]*)\}$/.exec(s);
  const body = (m ? m[1] : s).trim();
  if (m && /^-?[\d.]+$/.test(body)) return null;
  if (m || /^[a-zA-Z]{3,}(?:\s+[a-zA-Z]{2,})*$/.test(body))
    return { t: 'text', value: body.toLowerCase().replace(/\s+/g, ' ') };
  return null;
}

function matrixNode(s: string, ctx: ParseContext, depth: number): Node | null {
  const m = /^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?([\s\S]*)\\end\{\1\}$/.exec(s);
  if (!m || m[2].includes('\\begin')) return null;
  const rows = m[2]
    .split(/\\\\/)
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  if (rows.length > MAX_ITEMS) return null;
  return { t: 'matrix', rows: rows.map((r) => r.split('&').map((c) => parseNode(c.trim(), ctx, depth + 1))) };
}

const REL_RE = /\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])|\\ne(?![a-zA-Z])|<|>|=/g;

function relationNode(s: string, ctx: ParseContext, depth: number): Node | null {
  const { parts, seps } = splitTop(s, REL_RE);
  if (parts.length < 2 || parts.some((p) => p.length === 0)) return null;
  const ops = seps.map((x) => x.trim()) as RelOp[];
  if (ops.every((o) => o === '=')) {
    if (parts.length >= 3) return parseNode(parts[parts.length - 1], ctx, depth + 1);
    if (isLabel(parts[0]))
      return { t: 'assign', label: labelKey(parts[0]), value: parseNode(parts[1], ctx, depth + 1) };
    // `\frac{1}{2} = \frac{10}{9}`: a worked computation with no letters on the left — the last value counts.
    const letters = (x: string) => /[a-zA-Z]/.test(x.replace(/\\[a-zA-Z]+/g, ''));
    if (!letters(parts[0]) && !letters(parts[1])) return parseNode(parts[1], ctx, depth + 1);
  }
  return { t: 'rel', parts: parts.map((p) => exprNode(p, ctx)), ops };
}

/** Canonical label text: no spaces, `x_{1}` = `x_1`. */
export function labelKey(s: string): string {
  return s.replace(/\s+/g, '').replace(/_\{([a-zA-Z0-9])\}/g, '_$1');
}

/** Items of a list: assignments with distinct labels become a record, with one shared label a set of values. */
function listOf(items: Node[], bracket: '(' | '[' | '' | ':'): Node {
  const assigns = items.filter((x) => x.t === 'assign') as Extract<Node, { t: 'assign' }>[];
  if (assigns.length === items.length && items.length > 1) {
    const labels = new Set(assigns.map((a) => a.label));
    if (labels.size === items.length)
      return { t: 'record', fields: assigns.map((a) => ({ label: a.label, value: a.value })) };
    if (labels.size === 1) return { t: 'set', items: assigns.map((a) => a.value) };
  }
  if (items[0]?.t === 'assign' && assigns.length === 1 && bracket === '') {
    const first = items[0];
    return {
      t: 'assign',
      label: first.label,
      value: { t: 'list', items: [first.value, ...items.slice(1)], bracket },
    };
  }
  return { t: 'list', items: items.map((x) => (x.t === 'assign' && bracket === '' ? x.value : x)), bracket };
}

function bracketNode(s: string, ctx: ParseContext, depth: number): Node | null {
  const open = s[0];
  const close = s[s.length - 1];
  const isSet = s.startsWith('\\{') && s.endsWith('\\}');
  if (
    !isSet &&
    !((open === '(' || open === '[' || open === '{') && (close === ')' || close === ']' || close === '}'))
  )
    return null;
  if (!isSet && !wraps(s)) return null;
  const inner = isSet ? s.slice(2, -2) : s.slice(1, -1);
  if (isSet) {
    const items =
      inner.trim() === '' ? [] : splitTop(inner, /,|;/g).parts.map((p) => parseNode(p, ctx, depth + 1));
    return { t: 'set', items: items.flatMap((x) => (x.t === 'set' && x.items.length > 1 ? x.items : [x])) };
  }
  if (open === '{' && close === '}') return parseNode(inner, ctx, depth + 1);
  const { parts } = splitTop(inner, /,|;/g);
  if (parts.length === 1) return open === '(' && close === ')' ? parseNode(inner, ctx, depth + 1) : null;
  const items = parts.map((p) => parseNode(p, ctx, depth + 1));
  if (parts.length === 2 && (open !== close.replace(')', '(').replace(']', '[') || open === '[')) {
    return { t: 'interval', lo: items[0], hi: items[1], loOpen: open === '(', hiOpen: close === ')' };
  }
  if (open === '(' && close === ')') return listOf(items, '(');
  return null;
}

/**
 * Parses one normalised answer into a shape tree.
 * @example parseNode('x \\in [0,1)') // { t: 'member', set: { t: 'interval', ... } }
 */
export function parseNode(raw: string, ctx: ParseContext = {}, depth = 0): Node {
  const s = raw
    .trim()
    .replace(/^[,;=]+|^\.(?!\d)|[,;.]+$/g, '')
    .trim();
  if (depth > MAX_DEPTH) return { t: 'expr', latex: s, percent: false };
  if (s === '\\emptyset' || s === '\\{\\}' || s === '{}') return { t: 'set', items: [] };
  if (s === '\\ldots') return { t: 'ellipsis' };
  const approx = splitTop(s, /\\approx|\\simeq/g).parts;
  // `\frac13 \approx 0.33` keeps the exact value before it; `x \approx 1.25` names a variable, so the value counts.
  if (approx.length > 1 && approx[0].length > 0) {
    const keep = isLabel(approx[0]) ? approx[approx.length - 1] : approx[0];
    return parseNode(keep, ctx, depth + 1);
  }
  const member = splitTop(s, /\\in(?![a-zA-Z])/g).parts;
  if (member.length === 2 && !/[,;]/.test(member[0])) {
    return { t: 'member', set: parseNode(member[1], ctx, depth + 1) };
  }
  const union = splitTop(s, /\\cup(?![a-zA-Z])/g).parts;
  if (union.length > 1) return { t: 'union', items: union.map((p) => parseNode(p, ctx, depth + 1)) };
  const alt = splitTop(
    s,
    /\s*\\text\{\s*(?:and|or)\s*\}\s*|(?<=[\s)\]}\d])(?:and|or)(?=[\s([{\d\\-])/g,
  ).parts;
  if (alt.length > 1 && alt.every((p) => p.length > 0)) {
    const items = alt.map((p) => parseNode(p, ctx, depth + 1));
    const flat = items.flatMap((x) => (x.t === 'list' && x.bracket === '' ? x.items : [x]));
    const merged = listOf(flat, '');
    return merged.t === 'list' ? { t: 'set', items: merged.items } : merged;
  }
  const semi = splitTop(s, /;/g).parts;
  if (semi.length > 1 && semi.length <= MAX_ITEMS) {
    return listOf(
      semi.map((p) => parseNode(p, ctx, depth + 1)),
      '',
    );
  }
  const commas = splitTop(s, /,/g).parts;
  if (commas.length > 1 && commas.length <= MAX_ITEMS) {
    return listOf(
      commas.map((p) => parseNode(p, ctx, depth + 1)),
      '',
    );
  }
  const rel = relationNode(s, ctx, depth);
  if (rel) return rel;
  const ratio = splitTop(s, /:/g).parts;
  if (ratio.length > 1 && ratio.every((p) => p.length > 0)) {
    return { t: 'list', items: ratio.map((p) => parseNode(p, ctx, depth + 1)), bracket: ':' };
  }
  const pm = expandPm(s);
  if (pm.length > 1) return { t: 'set', items: pm.map((p) => parseNode(p, ctx, depth + 1)) };
  // `\left[\begin{array}{cc}…\end{array}\right]` (brackets already stripped of \left/\right): the array is the matrix.
  const arr = /^[[(]\s*(\\begin\{array\}[\s\S]*\\end\{array\})\s*[\])]$/.exec(s);
  const mat = matrixNode(arr ? arr[1] : s, ctx, depth);
  if (mat) return mat;
  const br = bracketNode(s, ctx, depth);
  if (br) return br;
  const text = textNode(s);
  if (text) return text;
  return exprNode(s.replace(/\\text\s*\{\s*([^{}]*?)\s*\}/g, '$1'), ctx);
}

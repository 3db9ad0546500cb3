// Deterministic generator of the reward's large test corpus (issue #18): for every gold answer of MATH500,
// MATH-Vision (testmini) and MathVerse (testmini, text only) in ../shared/data, rewrites that must be judged EQUAL
// (other LaTeX forms of the same value) and near-misses that must be judged NOT EQUAL. Every label comes from the
// construction rule (a value-preserving or value-changing edit), never from a verifier. Rules that would need a
// judgement call (rounded decimals, reordered bare lists, inequality vs interval) are left out on purpose.
// ~8,000 cases, so it is generated at test time (`buildCorpus()`), not committed; `npx tsx test/reward/corpus.ts
// OUT.jsonl` writes it for the bench and for Math-Verify.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared beside the project root (test/helpers.ts imports vitest, which a plain tsx run cannot). */
const SHARED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared');
const shared = (p: string) => path.join(SHARED, p);

/** One generated case. `rule` names the edit; `dataset` the gold's source. */
export interface CorpusCase {
  id: string;
  gold: string;
  prediction: string;
  expected: boolean;
  rule: string;
  dataset: string;
}

type Rw = [rule: string, answer: string];

/** Top-level split on single characters in `seps` (outside (), [], {}). */
function splitTop(s: string, seps: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === '{' || s[i + 1] === '}')) {
      depth += s[i + 1] === '{' ? 1 : -1;
      i++;
    } else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0 && seps.includes(c)) {
      out.push(s.slice(last, i));
      last = i + 1;
    }
  }
  out.push(s.slice(last));
  return out.map((x) => x.trim());
}

const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? (a < 0n ? -a : a) : gcd(b, a % b));

/** Exact decimal of a/b when b has only the factors 2 and 5 (after reduction), else null. */
export function terminatingDecimal(a: bigint, b: bigint): string | null {
  const g = gcd(a, b);
  let [n, d] = [a / g, b / g];
  if (d < 0n) [n, d] = [-n, -d];
  let k = 0;
  let m = d;
  while (m % 2n === 0n) [m, k] = [m / 2n, k + 1];
  let j = 0;
  while (m % 5n === 0n) [m, j] = [m / 5n, j + 1];
  if (m !== 1n || d === 1n) return null;
  const p = Math.max(k, j);
  const scaled = (n * 10n ** BigInt(p)) / d;
  const neg = scaled < 0n;
  const digits = (neg ? -scaled : scaled).toString().padStart(p + 1, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -p)}.${digits.slice(-p)}`;
}

/**
 * a/b correctly rounded to the fewest decimals that show 6 significant digits, plus `bump` units in the last place
 * (a bump of 1 makes a near-miss: no longer the correct rounding).
 */
export function roundedDecimal(a: bigint, b: bigint, negative: boolean, bump: bigint): string {
  let decimals = 0;
  while ((a * 10n ** BigInt(decimals)) / b < 100000n) decimals++;
  const scaled = (2n * a * 10n ** BigInt(decimals) + b) / (2n * b) + bump; // round half up
  const digits = scaled.toString().padStart(decimals + 1, '0');
  const body = decimals > 0 ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
  return `${negative ? '-' : ''}${body}`;
}

/** `.35625` → `\frac{57}{160}` (reduced), or null when not a plain decimal. */
export function decimalToFrac(s: string): string | null {
  const m = /^(-?)(\d*)\.(\d+)$/.exec(s);
  if (!m) return null;
  const num = BigInt(`${m[2] || '0'}${m[3]}`);
  const den = 10n ** BigInt(m[3].length);
  const g = gcd(num, den);
  if (den / g === 1n) return null;
  return `${m[1]}\\frac{${num / g}}{${den / g}}`;
}

const NUMERIC = /^-?(?:\d+|\d*\.\d+)$/;
const FRAC = /^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$/;
const RELATION = /=|<|>|\\le|\\ge|\\ne|\\approx/;
/** Letters that are not part of a command: the gold has a variable or words. */
const hasLetters = (s: string) => /[a-zA-Z]/.test(s.replace(/\\[a-zA-Z]+/g, ''));

function thousands(n: string, sep: string): string {
  const neg = n.startsWith('-');
  const d = neg ? n.slice(1) : n;
  return (neg ? '-' : '') + d.replace(/\B(?=(\d{3})+(?!\d))/g, sep);
}

/** Equal rewrites of a scalar (number, fraction, closed expression). */
function scalarEqual(g: string): Rw[] {
  const out: Rw[] = [];
  if (NUMERIC.test(g)) {
    const f = decimalToFrac(g);
    if (f) out.push(['decimal_as_fraction', f]);
    if (/^-?\d+$/.test(g)) {
      out.push(['integer_trailing_zero', `${g}.0`]);
      if (Math.abs(Number(g)) >= 1000) {
        out.push(['thousands_comma', thousands(g, ',')]);
        out.push(['thousands_braced', thousands(g, '{,}')]);
        out.push(['thousands_thin_space', thousands(g, '\\,')]);
      }
      const z = /^(-?\d*[1-9])(0{3,})$/.exec(g);
      if (z) out.push(['scientific', `${z[1]} \\times 10^{${z[2].length}}`]);
    }
    out.push(['unit_text', `${g} \\text{ cm}`]);
    out.push(['label_prefix', `x = ${g}`]);
    const dm = /^(-?\d*)\.(\d+)$/.exec(g);
    // A decimal comma is unambiguous unless exactly three digits follow it (`1,234` reads as thousands).
    if (dm && dm[2].length !== 3) out.push(['decimal_comma', `${dm[1] || '0'},${dm[2]}`]);
    if (dm) out.push(['approx_label', `x \\approx ${g}`]);
    const small = /^0?\.(\d{1,2})$/.exec(g);
    if (small) out.push(['percent_of_decimal', `${Number(`0.${small[1]}`) * 100}\\%`]);
    const sci = /^(-?)0?\.(0*)([1-9]\d*)$/.exec(g);
    if (sci && sci[3].length <= 6) {
      const m = sci[3].length > 1 ? `${sci[3][0]}.${sci[3].slice(1)}` : sci[3];
      out.push(['scientific', `${sci[1]}${m} \\times 10^{-${sci[2].length + 1}}`]);
    }
  }
  const fr = FRAC.exec(g);
  if (fr) {
    const dec = terminatingDecimal(BigInt(`${fr[1]}${fr[2]}`), BigInt(fr[3]));
    if (dec) out.push(['fraction_as_decimal', dec]);
    else
      out.push([
        'fraction_rounded_6_significant',
        roundedDecimal(BigInt(fr[2]), BigInt(fr[3]), fr[1] === '-', 0n),
      ]);
    out.push(['slash_fraction', `${fr[1]}${fr[2]}/${fr[3]}`]);
    if (fr[1] === '-') out.push(['sign_in_numerator', `\\frac{-${fr[2]}}{${fr[3]}}`]);
    out.push(['label_prefix', `k = ${g}`]);
  }
  if (/\\frac/.test(g) && !/\\dfrac/.test(g)) out.push(['dfrac', g.replace(/\\frac/g, '\\dfrac')]);
  const sq = /^(\d+)\s*\\sqrt\{(\d+)\}$/.exec(g);
  if (sq) out.push(['sqrt_absorbed', `\\sqrt{${Number(sq[1]) ** 2 * Number(sq[2])}}`]);
  const pi = /^(\d+)\s*\\pi$/.exec(g);
  if (pi) out.push(['pi_product_order', `\\pi \\cdot ${pi[1]}`]);
  const terms = splitTerms(g);
  if (terms && terms.length >= 2) out.push(['sum_reordered', joinTerms([...terms.slice(1), terms[0]])]);
  if (!RELATION.test(g) && !hasLetters(g) && !NUMERIC.test(g) && !FRAC.test(g) && !/,/.test(g))
    out.push(['label_prefix', `a = ${g}`]);
  return out;
}

/** Signed top-level terms of a sum (`6 - 5i` → ['+6', '-5i']), or null when there is no top-level +/-. */
function splitTerms(g: string): string[] | null {
  if (RELATION.test(g) || /,|\\pm|\\mp|\\cup|\^|_|\\text|\\mathrm|\\begin|\\%|\\circ/.test(g)) return null;
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if ('([{'.includes(c)) depth++;
    if (')]}'.includes(c)) depth--;
    if (depth === 0 && (c === '+' || c === '-') && cur.trim() !== '' && !/[\\^_]$/.test(cur.trim())) {
      terms.push(cur.trim());
      cur = c;
    } else cur += c;
  }
  terms.push(cur.trim());
  if (terms.length < 2 || terms.some((t) => /^[+-]?$/.test(t))) return null;
  return terms.map((t) => (/^[+-]/.test(t) ? t : `+${t}`));
}

function joinTerms(ts: string[]): string {
  return ts
    .map((t, i) => (i === 0 && t.startsWith('+') ? t.slice(1) : ` ${t[0]} ${t.slice(1).trim()}`))
    .join('')
    .trim();
}

/** Near-misses of any gold: the last digit changed (outside units and labels). */
function digitMiss(g: string): Rw[] {
  // Units are ignored by design (docs/reward.md), so a digit in a unit's exponent (`cm^2`) is no change of value.
  const unit = String.raw`\\(?:mathrm|text|mbox)\s*\{[^{}]*\}|units?|cm|mm|m|inches|feet|ft`;
  const guarded = g.replace(
    new RegExp(String.raw`(?:${unit})\s*\$?\^\s*\{?\d\}?\$?|(?:${unit})|_\{?\d+\}?`, 'g'),
    (m) => '\u0000'.repeat(m.length),
  );
  const m = /\d(?![\s\S]*\d)/.exec(guarded);
  if (!m) return [];
  // A changed exponent of 1, or of a zero base, keeps the value: skip those.
  if (/(?:^|[^\d.])[01]\s*\^\s*\{?$/.test(g.slice(0, m.index))) return [];
  const d = Number(g[m.index]);
  return [['digit_changed', g.slice(0, m.index) + String((d + 1) % 10) + g.slice(m.index + 1)]];
}

function isZero(g: string): boolean {
  return /^-?0*\.?0*$/.test(g.replace(/\s/g, ''));
}

/** Rewrites and near-misses of one gold answer. */
export function variants(goldRaw: string): { equal: Rw[]; miss: Rw[] } {
  // A gold wrapped in one pair of `$` is the same answer without them.
  const g = goldRaw
    .trim()
    .replace(/^\$([^$]*)\$$/, '$1')
    .trim();
  const equal: Rw[] = [['boxed', goldRaw.trim()]];
  const miss: Rw[] = [];
  const letter = /^(?:\(([A-H])\)|\\text\{\(?([A-H])\)?\}|([A-H]))$/.exec(g);
  if (letter) {
    const l = letter[1] ?? letter[2] ?? letter[3];
    equal.push(['choice_letter', l], ['choice_paren', `(${l})`], ['choice_text', `\\text{${l}}`]);
    equal.push(['choice_left_right', `\\left(${l}\\right)`]);
    miss.push(['choice_other', String.fromCharCode(((l.charCodeAt(0) - 65 + 1) % 5) + 65)]);
    return { equal, miss };
  }
  if (/^[A-Za-z][a-z]+(?: [a-z]+)*$/.test(g)) {
    equal.push(['text_wrapper', `\\text{${g}}`], ['text_case', g.toLowerCase()]);
    return { equal, miss };
  }
  miss.push(...digitMiss(g));
  if (/\\left|\\right/.test(g) === false && /[()]/.test(g) && !/\\[a-zA-Z]+\(/.test(g))
    equal.push(['left_right', g.replace(/\(/g, '\\left(').replace(/\)/g, '\\right)')]);
  if (!RELATION.test(g) && !/,|\\cup|\\begin|\\text|\\mathrm|\\%|\\circ|\\pm/.test(g)) {
    equal.push(...scalarEqual(g));
    if (!isZero(g) && !hasLetters(g)) miss.push(['sign_flipped', g.startsWith('-') ? g.slice(1) : `-${g}`]);
    if (hasLetters(g)) miss.push(['term_added', `${g} + 1`]);
    const fr = FRAC.exec(g);
    if (fr && fr[2] !== fr[3]) miss.push(['reciprocal', `${fr[1]}\\frac{${fr[3]}}{${fr[2]}}`]);
    if (fr && terminatingDecimal(BigInt(fr[2]), BigInt(fr[3])) === null && BigInt(fr[3]) !== 1n)
      miss.push(['rounded_last_digit_off', roundedDecimal(BigInt(fr[2]), BigInt(fr[3]), fr[1] === '-', 1n)]);
  }
  const sq = /\\sqrt\{(\d+)\}/.exec(g);
  if (sq) miss.push(['different_root', g.replace(sq[0], `\\sqrt{${Number(sq[1]) + 1}}`)]);
  const pct = /^(-?\d+(?:\.\d+)?)\s*\\%$/.exec(g);
  if (pct) equal.push(['percent_word', `${pct[1]} percent`]);
  const deg = /^(-?\d+(?:\.\d+)?)\s*\^\s*\{?\\circ\}?$/.exec(g);
  if (deg) equal.push(['degree_dropped', deg[1]]);
  equal.push(...collectionVariants(g, miss));
  equal.push(...matrixVariants(g, miss));
  const lab =
    /^\$?\s*([a-zA-Z][a-zA-Z ]*?)\s*\$?\s*=\s*\$?\s*(-?\d+(?:\.\d+)?)\s*\$?\s*((?:\\mathrm\{[^{}]*\}|units?|cm|mm)\s*(?:\^\s*\{?\d\}?|\$\^\{\d\}\$)?)?\s*$/.exec(
      g,
    );
  if (lab) equal.push(['label_stripped', lab[2]]);
  if (/^\d+(?:\.\d+)?\s*(?:\\mathrm\{[^{}]*\}|units?)/.test(g))
    equal.push(['unit_stripped', /^\d+(?:\.\d+)?/.exec(g)![0]]);
  return { equal, miss };
}

/** Sets, tuples, intervals and unions: reorders that keep the value, drops and bracket swaps that do not. */
function collectionVariants(g: string, miss: Rw[]): Rw[] {
  const equal: Rw[] = [];
  const set = /^\\\{(.*)\\\}$/.exec(g);
  if (set) {
    const items = splitTop(set[1], ',');
    if (items.length >= 2 && new Set(items).size === items.length) {
      equal.push(['set_reordered', `\\{${[...items].reverse().join(', ')}\\}`]);
      miss.push(['set_member_missing', `\\{${items.slice(0, -1).join(', ')}\\}`]);
    }
  }
  const cup = /\\text/.test(g) ? [] : g.split(/\s*\\cup\s*/);
  if (cup.length >= 2 && new Set(cup).size === cup.length)
    equal.push(['union_reordered', [...cup].reverse().join(' \\cup ')]);
  const iv = /^([[(])(.*)([\])])$/.exec(g);
  if (iv && cup.length < 2) {
    const items = splitTop(iv[2], ',');
    const inf = (x: string) => /\\infty/.test(x);
    if (items.length === 2 && !(iv[1] === '(' && iv[3] === ')')) {
      equal.push(['interval_member', `x \\in ${g}`]);
      const [lo, hi] = items;
      if (!inf(hi)) miss.push(['interval_end_swapped', `${iv[1]}${iv[2]}${iv[3] === ']' ? ')' : ']'}`]);
      else if (!inf(lo)) miss.push(['interval_end_swapped', `${iv[1] === '[' ? '(' : '['}${iv[2]}${iv[3]}`]);
    } else if (items.length >= 2 && iv[1] === '(' && iv[3] === ')') {
      miss.push(['tuple_member_missing', `(${items.slice(0, -1).join(', ')})`]);
      if (new Set(items).size === items.length)
        miss.push(['tuple_reordered', `(${[...items.slice(1), items[0]].join(', ')})`]);
    }
  }
  return equal;
}

/** Matrices and vectors: every bracket environment and `\\left[\\begin{array}…\\right]`; a changed cell is a miss. */
function matrixVariants(g: string, miss: Rw[]): Rw[] {
  const m = /^\\begin\{([pbBvV]?matrix)\}([\s\S]*)\\end\{\1\}$/.exec(g);
  if (!m || m[1].startsWith('v') || m[1] === 'Vmatrix') return [];
  const body = m[2].trim();
  const cols = Math.max(...body.split('\\\\').map((r) => r.split('&').length));
  const out: Rw[] = [];
  for (const env of ['pmatrix', 'bmatrix'].filter((e) => e !== m[1]))
    out.push([`matrix_${env}`, `\\begin{${env}}${body}\\end{${env}}`]);
  out.push([
    'matrix_array_brackets',
    `\\left[\\begin{array}{${'c'.repeat(cols)}}${body}\\end{array}\\right]`,
  ]);
  out.push(['matrix_array_parens', `\\left(\\begin{array}{${'r'.repeat(cols)}}${body}\\end{array}\\right)`]);
  const cells = body.split(/\\\\|&/).map((c) => c.trim());
  if (cells.length >= 2 && new Set(cells).size > 1) {
    const rows = body.split('\\\\').map((r) => r.split('&').map((c) => c.trim()));
    const flat = rows.flat();
    const swapped = [...flat.slice(1), flat[0]];
    let k = 0;
    const rebuilt = rows.map((r) => r.map(() => swapped[k++]).join(' & ')).join(' \\\\ ');
    miss.push(['matrix_cells_rotated', `\\begin{${m[1]}}${rebuilt}\\end{${m[1]}}`]);
  }
  return out;
}

/** How each answer is embedded in a completion (extraction paths), cycled deterministically. */
const WRAPS: [string, (a: string) => string][] = [
  ['sentence_boxed', (a) => `Therefore, the final answer is $\\boxed{${a}}$.`],
  [
    'answer_tag',
    (a) => `<think>Work it out: 2 + 3 = 5, so on.</think>\n<answer>The answer is $\\boxed{${a}}$</answer>`,
  ],
  [
    'final_answer_phrase',
    (a) => `We compute step by step, with 12 and 7 along the way.\nThe final answer is $${a}$.`,
  ],
  ['last_display_math', (a) => `Solving the system with 3 equations gives\n\\[\n${a}\n\\]`],
  ['bare_box', (a) => `\\boxed{${a}}`],
];

function load(p: string): { answer: string; id: string }[] {
  return fs
    .readFileSync(shared(p), 'utf8')
    .trim()
    .split('\n')
    .map((l, i) => {
      const r = JSON.parse(l);
      return { answer: String(r.answer), id: String(r.unique_id ?? r.id ?? i) };
    });
}

/** The whole corpus, in a fixed order. */
export function buildCorpus(): CorpusCase[] {
  const sources: [string, string][] = [
    ['math500', 'data/math500/test.jsonl'],
    ['mathvision', 'data/mathvision_testmini/dev.jsonl'],
    ['mathverse', 'data/mathverse_testmini_text_only/dev.jsonl'],
  ];
  const out: CorpusCase[] = [];
  let k = 0;
  for (const [dataset, file] of sources) {
    for (const row of load(file)) {
      const gold = row.answer;
      if (gold.trim() === '') continue;
      const { equal, miss } = variants(gold);
      const add = (rule: string, answer: string, expected: boolean) => {
        let ans = answer;
        // Answers with `$` inside are embedded bare (a box around `$…$` is not how models write).
        ans = ans.replace(/\s*\n\s*/g, ' ');
        const [wrapName, wrap] = /\$/.test(ans) ? WRAPS[4] : WRAPS[k++ % WRAPS.length];
        out.push({
          id: `${dataset}:${row.id}:${rule}:${out.length}`,
          gold,
          prediction: wrap(ans),
          expected,
          rule: `${expected ? 'eq' : 'ne'}/${rule}/${wrapName}`,
          dataset,
        });
      };
      for (const [rule, ans] of equal) if (rule === 'boxed' || ans !== gold.trim()) add(rule, ans, true);
      for (const [rule, ans] of miss) if (ans !== gold.trim()) add(rule, ans, false);
    }
  }
  return out;
}

/** A deterministic sample: every `step`-th case (the default test run), offset so every rule appears. */
export function sampleCorpus(cases: CorpusCase[], step: number): CorpusCase[] {
  return cases.filter((_, i) => i % step === 0);
}

if (process.argv[1]?.endsWith('corpus.ts') && process.argv[2]) {
  const cases = buildCorpus();
  fs.writeFileSync(process.argv[2], `${cases.map((c) => JSON.stringify(c)).join('\n')}\n`);
  const rules = new Map<string, number>();
  for (const r of cases.map((c) => c.rule.split('/').slice(0, 2).join('/')))
    rules.set(r, (rules.get(r) ?? 0) + 1);
  const equal = cases.filter((c) => c.expected).length;
  console.log(`${cases.length} cases (${equal} equal) -> ${process.argv[2]}`);
  for (const [r, n] of [...rules.entries()].sort()) console.log(`${r} ${n}`);
}

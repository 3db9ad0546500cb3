// verify(gold, prediction): extraction → normalisation → shapes → equivalence. Synchronous, with a hard time limit:
// the work runs in a worker thread (bounded.ts) that is terminated when the limit passes; VerifierPool (pool.ts)
// runs the same worker asynchronously. `verifyInProcess` is the unbounded core those workers call.

import { verifyBounded } from './bounded.js';
import { casEngine } from './cas.js';
import { type CompareOptions, nodesEqual } from './compare.js';
import {
  choiceLetter,
  choicesUpTo,
  DEFAULT_CHOICES,
  type Extracted,
  extractAnswer,
  extractChoice,
} from './extract.js';
import { foldUnicodeDigits, MAX_ANSWER_CHARS, normalizeAnswer } from './normalize.js';
import { timeLimitOf, type Verdict, type VerifyOptions } from './options.js';
import { type Node, type ParseContext, parseNode } from './structure.js';

export type { Verdict, VerifyOptions } from './options.js';

/** An answer needs a letter, a digit or a LaTeX command after normalisation (`$$`, `%`, `{,}` are empty). */
const MEANINGFUL = /[A-Za-z0-9\\]/;

/** Default relative tolerance for closed numbers. */
export const DEFAULT_RTOL = 1e-9;

function compareOptions(o: VerifyOptions): CompareOptions {
  if (o.floatRounding !== undefined && !(Number.isInteger(o.floatRounding) && o.floatRounding >= 0)) {
    throw new Error(`verify: floatRounding must be a non-negative integer, got ${o.floatRounding}`);
  }
  const rtol = o.rtol ?? DEFAULT_RTOL;
  if (!(rtol >= 0 && rtol < 1)) throw new Error(`verify: rtol must be in [0, 1), got ${o.rtol}`);
  return {
    rtol,
    floatRounding: o.floatRounding,
    strict: o.strict ?? true,
    allowSetRelationComp: o.allowSetRelationComp ?? false,
    unorderedLists: o.unorderedLists ?? false,
  };
}

/** Shape tree of an extracted answer; several boxed answers form a set. */
export function answerNode(ex: Extracted, opts: VerifyOptions): Node {
  const ctx: ParseContext = {
    decimalComma: ex.kind === 'number' || (opts.targets?.length === 1 && opts.targets[0] === 'expr'),
  };
  if (ex.kind === 'boxed_set' && ex.parts) {
    const items = ex.parts.map((p) => parseNode(normalizeAnswer(p), ctx));
    const flat = items.flatMap((x) => (x.t === 'list' && x.bracket === '' ? x.items : [x]));
    const assigns = flat.filter((x) => x.t === 'assign');
    if (
      assigns.length === flat.length &&
      new Set(assigns.map((a) => (a.t === 'assign' ? a.label : ''))).size > 1
    ) {
      return {
        t: 'record',
        fields: assigns.map((a) => (a.t === 'assign' ? { label: a.label, value: a.value } : a)) as any,
      };
    }
    return { t: 'set', items: flat.map((x) => (x.t === 'assign' ? x.value : x)) };
  }
  const text = normalizeAnswer(ex.text);
  return parseNode(ctx.decimalComma ? text.replace(/^(-?\d+),(\d+)$/, '$1.$2') : text, ctx);
}

/** `1,25`, `-0,5`, `3,14159`: a comma that is not a thousands separator (not exactly three digits after it). */
const DECIMAL_COMMA = /^-?\d+,(?:\d{1,2}|\d{4,})$/;

/**
 * A predicted `1,25` is the number 1.25 when the gold is one number: the decimal comma is then the only sensible
 * reading (a two-item list cannot be right either way). Against a list gold it stays a list.
 */
function decimalCommaReading(gold: Node, predNormalized: string): Node | null {
  if (gold.t !== 'expr' || !/^-?[\d.]+$/.test(gold.latex.trim()) || !DECIMAL_COMMA.test(predNormalized))
    return null;
  return parseNode(predNormalized.replace(',', '.'));
}

/** Longest gold answer read whole when it is not a solution (no box, no "answer is"). */
const MAX_WHOLE_GOLD = 300;

/**
 * The gold answer: like a prediction (a gold may be a full solution with a box), except that a short gold without
 * a box or an answer phrase is read whole — it is trusted to be an answer even when it has words
 * (`Area $=113.1$ cm^2`, `Bugs Bunny`, `\begin{pmatrix}…`).
 */
export function extractGold(gold: string, opts: VerifyOptions = {}): Extracted | null {
  const ex = extractAnswer(gold, { targets: opts.targets });
  if (ex !== null && ex.kind !== 'latex' && ex.kind !== 'number') return ex;
  const t = gold.trim();
  if (t.length > 0 && t.length <= MAX_WHOLE_GOLD) return { kind: 'whole', text: t };
  return ex;
}

function checkInputs(gold: unknown, prediction: unknown): void {
  if (typeof gold !== 'string') throw new Error(`verify: gold must be a string, got ${typeof gold}`);
  if (typeof prediction !== 'string')
    throw new Error(`verify: prediction must be a string, got ${typeof prediction}`);
}

function verifyChoice(gold: string, goldLetter: string, prediction: string, choices: string[]): Verdict {
  const got = extractChoice(prediction, choices);
  return {
    equal: got === goldLetter,
    reason:
      got === null ? 'multiple choice: no option letter found' : `multiple choice: ${got} vs ${goldLetter}`,
    gold,
    extracted: got,
  };
}

/**
 * Is `prediction` (a full completion or a bare answer) mathematically equal to `gold`? Runs in a worker thread
 * with a hard time limit (`opts.timeLimitMs`, default 2000 ms); bad arguments throw here, in the caller.
 * @example verify('\\frac{1}{2}', 'so the answer is $\\boxed{0.5}$').equal // true
 * @example verify('\\frac{1}{2^{99}}', '\\frac{1}{2^{98}}').equal // false
 */
export function verify(gold: string, prediction: string, opts: VerifyOptions = {}): Verdict {
  checkInputs(gold, prediction);
  compareOptions(opts);
  return verifyBounded(gold, prediction, opts, timeLimitOf(opts));
}

/**
 * The verification itself, in the calling thread and with no time limit: only for the reward's worker threads
 * (worker.ts), which are terminated from outside when they overrun. Everything else calls `verify` or the pool.
 */
export function verifyInProcess(goldRaw: string, predictionRaw: string, opts: VerifyOptions = {}): Verdict {
  checkInputs(goldRaw, predictionRaw);
  const co = compareOptions(opts);
  const gold = foldUnicodeDigits(goldRaw);
  const prediction = foldUnicodeDigits(predictionRaw);
  const ex = { targets: opts.targets };
  const g = extractGold(gold, opts);
  const goldText = g?.text ?? null;
  const choices = opts.choices ?? DEFAULT_CHOICES;
  const letter = goldText !== null && g?.kind !== 'boxed_set' ? choiceLetter(goldText, choices) : null;
  if (letter !== null) {
    const allowed = opts.choices ?? choicesUpTo(letter);
    return verifyChoice(goldText!, letter, prediction, allowed);
  }
  if (g === null) return { equal: false, reason: 'no gold answer found', gold: null, extracted: null };
  const p = extractAnswer(prediction, ex);
  if (p === null)
    return { equal: false, reason: 'no answer found in prediction', gold: g.text, extracted: null };
  if (g.text.length > MAX_ANSWER_CHARS || p.text.length > MAX_ANSWER_CHARS) {
    return {
      equal: false,
      reason: `answer longer than ${MAX_ANSWER_CHARS} chars`,
      gold: g.text,
      extracted: p.text,
    };
  }
  const base = { gold: g.text, extracted: p.text };
  const ng = normalizeAnswer(g.text);
  const np = normalizeAnswer(p.text);
  if (!MEANINGFUL.test(ng) || !MEANINGFUL.test(np)) {
    return { equal: false, reason: `empty ${MEANINGFUL.test(ng) ? 'predicted' : 'gold'} answer`, ...base };
  }
  const single = g.kind !== 'boxed_set' && p.kind !== 'boxed_set';
  if (g.text.trim() === p.text.trim() && single) return { equal: true, reason: 'identical', ...base };
  if (ng === np && ng.length > 0 && single) {
    return { equal: true, reason: 'identical after normalisation', ...base };
  }
  const gn = answerNode(g, opts);
  const pn = decimalCommaReading(gn, np) ?? answerNode(p, opts);
  const equal = nodesEqual(gn, pn, co);
  return { equal, reason: `${equal ? 'equal' : 'not equal'} (${gn.t} vs ${pn.t})`, ...base };
}

/** Loads the CAS and runs one verification, so the first real case is fast (workers call this at start). */
export function warmUp(): void {
  casEngine();
  verifyInProcess('\\frac{1}{2}+x', '0.5+x');
}

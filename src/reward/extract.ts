// Answer extraction from a model completion (or a gold solution). Mirrors the priorities of Math-Verify's
// `parse()` (boxed > "final answer is" > LaTeX block > plain number), plus `<answer>` tags (Open-Reasoner-Zero),
// several boxed answers read as one set, and multiple-choice letters.
//
// Priority (first hit wins), documented in docs/reward.md:
//   1. `<answer>…</answer>`: the last tag; everything below is searched inside it only.
//   2. `\boxed{…}` / `\fbox{…}` / `\boxed 5`: the last one, brace-matched. Boxes separated only by short connectors
//      (`,`, `and`, `or`, `\quad`, `\text{ and }`, ≤ 6 words, no blank line) are merged into one set answer.
//   3. "final answer is …", "Final Answer: …", "the answer is …": the last phrase, up to the end of its sentence.
//   4. The whole text, when it reads as an answer (no prose outside LaTeX, only connectors and units).
//   5. The last LaTeX block: `$…$`, `\(…\)` (same line only), `$$…$$`, `\[…\]`.
//   6. The last plain number (`7,425,000`, `2,74`, `.4`, `2/3`) not glued to a preceding letter.
// Only the last 8,000 characters are searched for 3–6 and at most 20 boxes are examined, so extraction is linear.

import { matchBrace } from './normalize.js';

/** Which extraction targets are allowed (Math-Verify's `extraction_config`). */
export type Target = 'latex' | 'expr';

export interface ExtractOptions {
  /** `['latex']`: LaTeX only (no plain-number fallback); `['expr']`: plain numbers/expressions only. */
  targets?: Target[];
}

export type ExtractKind = 'boxed' | 'boxed_set' | 'answer_tag' | 'phrase' | 'whole' | 'latex' | 'number';

export interface Extracted {
  kind: ExtractKind;
  /** The answer text (for `boxed_set`: the parts joined by `, `). */
  text: string;
  /** For `boxed_set`: the individual boxed answers. */
  parts?: string[];
}

const TAIL = 8000;
const MAX_BOXES = 20;
const CONNECTOR_WORDS = new Set(['and', 'or', 'for', 'part', 'a', 'b', 'c', 'the', 'respectively', 'also']);

/** Content of the last `<answer>…</answer>` tag, or null. */
export function answerTag(text: string): string | null {
  const end = text.lastIndexOf('</answer>');
  if (end < 0) return null;
  const start = text.lastIndexOf('<answer>', end);
  if (start < 0) return null;
  return text.slice(start + '<answer>'.length, end);
}

interface Box {
  start: number;
  end: number;
  content: string;
}

const BOX_START = /\\(?:boxed|fbox)(?![a-zA-Z])\s*/g;

/**
 * True when the last `\boxed{` of the text never closes: a truncated or garbled final answer. Such a completion
 * has no answer at all — falling back to an earlier box or to the last number inside the broken box would reward
 * `\boxed{{{…{1` as `1`.
 */
export function lastBoxUnclosed(text: string): boolean {
  let last = -1;
  BOX_START.lastIndex = 0;
  for (let m = BOX_START.exec(text); m !== null; m = BOX_START.exec(text)) last = m.index + m[0].length;
  return last >= 0 && text[last] === '{' && matchBrace(text, last) < 0;
}

/** All `\boxed{…}`/`\fbox{…}`/`\boxed 5` occurrences (the last MAX_BOXES), in text order. */
export function findBoxes(text: string): Box[] {
  const starts: [number, number][] = [];
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])\s*/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) starts.push([m.index, m.index + m[0].length]);
  const boxes: Box[] = [];
  for (const [s, after] of starts.slice(-MAX_BOXES)) {
    if (text[after] === '{') {
      // An unclosed box is not an answer (a truncated or garbled completion).
      const close = matchBrace(text, after);
      if (close >= 0) boxes.push({ start: s, end: close + 1, content: text.slice(after + 1, close) });
    } else {
      const m = /^[^\s$,.;\\}]{1,64}/.exec(text.slice(after, after + 64));
      if (m) boxes.push({ start: s, end: after + m[0].length, content: m[0] });
    }
  }
  return boxes;
}

/** True when the text between two boxes only joins them: `, `, ` and `, `\quad \text{ or }`, ≤ 6 short words. */
export function isConnectorGap(gap: string): boolean {
  if (gap.length > 120 || /\n\s*\n|\\n\\n/.test(gap)) return false;
  const words = gap
    .replace(/\\text\{([^{}]*)\}/g, ' $1 ')
    .replace(/\\[a-zA-Z]+|\\.?|[$(){}[\],;.:+*\-&]/g, ' ')
    .split(/\s+/)
    .filter((w) => w.length > 0);
  if (words.length > 6) return false;
  return words.every(
    (w) => /^[a-zA-Z]{1,12}$/.test(w) && (CONNECTOR_WORDS.has(w.toLowerCase()) || words.length <= 3),
  );
}

/** The last box, merged with the boxes before it that are separated only by connectors. */
export function lastBoxed(text: string): Extracted | null {
  const boxes = findBoxes(text);
  if (boxes.length === 0) return null;
  const group = [boxes[boxes.length - 1]];
  for (let i = boxes.length - 2; i >= 0; i--) {
    // Nested boxes (`\boxed{\boxed{5}}`) overlap: the inner, last one is the answer.
    if (boxes[i].end > group[0].start || !isConnectorGap(text.slice(boxes[i].end, group[0].start))) break;
    group.unshift(boxes[i]);
  }
  const parts = [...new Set(group.map((b) => b.content.trim()))];
  if (parts.length === 1) return { kind: 'boxed', text: parts[0] };
  return { kind: 'boxed_set', text: parts.join(', '), parts };
}

const PHRASE = /(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*:?/gi;

/** Text after the last "final answer is" / "the answer is" phrase, up to the end of its sentence. */
export function answerPhrase(text: string): string | null {
  return answerPhraseParts(text)?.text ?? null;
}

/**
 * Like answerPhrase, and says whether the phrase was exactly one delimited block (`… is $domain: (2,8]$.`): the
 * model delimited its answer itself, so words inside it do not make it prose.
 */
function answerPhraseParts(text: string): { text: string; delimited: boolean } | null {
  const tail = text.slice(-TAIL);
  let last: RegExpExecArray | null = null;
  PHRASE.lastIndex = 0;
  for (let m = PHRASE.exec(tail); m !== null; m = PHRASE.exec(tail)) last = m;
  if (last === null) return null;
  let rest = tail.slice(last.index + last[0].length, last.index + last[0].length + 600);
  rest = rest.split(/\n|I hope|<\|im_|\.(?=\s|$)/)[0];
  // "The largest $n$ is 34." → "34": keep what follows the last " is ".
  const is = rest.lastIndexOf(' is ');
  if (is >= 0) rest = rest.slice(is + 4);
  rest = rest.replace(/\*\*/g, '').trim();
  // One delimited block is the answer itself: `$(0, 1)$` → `(0, 1)`.
  const block = /^(?:\$\$?([^$]*)\$\$?|\\\(([\s\S]*)\\\)|\\\[([\s\S]*)\\\])$/.exec(rest);
  if (block) rest = (block[1] ?? block[2] ?? block[3]).trim();
  return /[a-zA-Z0-9]/.test(rest) ? { text: rest, delimited: block !== null } : null;
}

const LATEX_BLOCK =
  /\$\$([\s\S]{1,4000}?)\$\$|\\\[([\s\S]{1,4000}?)\\\]|\\\(([^\n]{1,2000}?)\\\)|(?<![\\$])\$((?:[^$\n\\]|\\[^\n]){1,2000}?)\$/g;

/** All LaTeX-delimited blocks in the tail of the text, in order. */
export function latexBlocks(text: string): string[] {
  const tail = text.slice(-TAIL);
  const out: string[] = [];
  LATEX_BLOCK.lastIndex = 0;
  for (let m = LATEX_BLOCK.exec(tail); m !== null; m = LATEX_BLOCK.exec(tail)) {
    const body = m[1] ?? m[2] ?? m[3] ?? m[4] ?? '';
    if (body.trim().length > 0) out.push(body.trim());
  }
  return out;
}

const UNIT_OR_CONNECTOR =
  /^(?:and|or|percent|percentage|pct|cm|mm|km|m|meters?|miles?|inches|feet|ft|units?|degrees?|dollars?|cents?|yuan|hours?|minutes?|seconds?|days?|years?|square|sq|cubic)$/i;

/** True when the text, outside LaTeX blocks, has no prose: only numbers, symbols, connectors and units. */
export function readsAsAnswer(text: string): boolean {
  if (text.length > 400) return false;
  const outside = text
    .replace(/\$\$[\s\S]*?\$\$|\\\[[\s\S]*?\\\]|\\\([^\n]*?\\\)|(?<!\\)\$[^$\n]*\$/g, ' ')
    .replace(/\\text\{[^{}]*\}/g, ' ')
    .replace(/\\begin\{array\}\{[^{}]*\}/g, ' ')
    .replace(/\\(?:begin|end)\{[a-zA-Z*]*\}/g, ' ')
    .replace(/\\[a-zA-Z]+/g, ' ');
  const words = outside.match(/[a-zA-Z]{2,}/g) ?? [];
  // Short capital words are point/segment names (`AB`, `DEF`), not prose.
  return words.every((w) => UNIT_OR_CONNECTOR.test(w) || /^[A-Z]{2,3}$/.test(w));
}

const NUMBER =
  /(?<![a-zA-Z\d.,/])[-−]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)(?:\s*\/\s*\d+(?!\d|\.\d))?(?!\d)/g;

/** The last plain number in the tail of the text. */
export function lastNumber(text: string): string | null {
  const tail = text.slice(-TAIL);
  let last: string | null = null;
  NUMBER.lastIndex = 0;
  for (let m = NUMBER.exec(tail); m !== null; m = NUMBER.exec(tail)) last = m[0];
  return last;
}

/**
 * Extracts the final answer from a completion, following the priority above.
 * @example extractAnswer('so $x = \\boxed{3}$.') // { kind: 'boxed', text: '3' }
 * @example extractAnswer('\\boxed{1} and \\boxed{2}') // { kind: 'boxed_set', text: '1, 2', parts: ['1', '2'] }
 */
export function extractAnswer(text: string, opts: ExtractOptions = {}): Extracted | null {
  if (typeof text !== 'string') throw new Error(`extractAnswer: text must be a string, got ${typeof text}`);
  const targets = opts.targets ?? ['latex', 'expr'];
  const latex = targets.includes('latex');
  const expr = targets.includes('expr');
  if (lastBoxUnclosed(text)) return null;
  const tag = answerTag(text);
  if (tag !== null) {
    const inner = extractAnswer(tag, opts);
    if (inner !== null) return inner.kind === 'whole' ? { kind: 'answer_tag', text: inner.text } : inner;
  }
  if (latex) {
    const boxed = lastBoxed(text);
    if (boxed) return boxed;
  }
  const parts = answerPhraseParts(text);
  const phrase = parts?.text ?? null;
  if (parts !== null && (parts.delimited || readsAsAnswer(parts.text)))
    return { kind: 'phrase', text: parts.text };
  if (readsAsAnswer(text) && (expr || /[$\\]/.test(text)) && text.trim().length > 0) {
    return { kind: 'whole', text: text.trim() };
  }
  if (phrase !== null) {
    const inPhrase = (latex ? latexBlocks(phrase).pop() : undefined) ?? (expr ? lastNumber(phrase) : null);
    if (inPhrase) return { kind: 'phrase', text: inPhrase };
  }
  if (latex) {
    const block = latexBlocks(text).pop();
    if (block !== undefined) return { kind: 'latex', text: block };
  }
  if (expr) {
    const n = lastNumber(text);
    if (n !== null) return { kind: 'number', text: n };
  }
  return null;
}

/** Letters a multiple-choice answer may take when no `choices` are given. */
export const DEFAULT_CHOICES = ['A', 'B', 'C', 'D', 'E'];

/** `\\left(`, `\\bigl(` … → `(`: sizing commands around an option letter. */
function dropSizing(s: string): string {
  return s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\s*(?=[()[\]])/g, '');
}

/** The option letter a gold answer denotes (`C`, `(C)`, `\\text{C}`, `$E$`), or null. */
export function choiceLetter(s: string, choices: string[] = DEFAULT_CHOICES): string | null {
  const t = dropSizing(s)
    .replace(/\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}/g, '$1')
    .replace(/[$\s().:]|\\[()]/g, '')
    .replace(/\\\}/g, '');
  return t.length === 1 && /[A-Z]/.test(t) && (choices.includes(t) || choices === DEFAULT_CHOICES) ? t : null;
}

/** Letters from A to `letter` (at least A–E): MATH-Vision has options up to H when no choice list is given. */
export function choicesUpTo(letter: string): string[] {
  const n = Math.max(5, letter.charCodeAt(0) - 64);
  return Array.from({ length: n }, (_, i) => String.fromCharCode(65 + i));
}

/**
 * The option letter chosen in a completion: boxed/answer-tag content, "answer is X", a leading `X.`/`(X)`, the last
 * `(X)`/`\text{(X)}`, then the last standalone option letter.
 * @example extractChoice('A. Because B is not valid', ['A','B','C','D']) // 'A'
 */
export function extractChoice(text: string, choices: string[] = DEFAULT_CHOICES): string | null {
  const L = choices.map((c) => c.replace(/[^A-Za-z]/g, '')).join('');
  if (L.length === 0) return null;
  const tail = dropSizing(text.slice(-TAIL));
  const inner = answerTag(tail) ?? tail;
  const boxed = lastBoxed(inner);
  if (boxed) {
    // A committed boxed answer that is not a letter is not a choice: never fall back to letters in the prose.
    return choiceLetter(boxed.text, choices) ?? leadingChoice(boxed.text, L);
  }
  const phrase = new RegExp(`answer\\s*(?:is|:)?\\s*:?\\s*[$(\\\\text{\\s]*([${L}])(?![a-zA-Z])`, 'gi');
  let hit: string | null = null;
  for (let m = phrase.exec(inner); m !== null; m = phrase.exec(inner)) hit = m[1].toUpperCase();
  if (hit && choices.includes(hit)) return hit;
  const lead = leadingChoice(inner, L);
  if (lead) return lead;
  const paren = new RegExp(`\\(([${L}])\\)`, 'g');
  for (let m = paren.exec(inner); m !== null; m = paren.exec(inner)) hit = m[1];
  if (hit) return hit;
  const alone = new RegExp(`(?<![A-Za-z\\\\])([${L}])(?![A-Za-z])`, 'g');
  for (let m = alone.exec(inner); m !== null; m = alone.exec(inner)) hit = m[1];
  return hit;
}

function leadingChoice(s: string, letters: string): string | null {
  const m = new RegExp(`^\\s*[$]*\\s*\\(?([${letters}])(?:[).:]|\\s*$)`).exec(s);
  return m ? m[1] : null;
}

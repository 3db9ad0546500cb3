// JSONL rows: the one reader (line-numbered errors) and the one row parser every command uses (SFT, GRPO, eval):
// field lookup with 'auto' candidates, gold answers of any JSON scalar type (`"answer": 72`, `true`, `"72"` are read
// the same way), the last \boxed{} of a solution as the fallback gold (the reward's `findBoxes`, last box alone), and image paths.
import path from 'node:path';
import { readJsonLines } from '../io/files.js';
import { findBoxes } from '../reward/extract.js';

/** One parsed row: JSON value plus where it came from, for error messages. */
export interface JsonlRow {
  file: string;
  /** 1-based line number. */
  line: number;
  value: unknown;
}

/**
 * Reads a JSONL file (io/files.ts: UTF-8 BOM stripped, blank lines skipped); a bad line throws `file:line: ...`.
 * @example const rows = await readJsonl('data/train.jsonl', { limit: 100 });
 */
export async function readJsonl(file: string, opts: { limit?: number } = {}): Promise<JsonlRow[]> {
  const lines = await readJsonLines(file, 'dataset', opts.limit);
  return lines.map(({ line, value }) => ({ file, line, value }));
}

/**
 * The row's object and its `file:line`, or a clear error when the line is not a JSON object.
 * @example const { v, where } = rowObject(row);
 */
export function rowObject(row: JsonlRow): { v: Record<string, unknown>; where: string } {
  const where = `${row.file}:${row.line}`;
  const v = row.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${where}: each line must be a JSON object`);
  return { v: v as Record<string, unknown>, where };
}

/**
 * Text of a JSON scalar: a non-empty string as is, a finite number or a boolean as written (`72` -> '72').
 * Anything else (null, '', objects, lists) is undefined.
 * @example scalarText(72) // '72'
 */
export function scalarText(x: unknown): string | undefined {
  if (typeof x === 'string') return x === '' ? undefined : x;
  if (typeof x === 'number') return Number.isFinite(x) ? String(x) : undefined;
  if (typeof x === 'boolean') return String(x);
  return undefined;
}

/** The field names `name` stands for: the `auto` candidates in order, or just `name`. */
export const fieldNames = (name: string, auto: string[]): string[] => (name === 'auto' ? auto : [name]);

/**
 * First field among the candidates (`auto`, or the named one) holding a scalar ({@link scalarText}).
 * @example rowField({ problem: 'q', answer: 5 }, 'auto', ['answer']) // '5'
 */
export function rowField(v: Record<string, unknown>, name: string, auto: string[]): string | undefined {
  for (const n of fieldNames(name, auto)) {
    const t = scalarText(v[n]);
    if (t !== undefined) return t;
  }
  return undefined;
}

/**
 * The gold answer of a row: `answerField` ('auto': `answer`), else (with 'auto') the last \boxed{} of `solution`;
 * null when the row has none.
 * @example goldAnswer({ question: 'q', answer: 72 }, 'auto') // '72'
 */
export function goldAnswer(v: Record<string, unknown>, answerField: string): string | null {
  const direct = rowField(v, answerField, ['answer']);
  if (direct !== undefined) return direct;
  if (answerField !== 'auto' || typeof v.solution !== 'string') return null;
  return findBoxes(v.solution).at(-1)?.content ?? null;
}

/**
 * Image paths of a row (`image` or `images`), resolved against `root`.
 * @example rowImages({ image: 'a.png' }, '/data', 'x.jsonl:1') // ['/data/a.png']
 */
export function rowImages(v: Record<string, unknown>, root: string, where: string): string[] {
  const raw = v.images ?? (v.image === undefined || v.image === null ? [] : [v.image]);
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
    throw new Error(`${where}: 'image' must be a path string and 'images' a list of path strings`);
  }
  return (raw as string[]).map((p) => path.resolve(root, p));
}

/**
 * The question of a row (`questionField`, 'auto': question then problem), or an error naming the field.
 * @example rowQuestion({ problem: '1+1?' }, 'auto', 'x.jsonl:1') // '1+1?'
 */
export function rowQuestion(v: Record<string, unknown>, questionField: string, where: string): string {
  const q = rowField(v, questionField, ['question', 'problem']);
  if (q === undefined) {
    const want = questionField === 'auto' ? 'question or problem' : questionField;
    throw new Error(`${where}: no question: expected a non-empty '${want}' field (set data.questionField)`);
  }
  return q;
}

// Benchmark rows for the eval harness, in the three formats OVR reports (samples in ../shared/data):
//   MATH500              {problem, answer, subject, level, unique_id?}
//   MATH-Vision          {id, question, image (relative to the jsonl), answer, choices?, subject, level}
//   MathVerse text-only  {id, question, answer, question_type?, subject?, subfield?}
// Every row becomes one EvalItem; the format is detected per row from its fields.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { scalarText } from '../data/rows.js';
import { parseJsonLines } from '../io/files.js';

export type EvalFormat = 'math500' | 'mathvision' | 'mathverse';

/** One benchmark problem, normalised. */
export interface EvalItem {
  id: string;
  format: EvalFormat;
  question: string;
  /** Gold answer string as stored (verified with reward/verify). */
  answer: string;
  /** Absolute image path (MATH-Vision). */
  image?: string;
  /** Option letters when the gold is a multiple-choice letter. */
  choices?: string[];
  subject: string;
  level: string;
}

type Row = Record<string, unknown>;

/** A scalar field as text: the one row parser's rule (data/rows.ts), so eval reads golds as SFT and GRPO do. */
const str = scalarText;

/** MATH-Vision `choices` are letters or option texts; the gold is always a letter then. */
function choiceLetters(choices: unknown): string[] | undefined {
  if (!Array.isArray(choices) || choices.length === 0) return undefined;
  return choices.map((_, i) => String.fromCharCode(65 + i));
}

/** Question text with MATH-Vision option texts appended as "A. ...", as the benchmark's own prompts do. */
function withOptions(question: string, choices: unknown): string {
  if (!Array.isArray(choices) || choices.every((c) => /^[A-E]$/.test(String(c)))) return question;
  const lines = choices.map((c, i) => `${String.fromCharCode(65 + i)}. ${c}`);
  return `${question}\nChoices:\n${lines.join('\n')}`;
}

/**
 * One JSONL row -> EvalItem; `where` (file:line) and `dir` (for relative image paths) come from the reader.
 * @example toItem({ problem: '1+1?', answer: '2', subject: 'Algebra', level: 1 }, 'a.jsonl:1', '.').format // 'math500'
 */
export function toItem(row: Row, where: string, dir: string): EvalItem {
  const answer = str(row.answer);
  if (answer === undefined)
    throw new Error(`${where}: row has no 'answer' field (a string, number or boolean)`);
  const subject = str(row.subject) ?? 'all';
  const level = str(row.level) ?? 'all';
  if (typeof row.problem === 'string') {
    const id = str(row.unique_id) ?? str(row.id) ?? where;
    return { id, format: 'math500', question: row.problem, answer, subject, level };
  }
  if (typeof row.question !== 'string') {
    throw new Error(
      `${where}: row has neither 'problem' (MATH500) nor 'question' (MATH-Vision / MathVerse); fields: ${Object.keys(row).join(', ')}`,
    );
  }
  const id = str(row.id) ?? where;
  if (row.image !== undefined) {
    if (typeof row.image !== 'string')
      throw new Error(`${where}: 'image' must be a path relative to the JSONL file`);
    const item: EvalItem = {
      id,
      format: 'mathvision',
      question: withOptions(row.question, row.choices),
      answer,
      image: path.resolve(dir, row.image),
      subject,
      level,
    };
    const letters = choiceLetters(row.choices);
    if (letters) item.choices = letters;
    return item;
  }
  const item: EvalItem = { id, format: 'mathverse', question: row.question, answer, subject, level };
  if (row.question_type === 'multi-choice') item.choices = ['A', 'B', 'C', 'D', 'E'];
  return item;
}

/**
 * Reads a benchmark JSONL (first `limit` rows when given). Line-numbered errors.
 * @example const items = await readEvalItems('../shared/data/math500/test.jsonl', 20);
 */
export async function readEvalItems(file: string, limit?: number): Promise<EvalItem[]> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`eval: cannot read data file '${file}'; pass --data PATH.jsonl`);
  });
  const dir = path.dirname(path.resolve(file));
  const items: EvalItem[] = [];
  for (const { line, value: row } of parseJsonLines(text, file, limit)) {
    if (!row || typeof row !== 'object' || Array.isArray(row))
      throw new Error(`${file}:${line}: expected a JSON object`);
    items.push(toItem(row as Row, `${file}:${line}`, dir));
  }
  if (items.length === 0) throw new Error(`${file}: no rows`);
  return items;
}

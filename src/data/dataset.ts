// SFT examples: JSONL rows (data/rows.ts) -> chat messages (chat rows checked with zod; question/solution rows via a
// named template) with their image paths -> token ids and labels, truncated to maxSeqLen. Batching is batches.ts.
import path from 'node:path';
import { z } from 'zod';
import { IGNORE_INDEX } from '../model/loss.js';
import { lastBoxed } from '../reward/extract.js';
import type { ChatMessage, ContentPart } from './chat.js';
import { type JsonlRow, readJsonl, rowField, rowImages, rowObject, rowQuestion } from './rows.js';
import { ORZ_INSTRUCTION, ORZ_PREAMBLE, QWEN_COT_SUFFIX } from './templates.js';
import type { TooLongSample } from './too_long.js';

/** A training conversation with the image paths its image parts refer to (in order). */
export interface SftExample {
  messages: ChatMessage[];
  images: string[];
  where: string;
}

/** Token ids and labels (IGNORE_INDEX where no loss), aligned: labels[t] is the target id at position t. */
export interface TokenizedSeq {
  inputIds: number[];
  labels: number[];
  /** [t, h, w] per image, in order (the processor's; used to explain samples too long with their images). */
  imageGridThw?: number[][];
}

/** The processor's job, passed in: messages (image parts carry paths) -> ids and labels. */
export type TokenizeFn = (messages: ChatMessage[]) => TokenizedSeq | Promise<TokenizedSeq>;

/** A tokenized example, with its images. */
export interface TokenizedExample extends TokenizedSeq {
  images: string[];
}

const Part = z.union([
  z.object({ type: z.literal('text'), text: z.string(), train: z.boolean().optional() }),
  z.object({ type: z.literal('image'), image: z.string().optional() }),
]);
const Message = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.union([z.string(), z.array(Part)]),
});
/** A chat row: `messages`, plus optional `image` / `images` paths filling image parts without a path. */
export const MessagesRow = z.looseObject({
  messages: z.array(Message).min(1),
  image: z.string().optional(),
  images: z.array(z.string()).optional(),
});

/** Parses `row` with `schema`, or throws `file:line: field: problem`. */
function parseRow<T>(schema: z.ZodType<T>, row: JsonlRow): T {
  const r = schema.safeParse(row.value);
  if (r.success) return r.data;
  const msg = r.error.issues.map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ');
  throw new Error(`${row.file}:${row.line}: ${msg}`);
}

/** Data options needed to turn rows into messages (SftConfig's `data` section fits). */
export interface RowOptions {
  format: 'messages' | 'question_solution' | 'auto';
  questionField: string;
  solutionField: string;
  answerField: string;
  promptTemplate: 'plain' | 'qwen' | 'orz';
  imageRoot?: string;
}

/** GSM8K calculator annotations `<<48/2=24>>` are tool-use artefacts, not text a model should learn to write. */
const stripCalculator = (s: string): string => s.replace(/<<[^<>]*>>/g, '');

/**
 * Question/solution texts -> messages with a named template; the final answer is made explicit as `\boxed{answer}`
 * when the solution has no box. `orz` puts the solution in <think> and the boxed answer in <answer>.
 * @example toMessages('qwen', 'What is 1+1?', '1+1=2.', '2')[1].content // '1+1=2.\nThe final answer is $\\boxed{2}$.'
 */
export function toMessages(
  template: RowOptions['promptTemplate'],
  q: string,
  sol: string,
  answer?: string,
): ChatMessage[] {
  const boxed = answer === undefined ? undefined : `\\boxed{${answer}}`;
  if (template === 'orz') {
    const last = lastBoxed(sol);
    const final = boxed ?? (last ? `\\boxed{${last.text}}` : '');
    return [
      { role: 'system', content: ORZ_PREAMBLE },
      { role: 'user', content: ORZ_INSTRUCTION + q },
      { role: 'assistant', content: `<think> ${sol.trim()} </think> <answer> ${final} </answer>` },
    ];
  }
  const withBox =
    sol.includes('\\boxed{') || boxed === undefined ? sol : `${sol}\nThe final answer is $${boxed}$.`;
  const user = template === 'qwen' ? q + QWEN_COT_SUFFIX : q;
  return [
    { role: 'user', content: user },
    { role: 'assistant', content: template === 'qwen' ? withBox : sol },
  ];
}

/** Copy of `messages` with every image part replaced by `f(part, k)` (k counts image parts in order). */
function mapImageParts(messages: ChatMessage[], f: (image: unknown, k: number) => string): ChatMessage[] {
  let k = 0;
  return messages.map((m) =>
    typeof m.content === 'string'
      ? m
      : {
          role: m.role,
          content: m.content.map((p) =>
            p.type === 'image' ? { type: 'image' as const, image: f(p.image, k++) } : p,
          ),
        },
  );
}

/**
 * Gives every image part a path: row-level `images` fill path-less parts in order (or, when the messages have no image
 * parts, are prepended to the first user turn); inline paths are resolved against `root`.
 */
function attachImages(
  messages: ChatMessage[],
  images: string[],
  root: string,
  where: string,
): { messages: ChatMessage[]; images: string[] } {
  const parts = messages.flatMap((m) =>
    typeof m.content === 'string' ? [] : m.content.filter((p) => p.type === 'image'),
  );
  if (parts.length === 0 && images.length > 0) {
    const u = messages.findIndex((m) => m.role === 'user');
    if (u < 0) throw new Error(`${where}: row has images but no user message to attach them to`);
    const m = messages[u];
    const text: ContentPart[] =
      typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    const out = messages.slice();
    out[u] = {
      role: m.role,
      content: [...images.map((image) => ({ type: 'image' as const, image })), ...text],
    };
    return { messages: out, images };
  }
  const inline = parts.filter((p) => p.type === 'image' && p.image !== undefined).length;
  if (images.length > 0 && (inline > 0 || images.length !== parts.length)) {
    throw new Error(
      `${where}: ${parts.length} image part(s) but ${images.length} image path(s): give one path per image part`,
    );
  }
  if (images.length === 0 && inline < parts.length) {
    throw new Error(
      `${where}: an image part has no path: set its 'image' or list the paths in the row's 'images'`,
    );
  }
  const paths: string[] = [];
  const filled = mapImageParts(messages, (image, k) => {
    paths.push(images.length ? images[k] : path.resolve(root, String(image)));
    return paths[k];
  });
  return { messages: filled, images: paths };
}

/**
 * One JSONL row -> an SFT example. `messages` rows are checked with zod; `question_solution` rows need a question
 * (`question`/`problem`) and a solution (`solution`, else `answer`).
 * @example rowToExample({ file: 'x.jsonl', line: 1, value: { question: 'q', solution: 's' } }, opts, '.')
 */
export function rowToExample(row: JsonlRow, o: RowOptions, root: string): SftExample {
  const { v, where } = rowObject(row);
  const images = rowImages(v, root, where);
  const isMessages = o.format === 'messages' || (o.format === 'auto' && 'messages' in v);
  if (isMessages) {
    const r = parseRow(MessagesRow, row) as { messages: ChatMessage[] };
    if (!r.messages.some((m) => m.role === 'assistant')) {
      throw new Error(`${where}: messages have no assistant turn, so there is nothing to train on`);
    }
    return { ...attachImages(r.messages, images, root, where), where };
  }
  const q = rowQuestion(v, o.questionField, where);
  const answer = rowField(v, o.answerField, ['answer']);
  const sol = rowField(v, o.solutionField, ['solution']) ?? answer;
  if (sol === undefined) {
    throw new Error(
      `${where}: no solution: expected a non-empty '${o.solutionField === 'auto' ? 'solution or answer' : o.solutionField}' field (set data.solutionField)`,
    );
  }
  const messages = toMessages(o.promptTemplate, q, stripCalculator(sol), sol === answer ? undefined : answer);
  return { ...attachImages(messages, images, root, where), where };
}

/**
 * Reads a JSONL file into SFT examples. Image paths are resolved against `imageRoot` or the file's folder.
 * @example const ex = await loadSftExamples(cfg.data.train, cfg.data);
 */
export async function loadSftExamples(
  file: string,
  o: RowOptions,
  opts: { limit?: number } = {},
): Promise<SftExample[]> {
  const rows = await readJsonl(file, opts);
  if (rows.length === 0) throw new Error(`dataset ${file} has no rows`);
  const root = o.imageRoot ?? path.dirname(path.resolve(file));
  return rows.map((r) => rowToExample(r, o, root));
}

/**
 * Tokenizes examples and truncates them to `maxSeqLen`. Examples left with no label token, and truncated examples
 * with images, are dropped and counted.
 * @example const { examples, truncated, dropped } = await tokenizeExamples(ex, tokenize, 1024);
 */
export async function tokenizeExamples(
  examples: SftExample[],
  tokenize: TokenizeFn,
  maxSeqLen: number,
): Promise<{ examples: TokenizedExample[]; truncated: number; dropped: number; tooLong: TooLongSample[] }> {
  const out: TokenizedExample[] = [];
  const tooLong: TooLongSample[] = [];
  let truncated = 0;
  let dropped = 0;
  for (const ex of examples) {
    const t = await tokenize(ex.messages);
    if (t.inputIds.length !== t.labels.length) {
      throw new Error(
        `${ex.where}: tokenize returned ${t.inputIds.length} ids but ${t.labels.length} labels`,
      );
    }
    const cut = t.inputIds.length > maxSeqLen;
    if (cut) truncated++;
    const labels = t.labels.slice(0, maxSeqLen);
    // A cut could split an image's pad tokens from its features, so truncated rows with images are dropped.
    if (labels.every((l) => l === IGNORE_INDEX) || (cut && ex.images.length > 0)) {
      dropped++;
      if (cut && ex.images.length > 0) {
        const grids = t.imageGridThw ?? [];
        const images = ex.images.map((file, i) => ({ file, gridThw: grids[i] ?? [1, 0, 0] }));
        tooLong.push({ where: ex.where, tokens: t.inputIds.length, images });
      }
      continue;
    }
    out.push({ inputIds: t.inputIds.slice(0, maxSeqLen), labels, images: ex.images });
  }
  return { examples: out, truncated, dropped, tooLong };
}

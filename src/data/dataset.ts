// SFT data: JSONL rows (zod-checked, line-numbered errors) -> chat messages -> token ids -> batches.
// Batching follows HF `LengthGroupedSampler` (shuffle, cut into mega-batches of 50 batches, sort each by length) and
// mlx-lm `iterate_batches` (pad to the longest row). The order of epoch e is a pure function of (seed, e): the Rng
// stream 'data' split per epoch. So a data position (epoch, index) is all `--resume` needs to continue exactly.
//
// Packing puts several sequences into one row of at most maxSeqLen tokens. `segmentIds` tell sequences apart; the
// first label of every packed sequence after the first is IGNORE_INDEX so the (shifted) loss never trains on
// predicting one sequence from the end of another. The trainer passes segmentIds to the model (ModelInputs), which
// makes attention block-diagonal per sequence and restarts positions per sequence (3-D for images), so a packed row
// is exactly equivalent to its sequences run unpacked. `positionIds` here only count tokens per sequence (the
// model derives its 3-D positions from segmentIds).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { SftConfig } from '../train/config.js';
import type { DataPosition } from '../train/state.js';
import { Rng } from '../util/rng.js';
import { type ChatMessage, type ContentPart, IGNORE_INDEX } from './chat.js';
import { ORZ_INSTRUCTION, ORZ_PREAMBLE, QWEN_COT_SUFFIX } from './templates.js';

/** One parsed row: JSON value plus where it came from, for error messages. */
export interface JsonlRow {
  file: string;
  /** 1-based line number. */
  line: number;
  value: unknown;
}

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
}

/** The processor's job, passed in: messages (image parts carry paths) -> ids and labels. */
export type TokenizeFn = (messages: ChatMessage[]) => TokenizedSeq | Promise<TokenizedSeq>;

/** A tokenized example, with its images. */
export interface TokenizedExample extends TokenizedSeq {
  images: string[];
}

/**
 * Reads a JSONL file; blank lines are skipped; a bad line throws `file:line: ...`.
 * @example const rows = await readJsonl('data/train.jsonl', { limit: 100 });
 */
export async function readJsonl(file: string, opts: { limit?: number } = {}): Promise<JsonlRow[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read dataset ${file}: ${(e as Error).message}`);
  }
  const out: JsonlRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && out.length < (opts.limit ?? Number.POSITIVE_INFINITY); i++) {
    if (lines[i].trim() === '') continue;
    try {
      out.push({ file, line: i + 1, value: JSON.parse(lines[i]) });
    } catch (e) {
      throw new Error(
        `${file}:${i + 1}: invalid JSON (${(e as Error).message}); each line must be one JSON object`,
      );
    }
  }
  return out;
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

/** Data options needed to turn rows into messages (the `data` section of SftConfig). */
export type RowOptions = Pick<
  SftConfig['data'],
  'format' | 'questionField' | 'solutionField' | 'answerField' | 'promptTemplate' | 'imageRoot'
>;

/** First field present on the row among `auto` candidates, or the named one. */
function pickField(row: Record<string, unknown>, name: string, auto: string[]): string | undefined {
  const names = name === 'auto' ? auto : [name];
  for (const n of names) if (typeof row[n] === 'string' && row[n] !== '') return row[n] as string;
  return undefined;
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
    const final = boxed ?? lastBoxed(sol) ?? '';
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

/** The last `\boxed{...}` in `s` (braces matched), or undefined. */
function lastBoxed(s: string): string | undefined {
  const at = s.lastIndexOf('\\boxed{');
  if (at < 0) return undefined;
  let depth = 0;
  for (let i = at + 6; i < s.length; i++) {
    depth += s[i] === '{' ? 1 : s[i] === '}' ? -1 : 0;
    if (depth === 0) return s.slice(at, i + 1);
  }
  return undefined;
}

/** Image paths of a row (`image` or `images`), resolved against `root`. */
function rowImages(row: Record<string, unknown>, root: string, where: string): string[] {
  const raw = row.images ?? (row.image === undefined || row.image === null ? [] : [row.image]);
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
    throw new Error(`${where}: 'image' must be a path string and 'images' a list of path strings`);
  }
  return (raw as string[]).map((p) => path.resolve(root, p));
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
  const where = `${row.file}:${row.line}`;
  const v = row.value as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${where}: each line must be a JSON object`);
  const images = rowImages(v, root, where);
  const isMessages = o.format === 'messages' || (o.format === 'auto' && 'messages' in v);
  if (isMessages) {
    const r = parseRow(MessagesRow, row) as { messages: ChatMessage[] };
    if (!r.messages.some((m) => m.role === 'assistant')) {
      throw new Error(`${where}: messages have no assistant turn, so there is nothing to train on`);
    }
    return { ...attachImages(r.messages, images, root, where), where };
  }
  const q = pickField(v, o.questionField, ['question', 'problem']);
  const answer = pickField(v, o.answerField, ['answer']);
  const sol = pickField(v, o.solutionField, ['solution']) ?? answer;
  if (q === undefined) {
    throw new Error(
      `${where}: no question: expected a non-empty '${o.questionField === 'auto' ? 'question or problem' : o.questionField}' field (set data.questionField)`,
    );
  }
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
): Promise<{ examples: TokenizedExample[]; truncated: number; dropped: number }> {
  const out: TokenizedExample[] = [];
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
      continue;
    }
    out.push({ inputIds: t.inputIds.slice(0, maxSeqLen), labels, images: ex.images });
  }
  return { examples: out, truncated, dropped };
}

// ---------------------------------------------------------------------------------------------------------------
// Order, batching, packing, collate

/** Batches per mega-batch for length grouping (HF LengthGroupedSampler uses 50). */
export const MEGA_BATCH_MULT = 50;

/**
 * Permutation of 0..n-1 for `epoch`: Rng(seed) -> stream 'data' -> stream `epoch-<e>`. Pure in (n, seed, epoch).
 * @example epochOrder(5, 0, 0) // a permutation of [0, 1, 2, 3, 4], the same on every call
 */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new Rng(seed ?? 0).split('data').split(`epoch-${epoch}`);
  return rng.shuffle(Array.from({ length: n }, (_, i) => i));
}

/** Options of {@link planEpoch}. */
export interface PlanOptions {
  batchSize: number;
  seed: number;
  /** Sort within mega-batches of MEGA_BATCH_MULT * batchSize * gradAccumSteps by length (longest first). */
  lengthGrouping: boolean;
  /**
   * Micro-batches per optimizer step (default 1). It only sizes the mega-batches, so that batch 4 x accum 1 and
   * batch 1 x accum 4 see the same examples in the same order.
   */
  gradAccumSteps?: number;
  /** Pack sequences into rows of at most this many tokens (lengthGrouping is then ignored); omit for one per row. */
  packTo?: number;
  /** Drop a final partial batch (default false). */
  dropLast?: boolean;
}

/**
 * Batches of one epoch, each a list of rows, each row a list of example indices (one index unless packing).
 * @example planEpoch([5, 3, 9], 0, { batchSize: 2, seed: 0, lengthGrouping: false }) // e.g. [[[2], [0]], [[1]]]
 */
export function planEpoch(lengths: number[], epoch: number, o: PlanOptions): number[][][] {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
    throw new Error(`batchSize must be an integer >= 1, got ${o.batchSize}`);
  const order = epochOrder(lengths.length, o.seed, epoch);
  let rows: number[][];
  if (o.packTo !== undefined) rows = packGreedy(order, lengths, o.packTo);
  else if (o.lengthGrouping)
    rows = groupByLength(order, lengths, MEGA_BATCH_MULT * o.batchSize * (o.gradAccumSteps ?? 1)).map((i) => [
      i,
    ]);
  else rows = order.map((i) => [i]);
  const batches: number[][][] = [];
  for (let i = 0; i < rows.length; i += o.batchSize) batches.push(rows.slice(i, i + o.batchSize));
  if (o.dropLast && batches.length && batches[batches.length - 1].length < o.batchSize) batches.pop();
  return batches;
}

/** Cuts `order` into mega-batches of `mega` and sorts each by length, longest first (stable, so ties keep the shuffle). */
function groupByLength(order: number[], lengths: number[], mega: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < order.length; i += mega) {
    out.push(...order.slice(i, i + mega).sort((a, b) => lengths[b] - lengths[a]));
  }
  return out;
}

/**
 * Greedy packing in the given order: a sequence joins the current row if it fits, else starts a new row.
 * @example packGreedy([0, 1, 2], [3, 4, 2], 6) // [[0], [1, 2]]
 */
export function packGreedy(order: number[], lengths: number[], maxLen: number): number[][] {
  const rows: number[][] = [];
  let cur: number[] = [];
  let used = 0;
  for (const i of order) {
    if (lengths[i] > maxLen)
      throw new Error(`example ${i} has ${lengths[i]} tokens, more than the packing length ${maxLen}`);
    if (used + lengths[i] > maxLen && cur.length) {
      rows.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += lengths[i];
  }
  if (cur.length) rows.push(cur);
  return rows;
}

/** A padded batch as plain arrays [B][T]; the trainer turns them into int32 tensors. */
export interface Batch {
  inputIds: number[][];
  labels: number[][];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[][];
  /** 0-based positions, restarting for each packed sequence; 1 on padding (as HF fills masked positions). */
  positionIds: number[][];
  /** Which packed sequence each token belongs to (0, 1, ...), -1 on padding. */
  segmentIds: number[][];
  /** Image paths per row, in placeholder order. */
  images: string[][];
  /** Number of label tokens (not IGNORE_INDEX): the loss normaliser. */
  numLabelTokens: number;
}

/**
 * Joins the examples of each row (packing) and pads rows to the longest with `padId` (labels with IGNORE_INDEX).
 * @example collate([[{ inputIds: [5, 6], labels: [-100, 6], images: [] }]], 0, 'left').inputIds // [[5, 6]]
 */
export function collate(rows: TokenizedExample[][], padId: number, padSide: 'left' | 'right'): Batch {
  const joined = rows.map(joinRow);
  const T = Math.max(...joined.map((r) => r.inputIds.length));
  const pad = <V>(xs: V[], v: V): V[] => {
    const p = new Array<V>(T - xs.length).fill(v);
    return padSide === 'left' ? [...p, ...xs] : [...xs, ...p];
  };
  const labels = joined.map((r) => pad(r.labels, IGNORE_INDEX));
  return {
    inputIds: joined.map((r) => pad(r.inputIds, padId)),
    labels,
    attentionMask: joined.map((r) =>
      pad(
        r.inputIds.map(() => 1),
        0,
      ),
    ),
    positionIds: joined.map((r) => pad(r.positionIds, 1)),
    segmentIds: joined.map((r) => pad(r.segmentIds, -1)),
    images: joined.map((r) => r.images),
    numLabelTokens: labels.flat().filter((l) => l !== IGNORE_INDEX).length,
  };
}

/** Concatenates one row's sequences; positions restart per sequence; the first label of later sequences is masked. */
function joinRow(seqs: TokenizedExample[]) {
  const r = {
    inputIds: [] as number[],
    labels: [] as number[],
    positionIds: [] as number[],
    segmentIds: [] as number[],
    images: [] as string[],
  };
  seqs.forEach((s, k) => {
    r.inputIds.push(...s.inputIds);
    r.labels.push(...s.labels.map((l, t) => (k > 0 && t === 0 ? IGNORE_INDEX : l)));
    r.positionIds.push(...s.inputIds.map((_, t) => t));
    r.segmentIds.push(...s.inputIds.map(() => k));
    r.images.push(...s.images);
  });
  return r;
}

/** Options of {@link SftBatches}. */
export interface SftBatchOptions extends Omit<PlanOptions, 'packTo'> {
  padId: number;
  padSide: 'left' | 'right';
  /** Pack sequences into rows of this many tokens (SftConfig: maxSeqLen when packing is on). */
  packTo?: number;
}

/**
 * Endless, resumable stream of collated batches over epochs. `position` is the next batch to be read.
 * @example
 * const data = new SftBatches(examples, { batchSize: 4, seed: cfg.seed, lengthGrouping: true, padId, padSide: 'right' });
 * data.seek(saved.dataPosition);            // on --resume
 * const { batch, epoch, index } = data.next();
 * save({ dataPosition: data.position });
 */
export class SftBatches {
  private pos: DataPosition = { epoch: 0, index: 0 };
  private plan: { epoch: number; batches: number[][][] } | undefined;
  private readonly lengths: number[];

  constructor(
    private readonly examples: TokenizedExample[],
    private readonly o: SftBatchOptions,
  ) {
    if (examples.length === 0)
      throw new Error('SftBatches: no examples (is the dataset empty or fully truncated?)');
    this.lengths = examples.map((e) => e.inputIds.length);
    if (this.batchesInEpoch(0) === 0) {
      throw new Error(
        `SftBatches: ${examples.length} examples give no full batch of ${o.batchSize} with dropLast`,
      );
    }
  }

  /** Batches in epoch `e` (constant unless packing, whose row count depends on the order). */
  batchesInEpoch(e: number): number {
    return this.planFor(e).length;
  }

  private planFor(e: number): number[][][] {
    if (this.plan?.epoch !== e) this.plan = { epoch: e, batches: planEpoch(this.lengths, e, this.o) };
    return this.plan.batches;
  }

  /** The next batch to be read, as (epoch, index within epoch). */
  get position(): DataPosition {
    return { ...this.pos };
  }

  /** Continue from a saved position. */
  seek(p: DataPosition): void {
    if (!Number.isInteger(p.epoch) || !Number.isInteger(p.index) || p.epoch < 0 || p.index < 0) {
      throw new Error(`SftBatches.seek: bad data position ${JSON.stringify(p)}`);
    }
    if (p.index > this.batchesInEpoch(p.epoch)) {
      throw new Error(
        `SftBatches.seek: index ${p.index} is past epoch ${p.epoch}'s ${this.batchesInEpoch(p.epoch)} batches; was the dataset or batchSize changed?`,
      );
    }
    this.pos = { ...p };
  }

  /** Reads one batch and advances (rolling over to the next epoch). */
  next(): { batch: Batch; epoch: number; index: number; exampleIds: number[][] } {
    if (this.pos.index >= this.batchesInEpoch(this.pos.epoch))
      this.pos = { epoch: this.pos.epoch + 1, index: 0 };
    const { epoch, index } = this.pos;
    const rows = this.planFor(epoch)[index];
    this.pos = { epoch, index: index + 1 };
    const batch = collate(
      rows.map((r) => r.map((i) => this.examples[i])),
      this.o.padId,
      this.o.padSide,
    );
    return { batch, epoch, index, exampleIds: rows };
  }
}

/**
 * Evaluation batches: every example once, in file order, no shuffling or grouping.
 * @example for (const b of evalBatches(evalExamples, 8, padId, 'right')) loss += evalLoss(b);
 */
export function evalBatches(
  examples: TokenizedExample[],
  batchSize: number,
  padId: number,
  padSide: 'left' | 'right',
): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be an integer >= 1, got ${batchSize}`);
  const out: Batch[] = [];
  for (let i = 0; i < examples.length; i += batchSize) {
    out.push(
      collate(
        examples.slice(i, i + batchSize).map((e) => [e]),
        padId,
        padSide,
      ),
    );
  }
  return out;
}

/**
 * Optimizer steps for `epochs` passes (rounded up), given batches per epoch and gradient accumulation.
 * @example stepsForEpochs(1.5, 10, 2) // 8
 */
export function stepsForEpochs(epochs: number, batchesPerEpoch: number, gradAccumSteps: number): number {
  return Math.max(1, Math.ceil((epochs * batchesPerEpoch) / gradAccumSteps));
}

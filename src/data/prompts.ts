// RL prompts: JSONL rows -> prompt text via a named template (or a chat row rendered up to its last user turn), image
// paths and the gold answer (data/rows.ts), and the seeded endless prompt stream a GRPO run draws from.
// Follows TRL's prompt-only datasets (`prompt` + extra columns handed to the reward).
import path from 'node:path';
import { type DataPosition, epochOrder } from './batches.js';
import { type ChatMessage, type ContentPart, renderChat } from './chat.js';
import { processor } from './processor.js';
import type { SmartResizeOptions } from './resize.js';
import { goldAnswer, type JsonlRow, readJsonl, rowImages, rowObject, rowQuestion } from './rows.js';
import { buildPrompt, type PromptTemplateName } from './templates.js';
import type { QwenTokenizer } from './tokenizer.js';

/** How prompt rows are read (GrpoConfig's `data` section fits). */
export interface PromptRowOptions {
  format: 'question' | 'messages' | 'auto';
  questionField: string;
  answerField: string;
  promptTemplate: PromptTemplateName;
  imageRoot?: string;
  responsePrefix?: string;
}

/** One RL prompt: rendered text with unexpanded image placeholders, its image paths and the gold answer. */
export interface PromptExample {
  /** `id` field of the row, else `file:line`. */
  id: string;
  prompt: string;
  images: string[];
  /** Gold answer, or null when the row has none (the math reward then gives null). */
  answer: string | null;
  where: string;
}

/** Chat rows: the messages up to the last user turn, rendered with the generation prompt; row images are prepended. */
function messagesPrompt(v: Record<string, unknown>, images: string[], where: string): string {
  const msgs = v.messages as ChatMessage[];
  const last = msgs.map((m) => m.role).lastIndexOf('user');
  if (last < 0) throw new Error(`${where}: messages have no user turn to use as the prompt`);
  const kept = msgs.slice(0, last + 1).map((m) => ({ ...m }));
  const parts = kept.flatMap((m) =>
    typeof m.content === 'string' ? [] : m.content.filter((p) => p.type === 'image'),
  );
  if (parts.length === 0 && images.length > 0) {
    const m = kept[last];
    const text: ContentPart[] =
      typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    kept[last] = { role: m.role, content: [...images.map(() => ({ type: 'image' as const })), ...text] };
  } else if (parts.length !== images.length) {
    throw new Error(
      `${where}: ${parts.length} image part(s) but ${images.length} image path(s) in image/images`,
    );
  }
  return renderChat(kept, { addGenerationPrompt: true });
}

/** Multiple-choice rows (`choices`: option strings, e.g. PuzzleVQA) list their options after the question. */
function choicesSuffix(v: Record<string, unknown>, where: string): string {
  if (v.choices === undefined || v.choices === null) return '';
  if (!Array.isArray(v.choices) || v.choices.some((c) => typeof c !== 'string' && typeof c !== 'number')) {
    throw new Error(`${where}: 'choices' must be a list of option strings`);
  }
  return `\nChoices: ${v.choices.join(', ')}`;
}

/**
 * One JSONL row -> a prompt. `question` rows go through `data.promptTemplate`; `messages` rows are rendered as chat.
 * The gold answer is `goldAnswer` (data/rows.ts: `answerField`, 'auto': `answer`, else the last \boxed{} of
 * `solution`; any JSON scalar). A `choices` list (PuzzleVQA)
 * is appended to the question as `Choices: a, b, c`.
 * @example rowToPrompt({ file: 'p.jsonl', line: 1, value: { question: '1+1?', answer: '2' } }, cfg.data, '.').answer // '2'
 */
export function rowToPrompt(row: JsonlRow, o: PromptRowOptions, root: string): PromptExample {
  const { v, where } = rowObject(row);
  const images = rowImages(v, root, where);
  const answer = goldAnswer(v, o.answerField);
  const id = typeof v.id === 'string' || typeof v.id === 'number' ? String(v.id) : where;
  const isMessages = o.format === 'messages' || (o.format === 'auto' && 'messages' in v);
  if (isMessages) {
    if (!Array.isArray(v.messages) || v.messages.length === 0)
      throw new Error(`${where}: 'messages' must be a non-empty list`);
    return { id, prompt: messagesPrompt(v, images, where) + (o.responsePrefix ?? ''), images, answer, where };
  }
  const q = rowQuestion(v, o.questionField, where);
  return {
    id,
    prompt: buildPrompt(o.promptTemplate, q + choicesSuffix(v, where), { numImages: images.length }),
    images,
    answer,
    where,
  };
}

/**
 * Reads a prompts JSONL file. Image paths resolve against `imageRoot` or the file's folder.
 * @example const prompts = await loadPrompts(cfg.data.train, cfg.data);
 */
export async function loadPrompts(file: string, o: PromptRowOptions): Promise<PromptExample[]> {
  const rows = await readJsonl(file);
  if (rows.length === 0) throw new Error(`prompt dataset ${file} has no rows`);
  const root = o.imageRoot ?? path.dirname(path.resolve(file));
  return rows.map((r) => rowToPrompt(r, o, root));
}

/**
 * Endless seeded stream of prompt indices: epoch e is `epochOrder(n, seed, e)` (or 0..n-1 without shuffle).
 * The position (epoch, index) is all a resume needs.
 * @example const s = new PromptStream(10, 0, true); s.next(4); s.position // { epoch: 0, index: 4 }
 */
export class PromptStream {
  private order: number[];
  private pos: DataPosition;

  constructor(
    readonly size: number,
    private readonly seed: number,
    private readonly shuffle: boolean,
    start: DataPosition = { epoch: 0, index: 0 },
  ) {
    if (!(size > 0)) throw new Error('PromptStream: the prompt dataset is empty');
    this.pos = { ...start };
    this.order = this.orderOf(start.epoch);
  }

  private orderOf(epoch: number): number[] {
    return this.shuffle
      ? epochOrder(this.size, this.seed, epoch)
      : Array.from({ length: this.size }, (_, i) => i);
  }

  /** The next `k` prompt indices (crossing epoch boundaries). */
  next(k: number): number[] {
    const out: number[] = [];
    while (out.length < k) {
      if (this.pos.index >= this.size) {
        this.pos = { epoch: this.pos.epoch + 1, index: 0 };
        this.order = this.orderOf(this.pos.epoch);
      }
      out.push(this.order[this.pos.index++]);
    }
    return out;
  }

  get position(): DataPosition {
    return { ...this.pos };
  }
}

/**
 * Refuses a prompt set in which no row has a usable gold answer (the math reward would score every completion 0 and
 * RL would train on nothing), naming the file and the fields looked at. Not called with a custom reward function.
 * @example requireGoldAnswers(prompts, 'train.jsonl', cfg.data.answerField);
 */
export function requireGoldAnswers(prompts: PromptExample[], file: string, answerField: string): void {
  if (prompts.some((p) => p.answer !== null)) return;
  const fields =
    answerField === 'auto' ? "'answer' (any JSON scalar) or a \\boxed{} in 'solution'" : `'${answerField}'`;
  throw new Error(
    `${file}: none of its ${prompts.length} row(s) has a gold answer: looked for ${fields}. The math reward ` +
      'would score every completion 0; add the answers, set data.answerField, or pass a custom reward function',
  );
}

/** A tokenized prompt: ids with image pads expanded, and its image patches. */
export interface EncodedPrompt {
  ids: number[];
  /** [N_i, PATCH_WIDTH] row-major patches, or null for text-only prompts. */
  pixels: Float32Array | null;
  gridThw: number[][];
}

/**
 * Tokenizes one prompt (and preprocesses its images) with the Qwen2.5-VL processor.
 * @example const enc = await encodePrompt(tok, prompts[0]); enc.ids.length
 */
export async function encodePrompt(
  tok: QwenTokenizer,
  ex: PromptExample,
  sizes: SmartResizeOptions = {},
): Promise<EncodedPrompt> {
  const out = await processor(ex.prompt, { ...sizes, tokenizer: tok, images: ex.images });
  return { ids: out.inputIds[0], pixels: out.pixelValues ?? null, gridThw: out.imageGridThw ?? [] };
}

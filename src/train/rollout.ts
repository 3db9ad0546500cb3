// GRPO rollouts: prompt rows (JSONL) -> prompt text via a named template -> token ids (+ image patches) -> G sampled
// completions per prompt from one shared prefill (model/generate.ts) -> rewards (TRL-style reward function, or the
// math reward of src/reward in its worker pool) -> the padded [prompt | completion] rows the loss is computed on.
// Follows TRL `GRPOTrainer._generate_and_score_completions` (prompts x G, rewards, then advantages elsewhere).
//
// Shapes: B prompts, G generations per prompt, R = B x G completion rows (row r continues prompt floor(r / G)),
// P padded prompt length (prompts are left-padded), Tc longest completion, L = P + Tc.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type ChatMessage, type ContentPart, renderChat } from '../data/chat.js';
import { epochOrder, type JsonlRow, readJsonl } from '../data/dataset.js';
import { processor } from '../data/processor.js';
import { buildPrompt } from '../data/templates.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { type CausalLM, type GenerateOptions, type GenerateResult, generate } from '../model/generate.js';
import type { ModelInputs } from '../model/qwen2_5_vl.js';
import { findBoxes } from '../reward/extract.js';
import type { VerifierPool } from '../reward/pool.js';
import { mathRewardBatch, type RewardFormat } from '../reward/reward.js';
import type { GrpoConfig } from './grpo_config.js';
import type { DataPosition } from './state.js';

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

/** Context handed to a reward function, one entry per completion (TRL passes dataset columns as kwargs). */
export interface RewardContext {
  answers: (string | null)[];
  prompts: string[];
  promptIds: string[];
  finishReasons: ('stop' | 'length')[];
  completionIds: number[][];
}

/**
 * A TRL-like reward function: one number per completion, `null` where it does not apply (counted as 0).
 * @example const firstIsA: RewardFunction = (completions) => completions.map((c) => (c.startsWith('A') ? 1 : 0));
 */
export type RewardFunction = (
  completions: string[],
  ctx: RewardContext,
) => (number | null)[] | Promise<(number | null)[]>;

const firstString = (v: Record<string, unknown>, name: string, auto: string[]): string | undefined => {
  for (const n of name === 'auto' ? auto : [name])
    if (typeof v[n] === 'string' && v[n] !== '') return v[n] as string;
  return undefined;
};

/** Content of the last `\boxed{...}` in s, or undefined. */
function lastBoxedContent(s: string): string | undefined {
  const boxes = findBoxes(s);
  return boxes.length ? boxes[boxes.length - 1].content : undefined;
}

function rowImagePaths(v: Record<string, unknown>, root: string, where: string): string[] {
  const raw = v.images ?? (v.image === undefined || v.image === null ? [] : [v.image]);
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
    throw new Error(`${where}: 'image' must be a path string and 'images' a list of path strings`);
  }
  return (raw as string[]).map((p) => path.resolve(root, p));
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
 * The answer is `answerField` ('auto': `answer`, else the last \boxed{} of `solution`). A `choices` list (PuzzleVQA)
 * is appended to the question as `Choices: a, b, c`.
 * @example rowToPrompt({ file: 'p.jsonl', line: 1, value: { question: '1+1?', answer: '2' } }, cfg.data, '.').answer // '2'
 */
export function rowToPrompt(row: JsonlRow, o: GrpoConfig['data'], root: string): PromptExample {
  const where = `${row.file}:${row.line}`;
  const v = row.value as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error(`${where}: each line must be a JSON object`);
  const images = rowImagePaths(v, root, where);
  const sol = typeof v.solution === 'string' ? lastBoxedContent(v.solution) : undefined;
  const answer =
    firstString(v, o.answerField, ['answer']) ?? (o.answerField === 'auto' ? sol : undefined) ?? null;
  const id = typeof v.id === 'string' || typeof v.id === 'number' ? String(v.id) : where;
  const isMessages = o.format === 'messages' || (o.format === 'auto' && 'messages' in v);
  if (isMessages) {
    if (!Array.isArray(v.messages) || v.messages.length === 0)
      throw new Error(`${where}: 'messages' must be a non-empty list`);
    return { id, prompt: messagesPrompt(v, images, where) + (o.responsePrefix ?? ''), images, answer, where };
  }
  const q = firstString(v, o.questionField, ['question', 'problem']);
  if (q === undefined) {
    const want = o.questionField === 'auto' ? 'question or problem' : o.questionField;
    throw new Error(`${where}: no question: expected a non-empty '${want}' field (set data.questionField)`);
  }
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
export async function loadPrompts(file: string, o: GrpoConfig['data']): Promise<PromptExample[]> {
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

/** A tokenized prompt: ids with image pads expanded, and its image patches. */
export interface EncodedPrompt {
  ids: number[];
  /** [N_i, 1176] row-major patches, or null for text-only prompts. */
  pixels: Float32Array | null;
  gridThw: number[][];
}

/**
 * Tokenizes one prompt (and preprocesses its images) with the Qwen2.5-VL processor.
 * @example const enc = await encodePrompt(tok, prompts[0]); enc.ids.length
 */
export async function encodePrompt(tok: QwenTokenizer, ex: PromptExample): Promise<EncodedPrompt> {
  const out = await processor(ex.prompt, { tokenizer: tok, images: ex.images });
  return { ids: out.inputIds[0], pixels: out.pixelValues ?? null, gridThw: out.imageGridThw ?? [] };
}

/** Concatenated patches and grids of `prompts` in row order; the caller disposes `pixelValues`. */
function imageInputs(prompts: EncodedPrompt[]): Pick<ModelInputs, 'pixelValues' | 'imageGridThw'> {
  const withImages = prompts.filter((p) => p.pixels !== null);
  if (withImages.length === 0) return {};
  const total = withImages.reduce((a, p) => a + (p.pixels as Float32Array).length, 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const p of withImages) {
    data.set(p.pixels as Float32Array, at);
    at += (p.pixels as Float32Array).length;
  }
  return {
    pixelValues: tf.tensor2d(data, [total / 1176, 1176]),
    imageGridThw: withImages.flatMap((p) => p.gridThw),
  };
}

/**
 * Samples `numSamples` completions per prompt from one shared prefill (left-padded batch).
 * @example const out = await rolloutPrompts(model, encoded, { maxNewTokens: 64, numSamples: 8, rng, padId });
 */
export async function rolloutPrompts(
  model: CausalLM,
  prompts: EncodedPrompt[],
  opts: GenerateOptions & { padId: number },
): Promise<GenerateResult> {
  const P = Math.max(...prompts.map((p) => p.ids.length));
  const inputIds = prompts.map((p) => [...new Array(P - p.ids.length).fill(opts.padId), ...p.ids]);
  const attentionMask = prompts.map((p) => [...new Array(P - p.ids.length).fill(0), ...p.ids.map(() => 1)]);
  const img = imageInputs(prompts);
  try {
    return await generate(model, { inputIds, attentionMask, ...img }, opts);
  } finally {
    img.pixelValues?.dispose();
  }
}

/** Padded [prompt | completion] rows for the loss; `targets`/`mask` cover the completion positions only. */
export interface TrainRows {
  inputs: ModelInputs;
  /** Padded prompt length: hidden state P - 1 + t predicts completion token t. */
  promptLen: number;
  /** [n][Tc] completion ids (0 on padding). */
  targets: number[][];
  /** [n][Tc] 1 on completion tokens (incl. a final EOS), 0 on padding. */
  mask: number[][];
}

/**
 * Builds loss rows for completions `tokens[i]` continuing `prompts[i]` (prompts left-, completions right-padded).
 * Owns a pixel tensor when prompts have images: dispose with `disposeRows`.
 * @example buildTrainRows([{ ids: [5, 6], pixels: null, gridThw: [] }], [[7]], 0).targets // [[7]]
 */
export function buildTrainRows(prompts: EncodedPrompt[], tokens: number[][], padId: number): TrainRows {
  if (prompts.length !== tokens.length)
    throw new Error(`buildTrainRows: ${prompts.length} prompts for ${tokens.length} completions`);
  const P = Math.max(...prompts.map((p) => p.ids.length));
  const Tc = Math.max(1, ...tokens.map((t) => t.length));
  const pad = (n: number, v: number) => new Array<number>(n).fill(v);
  const inputIds = prompts.map((p, i) => [
    ...pad(P - p.ids.length, padId),
    ...p.ids,
    ...tokens[i],
    ...pad(Tc - tokens[i].length, padId),
  ]);
  const attentionMask = prompts.map((p, i) => [
    ...pad(P - p.ids.length, 0),
    ...pad(p.ids.length + tokens[i].length, 1),
    ...pad(Tc - tokens[i].length, 0),
  ]);
  const targets = tokens.map((t) => [...t, ...pad(Tc - t.length, 0)]);
  const mask = tokens.map((t) => [...pad(t.length, 1), ...pad(Tc - t.length, 0)]);
  return { inputs: { inputIds, attentionMask, ...imageInputs(prompts) }, promptLen: P, targets, mask };
}

/** Frees the tensors a TrainRows owns. */
export const disposeRows = (rows: TrainRows): void => rows.inputs.pixelValues?.dispose();

/** Options of {@link scoreCompletions}. */
export interface ScoreOptions {
  /** Custom reward; default: the math reward (1 if the answer matches the gold answer). */
  rewardFn?: RewardFunction;
  format: RewardFormat;
  /** Verifier worker pool for the math reward (null: verify in this thread, no time limit). */
  pool?: VerifierPool | null;
}

/**
 * Rewards, one number per completion: `null` -> 0, and in ORZ mode a truncated completion (finishReason 'length')
 * scores 0 whatever the reward function says (ORZ). Returns the count of nulls too.
 * @example await scoreCompletions(['\\boxed{2}'], ctx, { format: 'boxed' }) // { rewards: [1], nulls: 0 }
 */
export async function scoreCompletions(
  completions: string[],
  ctx: RewardContext,
  o: ScoreOptions,
): Promise<{ rewards: number[]; nulls: number }> {
  const raw = o.rewardFn
    ? await o.rewardFn(completions, ctx)
    : await mathRewardBatch(completions, ctx.answers, {
        format: o.format,
        finishReasons: ctx.finishReasons,
        pool: o.pool,
      });
  if (!Array.isArray(raw) || raw.length !== completions.length) {
    throw new Error(
      `reward function returned ${Array.isArray(raw) ? raw.length : typeof raw} values for ${completions.length} completions; return one number (or null) per completion`,
    );
  }
  let nulls = 0;
  const rewards = raw.map((r, i) => {
    if (r === null || r === undefined) {
      nulls++;
      return 0;
    }
    if (typeof r !== 'number' || !Number.isFinite(r))
      throw new Error(`reward function returned ${r} for completion ${i}; return a finite number or null`);
    return o.format === 'orz' && ctx.finishReasons[i] === 'length' ? 0 : r;
  });
  return { rewards, nulls };
}

// Demo model I/O: the demo's compact vocabulary (data/compact_vocab.ts built from the demo conversations), prompt
// batches for generation, and the held-out evaluation of the demo (greedy pass@1 on images or text renderings).
//
// Why a compact vocabulary: the Qwen2.5 embedding has 151,936 rows; the demo task uses ~120 of them. A tiny model
// with the full vocabulary spends >95% of its FLOPs in the LM head and cannot learn in minutes on 2 CPU cores. The
// demo model (models/demo/config.json) has `vocab_size` 160 and its special-token ids point at the compact slots;
// the CompactTokenizer is saved next to each checkpoint (`compact_vocab.json`).
//
// Shapes: B prompts, T tokens, N patches (1176 values each).
import * as tf from '@tensorflow/tfjs-core';
import { behaviorRates } from '../analysis/behaviors.js';
import { type ChatMessage, renderChat } from '../data/chat.js';
import { CompactTokenizer } from '../data/compact_vocab.js';
import { processor } from '../data/processor.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { generate } from '../model/generate.js';
import type { ModelInputs, Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { mean as meanOf } from '../util/stats.js';
import { gradeDemo } from './grade.js';
import type { VisualProblem } from './render.js';
import {
  CAPTION_PROMPT,
  captionReply,
  makeProblems,
  type Problem,
  presenceQuery,
  TASK_KINDS,
} from './tasks.js';

/**
 * Every rendered demo conversation (text and image versions, 400 problems per split, all task kinds) plus the
 * integers 0..20 in boxed form: the corpus of the demo vocabulary.
 * @example demoCorpus().length // 4801
 */
export function demoCorpus(): string[] {
  const out: string[] = [];
  const chat = (user: ChatMessage['content'], reply: string) =>
    renderChat(
      [
        { role: 'user', content: user },
        { role: 'assistant', content: reply },
      ],
      { addGenerationPrompt: false },
    );
  const afterImage = (text: string): ChatMessage['content'] => [{ type: 'image' }, { type: 'text', text }];
  for (const split of ['train', 'eval'] as const) {
    for (const p of makeProblems({ seed: 0, split, count: 400 })) {
      out.push(chat(p.textPrompt, p.target));
      out.push(chat(afterImage(p.question), p.target));
      out.push(chat(afterImage(CAPTION_PROMPT), captionReply(p.description)));
      for (const k of [0, 1]) {
        const q = presenceQuery(p, k);
        out.push(chat(afterImage(q.question), q.reply));
      }
      out.push(chat(`${p.description} ${CAPTION_PROMPT}`, p.description));
    }
  }
  out.push(Array.from({ length: 21 }, (_, n) => ` ${n}{${n}}`).join(''));
  return out;
}

/**
 * The demo's CompactTokenizer over the Qwen tokenizer, with `vocabSize` slots (the model's vocab_size).
 * @example const ct = demoTokenizer(await defaultTokenizer(), 160); ct.special.imagePad // 158
 */
export function demoTokenizer(base: QwenTokenizer, vocabSize: number): CompactTokenizer {
  return CompactTokenizer.build(base, demoCorpus(), { vocabSize });
}

/** Batch tensors for the model; `pixelValues` is owned by the caller. */
export type DemoBatch = ModelInputs & { inputIds: number[][]; attentionMask: number[][] };

/** User turn of a problem: the text rendering (stage 1) or the image + question (stage 2). */
export function userTurn(p: Problem | VisualProblem, mode: 'text' | 'image'): ChatMessage {
  if (mode === 'text') return { role: 'user', content: p.textPrompt };
  const image = (p as VisualProblem).image;
  if (!image) throw new Error(`problem ${p.id} has no rendered image; use makeVisualProblems for image mode`);
  return {
    role: 'user',
    content: [
      { type: 'image', image },
      { type: 'text', text: p.question },
    ],
  };
}

/**
 * The demo replies start inside the think block: prompts end with `<|im_start|>assistant\n<think>` (as the ORZ
 * template ends with `Assistant: <think>`), so a model that learned to caption images still starts reasoning.
 */
export const DEMO_RESPONSE_PREFIX = '<think>';

/** Generation prompts (left-padded, `<|im_start|>assistant\n` + `prefix` appended), in compact ids. */
export async function promptBatch(
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  ct: CompactTokenizer,
  prefix = '',
): Promise<DemoBatch> {
  const convs = ps.map((p) => [userTurn(p, mode)]);
  const out = await processor(convs, { addGenerationPrompt: true, tokenizer: ct.asQwenTokenizer() });
  const extra = prefix ? ct.encode(prefix) : [];
  const batch: DemoBatch = {
    inputIds: out.inputIds.map((row) => [...row, ...extra]),
    attentionMask: out.attentionMask.map((row) => [...row, ...extra.map(() => 1)]),
  };
  if (out.pixelValues && out.pixelShape) {
    batch.pixelValues = tf.tensor2d(out.pixelValues, out.pixelShape);
    batch.imageGridThw = out.imageGridThw;
  }
  return batch;
}

export interface DemoEvalRow {
  id: string;
  task: string;
  answer: string;
  completion: string;
  reward: number;
  tokens: number;
}

export interface DemoEvalResult {
  accuracy: number;
  byTask: Record<string, number>;
  meanLength: number;
  behaviors: Record<string, number>;
  rows: DemoEvalRow[];
}

/** Accuracy overall and per task kind, mean completion length and behaviour rates. */
export function summarizeEval(rows: DemoEvalRow[]): DemoEvalResult {
  const mean = (xs: number[]) => meanOf(xs, 0);
  const byTask: Record<string, number> = {};
  for (const t of TASK_KINDS) {
    const sub = rows.filter((r) => r.task === t);
    if (sub.length) byTask[t] = mean(sub.map((r) => r.reward));
  }
  return {
    accuracy: mean(rows.map((r) => r.reward)),
    byTask,
    meanLength: mean(rows.map((r) => r.tokens)),
    behaviors: behaviorRates(rows.map((r) => r.completion)),
    rows,
  };
}

/**
 * Greedy replies of the model to demo prompts, in batches of `batchSize`: each problem with its decoded reply
 * (special tokens dropped, `prefix` kept in front) and its generated token count.
 */
async function greedyReplies<P extends Problem | VisualProblem>(
  model: Qwen2_5_VL,
  ps: readonly P[],
  mode: 'text' | 'image',
  ct: CompactTokenizer,
  opts: { maxNewTokens: number; batchSize?: number; prefix?: string },
): Promise<{ p: P; text: string; tokens: number }[]> {
  const out: { p: P; text: string; tokens: number }[] = [];
  const bs = opts.batchSize ?? 32;
  const prefix = opts.prefix ?? '';
  for (let i = 0; i < ps.length; i += bs) {
    const chunk = ps.slice(i, i + bs);
    const batch = await promptBatch(chunk, mode, ct, prefix);
    try {
      const gen = await generate(model, batch, {
        maxNewTokens: opts.maxNewTokens,
        greedy: true,
        allowedVocab: ct.textEnd,
        eosIds: [ct.special.eos],
        padId: ct.special.pad,
      });
      chunk.forEach((p, j) => {
        const text = prefix + ct.decode(gen.tokens[j], { skipSpecialTokens: true });
        out.push({ p, text, tokens: gen.tokens[j].length });
      });
    } finally {
      batch.pixelValues?.dispose();
    }
  }
  return out;
}

/**
 * Greedy pass@1 of the model on demo problems (images or text renderings), in batches.
 * @example const r = await evalDemo(model, evalSet, 'image', ct, { maxNewTokens: 110 }); r.accuracy
 */
export async function evalDemo(
  model: Qwen2_5_VL,
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  ct: CompactTokenizer,
  opts: { maxNewTokens: number; batchSize?: number },
): Promise<DemoEvalResult> {
  const replies = await greedyReplies(model, ps, mode, ct, { ...opts, prefix: DEMO_RESPONSE_PREFIX });
  return summarizeEval(
    replies.map(({ p, text, tokens }) => ({
      id: p.id,
      task: p.task,
      answer: p.answer,
      completion: text,
      reward: gradeDemo(text, p.answer),
      tokens,
    })),
  );
}

export interface CaptionEvalResult {
  /** Fraction of descriptions reproduced exactly. */
  exact: number;
  /** Fraction of items (in order) named exactly: size, colour and kind. */
  itemAccuracy: number;
  rows: { id: string; description: string; caption: string; itemsRight: number; items: number }[];
}

/**
 * The items of a description in order.
 * @example descriptionItems('The picture shows red, blue and red shapes.') // ['red', 'blue', 'red']
 */
export function descriptionItems(text: string): string[] {
  return text
    .trim()
    .replace(/^<think>\s*/, '')
    .replace(/\s*<\/think>$/, '')
    .replace(/^The picture shows /, '')
    .replace(/\.$/, '')
    .replace(/ shapes?$/, '')
    .split(/, | and /)
    .filter((s) => s.length > 0);
}

/**
 * Greedy captions of held-out images (the stage-0 perception check): exact match and per-item accuracy.
 * @example const c = await evalCaptions(model, evalSet, ct); c.itemAccuracy
 */
export async function evalCaptions(
  model: Qwen2_5_VL,
  ps: readonly VisualProblem[],
  ct: CompactTokenizer,
  opts: { maxNewTokens?: number; batchSize?: number } = {},
): Promise<CaptionEvalResult> {
  const asked = ps.map((p) => ({ ...p, question: CAPTION_PROMPT }));
  const replies = await greedyReplies(model, asked, 'image', ct, {
    maxNewTokens: opts.maxNewTokens ?? 48,
    batchSize: opts.batchSize,
  });
  const rows = replies.map(({ p, text }) => {
    const caption = text.trim();
    const want = descriptionItems(p.description);
    const got = descriptionItems(caption);
    const itemsRight = want.filter((w, k) => got[k] === w).length;
    return { id: p.id, description: p.description, caption, itemsRight, items: want.length, got: got.length };
  });
  const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, r) => a + f(r), 0);
  return {
    exact: rows.length
      ? sum((r) => (r.itemsRight === r.items && r.got === r.items ? 1 : 0)) / rows.length
      : 0,
    itemAccuracy: sum((r) => r.items) ? sum((r) => r.itemsRight) / sum((r) => r.items) : 0,
    rows: rows.map(({ got: _got, ...r }) => r),
  };
}

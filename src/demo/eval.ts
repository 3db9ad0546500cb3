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
import type { VisualProblem } from './render.js';
import { gradeDemo, makeProblems, type Problem, TASK_KINDS } from './tasks.js';

/**
 * Every rendered demo conversation (text and image versions, 400 problems per split, all task kinds) plus the
 * integers 0..20 in boxed form: the corpus of the demo vocabulary.
 * @example demoCorpus().length // 3201
 */
export function demoCorpus(): string[] {
  const out: string[] = [];
  for (const split of ['train', 'eval'] as const) {
    for (const p of makeProblems({ seed: 0, split, count: 400 })) {
      const reply: ChatMessage = { role: 'assistant', content: p.target };
      const image: ChatMessage = {
        role: 'user',
        content: [{ type: 'image' }, { type: 'text', text: p.question }],
      };
      out.push(renderChat([{ role: 'user', content: p.textPrompt }, reply], { addGenerationPrompt: false }));
      out.push(renderChat([image, reply], { addGenerationPrompt: false }));
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

/** Generation prompts (left-padded, `<|im_start|>assistant\n` appended), in compact ids. */
export async function promptBatch(
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  ct: CompactTokenizer,
): Promise<DemoBatch> {
  const convs = ps.map((p) => [userTurn(p, mode)]);
  const out = await processor(convs, { addGenerationPrompt: true, tokenizer: ct.asQwenTokenizer() });
  const batch: DemoBatch = { inputIds: out.inputIds, attentionMask: out.attentionMask };
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
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
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
  const rows: DemoEvalRow[] = [];
  const bs = opts.batchSize ?? 32;
  for (let i = 0; i < ps.length; i += bs) {
    const chunk = ps.slice(i, i + bs);
    const batch = await promptBatch(chunk, mode, ct);
    try {
      const out = await generate(model, batch, {
        maxNewTokens: opts.maxNewTokens,
        greedy: true,
        allowedVocab: ct.textEnd,
        eosIds: [ct.special.eos],
        padId: ct.special.pad,
      });
      chunk.forEach((p, j) => {
        const completion = ct.decode(out.tokens[j], { skipSpecialTokens: true });
        rows.push({
          id: p.id,
          task: p.task,
          answer: p.answer,
          completion,
          reward: gradeDemo(completion, p.answer),
          tokens: out.tokens[j].length,
        });
      });
    } finally {
      batch.pixelValues?.dispose();
    }
  }
  return summarizeEval(rows);
}

// Eval harness: generate K completions per benchmark problem (greedy pass@1 when K = 1, sampled avg@K otherwise),
// verify each against the gold answer with reward/verify (Math-Verify style; option letters for multiple choice),
// and aggregate accuracy overall, per subject and per level. Every completion and its verdict is kept.
//
// Shapes: B problems per generation batch, K samples per problem, R = B x K rows.
import * as tf from '@tensorflow/tfjs-core';
import { processor } from '../data/processor.js';
import { buildPrompt, type PromptTemplateName } from '../data/templates.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { type CausalLM, generate } from '../model/generate.js';
import { QWEN_REAL_VOCAB } from '../model/sampling.js';
import { verify } from '../reward/verify.js';
import { Rng } from '../util/rng.js';
import type { EvalItem } from './data.js';

export interface EvalOptions {
  /** Completions per problem (K). 1 = greedy pass@1 unless `temperature` is set. */
  samples: number;
  maxNewTokens: number;
  /** Sampling temperature for K > 1 (default 1.0, as ORZ). */
  temperature?: number;
  template: PromptTemplateName;
  /** Problems per generation batch. */
  batchSize: number;
  seed: number;
  /** Upper bound on image pixels after resizing (keeps CPU evals affordable). */
  maxPixels?: number;
  /** Called after each batch with the number of problems done. */
  onProgress?: (done: number, total: number) => void;
}

/** One completion and its verdict. */
export interface EvalRecord {
  id: string;
  format: string;
  subject: string;
  level: string;
  sample: number;
  answer: string;
  completion: string;
  extracted: string | null;
  correct: boolean;
  reason: string;
  finishReason: string;
  tokens: number;
}

export type Breakdown = Record<string, { n: number; accuracy: number }>;

export interface EvalSummary {
  metric: string;
  n: number;
  samples: number;
  accuracy: number;
  bySubject: Breakdown;
  byLevel: Breakdown;
}

/**
 * Accuracy of item-level means (avg@K), overall and grouped by subject and level.
 * @example summarizeRecords(records, 1).accuracy // fraction of problems answered correctly
 */
export function summarizeRecords(records: readonly EvalRecord[], samples: number): EvalSummary {
  const perItem = new Map<string, { subject: string; level: string; hits: number; n: number }>();
  for (const r of records) {
    const e = perItem.get(r.id) ?? { subject: r.subject, level: r.level, hits: 0, n: 0 };
    e.hits += r.correct ? 1 : 0;
    e.n += 1;
    perItem.set(r.id, e);
  }
  const items = [...perItem.values()].map((e) => ({ ...e, score: e.hits / e.n }));
  const group = (key: 'subject' | 'level'): Breakdown => {
    const out: Breakdown = {};
    for (const it of items) {
      const g = out[it[key]] ?? { n: 0, accuracy: 0 };
      g.accuracy = (g.accuracy * g.n + it.score) / (g.n + 1);
      g.n += 1;
      out[it[key]] = g;
    }
    return out;
  };
  const accuracy = items.length ? items.reduce((a, it) => a + it.score, 0) / items.length : 0;
  const metric = samples === 1 ? 'pass@1' : `avg@${samples}`;
  return { metric, n: items.length, samples, accuracy, bySubject: group('subject'), byLevel: group('level') };
}

/** Verdict of one completion (the gold is verified as stored; letters for multiple choice). */
export function gradeCompletion(
  item: EvalItem,
  completion: string,
): { correct: boolean; extracted: string | null; reason: string } {
  const v = verify(item.answer, completion, item.choices ? { choices: item.choices } : {});
  return { correct: v.equal, extracted: v.extracted, reason: v.reason };
}

async function generateBatch(
  model: CausalLM,
  tok: QwenTokenizer,
  items: EvalItem[],
  o: EvalOptions,
  rng: Rng,
) {
  const prompts = items.map((it) => buildPrompt(o.template, it.question, { numImages: it.image ? 1 : 0 }));
  const images = items.flatMap((it) => (it.image ? [it.image] : []));
  const enc = await processor(prompts, { images, tokenizer: tok, maxPixels: o.maxPixels });
  const pixelValues =
    enc.pixelValues && enc.pixelShape ? tf.tensor2d(enc.pixelValues, enc.pixelShape) : undefined;
  const greedy = o.samples === 1 && o.temperature === undefined;
  try {
    return await generate(
      model,
      {
        inputIds: enc.inputIds,
        attentionMask: enc.attentionMask,
        pixelValues,
        imageGridThw: enc.imageGridThw,
      },
      {
        maxNewTokens: o.maxNewTokens,
        numSamples: o.samples,
        greedy,
        temperature: greedy ? undefined : (o.temperature ?? 1),
        rng,
        allowedVocab: QWEN_REAL_VOCAB,
        stopStrings: o.template === 'orz' ? ['</answer>'] : undefined,
        decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
      },
    );
  } finally {
    pixelValues?.dispose();
  }
}

/**
 * Runs the benchmark: every item gets `samples` completions, each verified.
 * @example
 * const records = await runEval(model, tok, items, { samples: 1, maxNewTokens: 512, template: 'qwen', batchSize: 8, seed: 0 });
 * summarizeRecords(records, 1).accuracy
 */
export async function runEval(
  model: CausalLM,
  tok: QwenTokenizer,
  items: readonly EvalItem[],
  o: EvalOptions,
): Promise<EvalRecord[]> {
  if (!(Number.isInteger(o.samples) && o.samples >= 1))
    throw new Error(`eval: samples must be an integer >= 1, got ${o.samples}`);
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1))
    throw new Error(`eval: batchSize must be an integer >= 1, got ${o.batchSize}`);
  const root = new Rng(o.seed ?? 0).split('eval');
  const records: EvalRecord[] = [];
  for (let i = 0; i < items.length; i += o.batchSize) {
    const batch = items.slice(i, i + o.batchSize);
    const out = await generateBatch(model, tok, batch, o, root.split(`batch${i}`));
    out.tokens.forEach((toks, r) => {
      const it = batch[out.promptIndex[r]];
      const completion = out.texts?.[r] ?? '';
      const g = gradeCompletion(it, completion);
      records.push({
        id: it.id,
        format: it.format,
        subject: it.subject,
        level: it.level,
        sample: r % o.samples,
        answer: it.answer,
        completion,
        ...g,
        finishReason: out.finishReasons[r],
        tokens: toks.length,
      });
    });
    o.onProgress?.(Math.min(items.length, i + o.batchSize), items.length);
  }
  return records;
}

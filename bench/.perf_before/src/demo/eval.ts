// Demo model I/O: a compact vocabulary over the Qwen tokenizer, batch encoding for SFT / rollouts / eval, and the
// held-out evaluation of the demo (greedy pass@1 on images or text renderings).
//
// Why a compact vocabulary: the Qwen2.5 embedding has 151,936 rows; the demo task uses ~120 of them. A tiny model
// with the full vocabulary spends >95% of its FLOPs in the LM head and cannot learn in minutes on 2 CPU cores. So
// texts are tokenised with the real Qwen tokenizer + chat template (data/processor.ts), then every id is mapped to
// its index in `DemoVocab.qwenIds`; the model (models/demo/config.json) has `vocab_size` = that small number and
// its special-token ids point at the compact slots. Decoding maps back to Qwen ids. The vocab is saved next to
// each checkpoint (`demo_vocab.json`).
//
// Shapes: B prompts, R = B x G rollout rows, T tokens, N patches (1176 values each).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { behaviorRates } from '../analysis/behaviors.js';
import { type ChatMessage, renderChat } from '../data/chat.js';
import { type ProcessorOutput, processor } from '../data/processor.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import type { Qwen2_5_VLConfig } from '../model/config.js';
import { generate } from '../model/generate.js';
import type { ModelInputs, Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import type { VisualProblem } from './render.js';
import { gradeDemo, makeProblems, type Problem, TASK_KINDS } from './tasks.js';

/** Text specials at the first compact slots; the vision specials take the LAST four slots of the vocabulary, so
 * generation can ban them with `allowedVocab` (a sampled `<|image_pad|>` would need image features). */
export const DEMO_TEXT_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
export const DEMO_VISION_SPECIALS = [
  '<|vision_start|>',
  '<|vision_end|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;
export const DEMO_PAD = 0;
export const DEMO_EOS = 2;
export const DEMO_VOCAB_FILE = 'demo_vocab.json';
/** Unused slot between the text tokens and the vision specials (never sampled). */
const FILLER = -1;

/** Config fields that must point at the compact slots; checked by {@link DemoVocab.checkConfig}. */
type TokenFields = Pick<
  Qwen2_5_VLConfig,
  | 'vocab_size'
  | 'eos_token_id'
  | 'vision_start_token_id'
  | 'vision_end_token_id'
  | 'image_token_id'
  | 'video_token_id'
>;

/** Bijection between the Qwen ids the demo uses and 0..size-1 (see the file comment). */
export class DemoVocab {
  private readonly index: Map<number, number>;
  /** Ids >= textEnd are vision specials or unused: pass it as generate's `allowedVocab`. */
  readonly textEnd: number;
  constructor(
    readonly qwenIds: readonly number[],
    private readonly tok: QwenTokenizer,
  ) {
    this.index = new Map(qwenIds.flatMap((id, i) => (id === FILLER ? [] : [[id, i] as [number, number]])));
    const first = qwenIds.indexOf(FILLER);
    this.textEnd = first >= 0 ? first : qwenIds.length - DEMO_VISION_SPECIALS.length;
  }

  get size(): number {
    return this.qwenIds.length;
  }

  /**
   * Text specials, every id of a large sample of demo conversations (ascending), filler, vision specials.
   * @example const vocab = DemoVocab.build(await defaultTokenizer(), 160); vocab.textEnd // ~121
   */
  static build(tok: QwenTokenizer, vocabSize: number): DemoVocab {
    const ids = (xs: readonly string[]) => xs.map((s) => tok.tokenToId(s) as number);
    const [head, tail] = [ids(DEMO_TEXT_SPECIALS), ids(DEMO_VISION_SPECIALS)];
    const seen = new Set<number>();
    for (const split of ['train', 'eval'] as const) {
      for (const p of makeProblems({ seed: 0, split, count: 400 })) {
        const reply: ChatMessage = { role: 'assistant', content: p.target };
        const image: ChatMessage = {
          role: 'user',
          content: [{ type: 'image' }, { type: 'text', text: p.question }],
        };
        for (const conv of [
          [{ role: 'user', content: p.textPrompt }, reply],
          [image, reply],
        ]) {
          for (const id of tok.encode(renderChat(conv, { addGenerationPrompt: false }))) seen.add(id);
        }
      }
    }
    for (let n = 0; n <= 20; n++) for (const id of tok.encode(` ${n}{${n}}`)) seen.add(id);
    const text = [...seen].filter((id) => !head.includes(id) && !tail.includes(id)).sort((a, b) => a - b);
    const free = vocabSize - head.length - text.length - tail.length;
    if (free < 0) {
      throw new Error(
        `DemoVocab: the demo needs ${vocabSize - free} token slots but the model config has vocab_size ${vocabSize}; ` +
          'raise vocab_size in the model config (and move the vision token ids to the last four slots)',
      );
    }
    return new DemoVocab([...head, ...text, ...new Array(free).fill(FILLER), ...tail], tok);
  }

  /** Throws unless the config's special token ids point at this vocabulary's slots. */
  checkConfig(cfg: TokenFields): void {
    const V = this.size;
    const want: [keyof TokenFields, number][] = [
      ['vocab_size', V],
      ['eos_token_id', DEMO_EOS],
      ['vision_start_token_id', V - 4],
      ['vision_end_token_id', V - 3],
      ['image_token_id', V - 2],
      ['video_token_id', V - 1],
    ];
    const bad = want.filter(([k, v]) => cfg[k] !== v);
    if (bad.length) {
      throw new Error(
        `demo model config does not match the demo vocabulary: ${bad.map(([k, v]) => `${k} is ${cfg[k]}, expected ${v}`).join('; ')} ` +
          '(see models/demo/config.json)',
      );
    }
  }

  /** Reads `demo_vocab.json` from a checkpoint folder. */
  static async load(dir: string, tok: QwenTokenizer): Promise<DemoVocab> {
    const file = path.join(dir, DEMO_VOCAB_FILE);
    const json = JSON.parse(await readFile(file, 'utf8')) as { qwenIds?: unknown };
    if (!Array.isArray(json.qwenIds)) throw new Error(`${file}: expected {"qwenIds": number[]}`);
    return new DemoVocab(json.qwenIds as number[], tok);
  }

  async save(dir: string): Promise<void> {
    await writeFile(path.join(dir, DEMO_VOCAB_FILE), `${JSON.stringify({ qwenIds: this.qwenIds })}\n`);
  }

  /** Qwen ids -> compact ids; -100 (ignored label) passes through. Throws on an id outside the vocabulary. */
  toCompact(ids: readonly number[]): number[] {
    return ids.map((id) => {
      if (id === -100) return id;
      const c = this.index.get(id);
      if (c === undefined) {
        throw new Error(
          `DemoVocab: token ${id} ('${this.tok.idToToken(id)}') is not in the demo vocabulary; demo prompts must ` +
            'use the words of src/demo/tasks.ts (rebuild the vocab with DemoVocab.build after changing them)',
        );
      }
      return c;
    });
  }

  decode(compact: readonly number[], skipSpecial = false): string {
    return this.tok.decode(
      compact.map((c) => this.qwenIds[c]),
      { skipSpecialTokens: skipSpecial },
    );
  }
}

/** Batch tensors for the model; `pixelValues` is owned by the caller. */
export type DemoBatch = ModelInputs & {
  inputIds: number[][];
  attentionMask: number[][];
  labels?: number[][];
};

function toBatch(out: ProcessorOutput, vocab: DemoVocab): DemoBatch {
  const batch: DemoBatch = {
    inputIds: out.inputIds.map((r) => vocab.toCompact(r)),
    attentionMask: out.attentionMask,
  };
  if (out.labels) batch.labels = out.labels.map((r) => vocab.toCompact(r));
  if (out.pixelValues && out.pixelShape) {
    batch.pixelValues = tf.tensor2d(out.pixelValues, out.pixelShape);
    batch.imageGridThw = out.imageGridThw;
  }
  return batch;
}

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
 * SFT batch: user turn + target chain, labels on the assistant reply only, right-padded.
 * @example const b = await sftBatch(problems.slice(0, 8), 'text', vocab, tok); model.loss(b, b.labels!)
 */
export async function sftBatch(
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  vocab: DemoVocab,
  tok: QwenTokenizer,
): Promise<DemoBatch> {
  const convs = ps.map((p) => [userTurn(p, mode), { role: 'assistant', content: p.target } as ChatMessage]);
  return toBatch(await processor(convs, { labels: true, padding: 'right', tokenizer: tok }), vocab);
}

/** Generation prompts (left-padded, `<|im_start|>assistant\n` appended). */
export async function promptBatch(
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  vocab: DemoVocab,
  tok: QwenTokenizer,
): Promise<DemoBatch> {
  const convs = ps.map((p) => [userTurn(p, mode)]);
  return toBatch(await processor(convs, { addGenerationPrompt: true, tokenizer: tok }), vocab);
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
 * @example const r = await evalDemo(model, evalSet, 'image', vocab, tok, { maxNewTokens: 110 }); r.accuracy
 */
export async function evalDemo(
  model: Qwen2_5_VL,
  ps: readonly (Problem | VisualProblem)[],
  mode: 'text' | 'image',
  vocab: DemoVocab,
  tok: QwenTokenizer,
  opts: { maxNewTokens: number; batchSize?: number },
): Promise<DemoEvalResult> {
  const rows: DemoEvalRow[] = [];
  const bs = opts.batchSize ?? 32;
  for (let i = 0; i < ps.length; i += bs) {
    const chunk = ps.slice(i, i + bs);
    const batch = await promptBatch(chunk, mode, vocab, tok);
    try {
      const out = await generate(model, batch, {
        maxNewTokens: opts.maxNewTokens,
        greedy: true,
        allowedVocab: vocab.textEnd,
        eosIds: [DEMO_EOS],
        padId: DEMO_PAD,
      });
      chunk.forEach((p, j) => {
        const completion = vocab.decode(out.tokens[j], true);
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

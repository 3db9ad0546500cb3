// Supervised fine-tuning (the linguistic cold start): JSONL chat rows -> tokens with assistant-only labels ->
// length-grouped (or packed) padded batches -> masked causal-LM loss (the fused `Qwen2_5_VL.loss`, model/loss.ts) -> accumulated, clipped AdamW steps on a
// warmup+cosine schedule, with eval loss, atomic checkpoints and exact resume. The step machinery is trainer.ts;
// this file is the loop (nanoGPT train.py: lr -> eval -> accumulate -> clip -> step -> log -> save).
// Follows mlx-lm tuner/trainer.py `train()` and TRL SFTTrainer (assistant-only loss, num_items_in_batch normaliser).
//
// Loss normaliser: every micro-batch of a step divides its summed NLL by the label tokens of the WHOLE step
// (HF num_items_in_batch), so batch 4 x accum 1 and batch 1 x accum 4 make the same update.
// Packing: rows hold several sequences; the batch's segmentIds go to the model, which makes attention block-diagonal
// per sequence and restarts positions per sequence (images included), and the first label of each later sequence is
// masked (dataset.ts). So a packed step has the same loss, normaliser and gradients as the same sequences unpacked.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Batch, collate, SftBatches, stepsForEpochs } from '../data/batches.js';
import type { ChatMessage } from '../data/chat.js';
import {
  loadSftExamples,
  type TokenizedExample,
  type TokenizeFn,
  tokenizeExamples,
} from '../data/dataset.js';
import { concatImages, processImage } from '../data/image.js';
import { processor } from '../data/processor.js';
import type { SmartResizeOptions } from '../data/resize.js';
import { defaultTokenizer, type QwenTokenizer } from '../data/tokenizer.js';
import { tooLongMessage } from '../data/too_long.js';
import { QWEN_PAD_ID } from '../model/generate.js';
import { loadModel } from '../model/load.js';
import { detachAdapter } from '../model/lora.js';
import { shiftLabels } from '../model/loss.js';
import type { ModelInputs, Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { PATCH_WIDTH } from '../model/vision.js';
import { JsonlLogger } from '../util/log.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { imageOptions, type SftConfig } from './config.js';
import { setupAdapter } from './lora.js';
import { openTrainRun, writeRunConfig } from './state.js';
import { Trainer } from './trainer.js';

/** Injected dependencies; everything defaults to the real thing. */
export interface SftDeps {
  /** Use this model instead of loading `config.model` (the caller keeps ownership). */
  model?: Qwen2_5_VL;
  /** Tokenizer for the chat template (default: the bundled Qwen2.5 tokenizer). */
  tokenizer?: QwenTokenizer;
  /** Replace tokenization entirely (e.g. a small-vocabulary test tokenizer); needs `padId`. */
  tokenize?: TokenizeFn;
  padId?: number;
  /** Step log (default: `outDir/log.jsonl`); null disables it. */
  logger?: JsonlLogger | null;
  /** Progress bar stream (default: process.stderr); null disables the bar. */
  progress?: ProgressStream | null;
  /** Info lines (dataset sizes, checkpoints); default console.error. */
  info?: (line: string) => void;
}

/** What a run returns. */
export interface SftResult {
  /** Optimizer steps done by the end of the run (including resumed ones). */
  steps: number;
  /** Loss of every step run in this call, in order. */
  losses: number[];
  evalLosses: { step: number; loss: number }[];
  /** Directory of the final checkpoint. */
  checkpoint: string;
  /** Steps skipped for a non-finite gradient (whole run). */
  nonFiniteSteps: number;
  /** Set when SIGINT/SIGTERM stopped the run early (after saving a checkpoint). */
  interrupted?: 'SIGINT' | 'SIGTERM';
}

/**
 * TokenizeFn using the processor: chat template, image pad expansion, labels on assistant replies only.
 * @example const t = await processorTokenize(tok)([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }]);
 */
export function processorTokenize(tokenizer: QwenTokenizer, images: SmartResizeOptions = {}): TokenizeFn {
  return async (messages: ChatMessage[]) => {
    // Image sizes from the file headers: tokenizing decodes no pixels, whatever the image sizes.
    const out = await processor([messages], {
      ...images,
      tokenizer,
      labels: true,
      padding: 'right',
      pixels: false,
    });
    return { inputIds: out.inputIds[0], labels: out.labels?.[0] ?? [], imageGridThw: out.imageGridThw };
  };
}

/**
 * Model inputs of a collated batch; packed batches (a row holding more than one sequence) carry their segmentIds.
 * The pixel tensor (when images) is the caller's to dispose.
 */
export async function batchInputs(batch: Batch, images: SmartResizeOptions = {}): Promise<ModelInputs> {
  const inputs: ModelInputs = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
  if (batch.segmentIds.some((row) => row.some((s) => s > 0))) inputs.segmentIds = batch.segmentIds;
  const paths = batch.images.flat();
  if (paths.length === 0) return inputs;
  const { pixelValues, imageGridThw } = concatImages(
    await Promise.all(paths.map((p) => processImage(p, images))),
  );
  inputs.pixelValues = tf.tensor2d(pixelValues, [pixelValues.length / PATCH_WIDTH, PATCH_WIDTH]);
  inputs.imageGridThw = imageGridThw;
  return inputs;
}

/** Tokenized examples of a JSONL file, with an info line on truncation/drops. */
async function loadTokenized(
  file: string,
  c: SftConfig,
  tokenize: TokenizeFn,
  info: (l: string) => void,
): Promise<TokenizedExample[]> {
  const raw = await loadSftExamples(file, c.data);
  const { examples, truncated, dropped, tooLong } = await tokenizeExamples(raw, tokenize, c.maxSeqLen);
  info(
    `sft: ${file}: ${examples.length} examples (${truncated} truncated to ${c.maxSeqLen}, ${dropped} dropped)`,
  );
  const why = tooLong.length
    ? tooLongMessage(tooLong, c.maxSeqLen, 'maxSeqLen', '--max-seq-len', 'dropped')
    : '';
  if (examples.length === 0)
    throw new Error(
      `${file}: no usable example left${why ? `.\n${why}` : '; raise maxSeqLen or check the rows'}`,
    );
  if (why) info(`sft: warning: ${why}`);
  return examples;
}

/**
 * Token-weighted mean NLL over the eval examples (fixed order, batches of `batchSize`), no gradients.
 * @example const loss = await evalLoss(model, evalExamples, 4, padId, 'right');
 */
export async function evalLoss(
  model: Qwen2_5_VL,
  examples: TokenizedExample[],
  batchSize: number,
  padId: number,
  padSide: 'left' | 'right',
  images: SmartResizeOptions = {},
): Promise<number> {
  let nll = 0;
  let count = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const batch = collate(
      examples.slice(i, i + batchSize).map((e) => [e]),
      padId,
      padSide,
    );
    const inputs = await batchInputs(batch, images);
    const sum = model.loss(inputs, batch.labels, { numItemsInBatch: 1 });
    nll += (await sum.data())[0];
    tf.dispose([sum, inputs.pixelValues ?? []]);
    count += lossTokens(batch.labels);
  }
  return nll / Math.max(count, 1);
}

/**
 * Label tokens that enter the shifted loss (every non-ignored label after position 0): the HF num_items_in_batch.
 * @example lossTokens([[-100, 5, 6], [7, -100, 8]]) // 3
 */
export function lossTokens(labels: number[][]): number {
  return shiftLabels(labels).count;
}

/** One optimizer step's micro-batches: closures for the trainer and the tensors to free afterwards. */
async function stepClosures(model: Qwen2_5_VL, data: SftBatches, c: SftConfig) {
  const micro: { batch: Batch; inputs: ModelInputs }[] = [];
  for (let k = 0; k < c.gradAccumSteps; k++) {
    const { batch } = data.next();
    micro.push({ batch, inputs: await batchInputs(batch, imageOptions(c)) });
  }
  const numItemsInBatch = micro.reduce((s, m) => s + lossTokens(m.batch.labels), 0);
  const tokens = micro.reduce((s, m) => s + m.batch.attentionMask.flat().reduce((a, b) => a + b, 0), 0);
  const closures = micro.map(
    ({ batch, inputs }) =>
      () =>
        model.loss(inputs, batch.labels, { numItemsInBatch, recompute: c.recompute }),
  );
  const dispose = () =>
    tf.dispose(micro.flatMap((m) => (m.inputs.pixelValues ? [m.inputs.pixelValues] : [])));
  return { closures, tokens, dispose };
}

/**
 * Runs SFT as configured; see the file header. Writes `outDir/training_config.json`, `outDir/log.jsonl` and
 * `outDir/checkpoint-<step>/` (every `saveEvery` steps and at the end).
 * @example
 * const cfg = SftConfig.parse({ model: 'tiny', outDir: 'runs/sft', steps: 20, data: { train: 'train.jsonl' } });
 * const { losses, checkpoint } = await trainSft(cfg);
 */
export async function trainSft(c: SftConfig, deps: SftDeps = {}): Promise<SftResult> {
  await Trainer.ready();
  const lock = openTrainRun(c.outDir, c.resume, 'ovr-train sft');
  try {
    return await runSft(c, deps);
  } finally {
    lock.release();
  }
}

/** trainSft inside the run dir's lock. */
async function runSft(c: SftConfig, deps: SftDeps): Promise<SftResult> {
  const info = deps.info ?? ((l: string) => console.error(l));
  await writeRunConfig(c.outDir, c);
  const tok = deps.tokenize ? undefined : (deps.tokenizer ?? (await defaultTokenizer()));
  const tokenize = deps.tokenize ?? processorTokenize(tok as QwenTokenizer, imageOptions(c));
  const padId = deps.padId ?? tok?.special.pad ?? QWEN_PAD_ID;
  const train = await loadTokenized(c.data.train, c, tokenize, info);
  const evalSet = c.evalEvery > 0 && c.data.eval ? await loadTokenized(c.data.eval, c, tokenize, info) : [];
  const data = new SftBatches(train, {
    batchSize: c.batchSize,
    gradAccumSteps: c.gradAccumSteps,
    seed: c.seed,
    lengthGrouping: c.lengthGrouping,
    padId,
    padSide: c.padSide,
    packTo: c.packing ? c.maxSeqLen : undefined,
  });
  const totalSteps = c.steps ?? stepsForEpochs(c.epochs ?? 1, data.batchesInEpoch(0), c.gradAccumSteps);
  const model = deps.model ?? (await loadModel(c.model, { seed: c.seed }));
  const lora = await setupAdapter(model, c); // LoRA: before the Trainer binds its optimizer to the adapter
  const logger = deps.logger === undefined ? new JsonlLogger(path.join(c.outDir, 'log.jsonl')) : deps.logger;
  const bar =
    deps.progress === null ? undefined : new ProgressBar(totalSteps, deps.progress ?? process.stderr);
  const trainer = new Trainer({
    model,
    config: c,
    totalSteps,
    logger: logger ?? undefined,
    progress: bar,
    info,
  });
  try {
    await resumeRun(c, trainer, data, info);
    return await runLoop({ c, model, data, trainer, evalSet, padId, totalSteps, info });
  } finally {
    bar?.done();
    if (deps.logger === undefined) logger?.close();
    trainer.dispose();
    if (lora) detachAdapter(model.params)?.dispose();
    if (!deps.model) model.dispose();
  }
}

/** On `resume`: the trainer checks the saved config (train/resume.ts), restores weights/optimizer/step/rng and moves the data stream. */
async function resumeRun(
  c: SftConfig,
  trainer: Trainer,
  data: SftBatches,
  info: (l: string) => void,
): Promise<void> {
  const r = await trainer.resumeFrom(c.resume, c.outDir);
  if (!r) return;
  data.seek(r.state.dataPosition);
  info(`sft: resumed from ${r.dir} at step ${r.state.step}`);
}

interface LoopArgs {
  c: SftConfig;
  model: Qwen2_5_VL;
  data: SftBatches;
  trainer: Trainer;
  evalSet: TokenizedExample[];
  padId: number;
  totalSteps: number;
  info: (l: string) => void;
}

/** The training loop: step -> eval -> save, until totalSteps; then the final checkpoint. */
async function runLoop(a: LoopArgs): Promise<SftResult> {
  const { c, model, data, trainer } = a;
  const losses: number[] = [];
  const evalLosses: { step: number; loss: number }[] = [];
  let checkpoint = '';
  while (trainer.step < a.totalSteps) {
    const { closures, tokens, dispose } = await stepClosures(model, data, c);
    try {
      losses.push((await trainer.trainStep(closures, { tokens })).loss);
    } finally {
      dispose();
    }
    const s = trainer.step;
    if (c.evalEvery > 0 && s % c.evalEvery === 0 && a.evalSet.length > 0) {
      const loss = await evalLoss(model, a.evalSet, c.batchSize, a.padId, c.padSide, imageOptions(c));
      evalLosses.push({ step: s, loss });
      trainer.log({ evalLoss: loss });
    }
    const stop = trainer.stopRequested;
    if ((c.saveEvery > 0 && s % c.saveEvery === 0) || s === a.totalSteps || stop) {
      checkpoint = await trainer.save(data.position);
      a.info(`sft: saved ${checkpoint}`);
    }
    if (stop) {
      a.info(`sft: stopped by ${stop} after step ${s} of ${a.totalSteps}; continue with --resume latest`);
      return {
        steps: s,
        losses,
        evalLosses,
        checkpoint,
        nonFiniteSteps: trainer.guard.total,
        interrupted: stop,
      };
    }
  }
  if (!checkpoint) checkpoint = await trainer.save(data.position);
  return { steps: trainer.step, losses, evalLosses, checkpoint, nonFiniteSteps: trainer.guard.total };
}

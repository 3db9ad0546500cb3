// `ovr-train generate --model DIR --prompt "..." [--image PATH] [--max-new-tokens N] [--greedy | --temperature T]`:
// one chat turn through the processor (chat template, image pads, left padding) and generate() (KV cache, sampling,
// stop on EOS / stop strings / budget). Prints the completion(s); `--json` prints ids, log-probs and finish reasons.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import type { ChatMessage } from '../data/chat.js';
import { PATCH_DIM } from '../data/image.js';
import { processor } from '../data/processor.js';
import { imageSizeFields } from '../data/resize.js';
import { defaultTokenizer, loadTokenizer, type QwenTokenizer } from '../data/tokenizer.js';
import { generate } from '../model/generate.js';
import { loadModel } from '../model/load.js';
import type { ModelInputs, Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { QWEN_REAL_VOCAB } from '../model/sampling.js';
import { BACKENDS } from '../train/config.js';
import { Rng } from '../util/rng.js';
import { modelFlags, startCommand } from './common.js';

/** Flags of `ovr-train generate`. */
export const GenerateArgs = z
  .object({
    ...modelFlags,
    prompt: z.string().min(1).describe('User message to complete'),
    image: z.string().min(1).optional().describe('Image file shown before the prompt'),
    ...imageSizeFields,
    system: z.string().optional().describe('System message (default: the chat template default)'),
    maxNewTokens: z.number().int().positive().default(128).describe('Most new tokens per completion'),
    greedy: z.boolean().default(false).describe('Greedy decoding (argmax); same as --temperature 0'),
    temperature: z.number().min(0).default(1).describe('Sampling temperature (0 = greedy)'),
    topP: z.number().gt(0).max(1).default(1).describe('Nucleus sampling mass (1 = off)'),
    topK: z.number().int().min(0).default(0).describe('Keep the k most likely tokens (0 = off)'),
    numSamples: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe('Completions for the prompt, from one prefill'),
    stop: z.array(z.string()).optional().describe('Stop strings, comma-separated (e.g. </answer>)'),
    seed: z.number().int().min(0).default(0).describe('Sampling seed (0 is a valid seed)'),
    tokenizer: z
      .string()
      .optional()
      .describe(
        'Folder with tokenizer.json (default: the model folder if it has one, else the bundled Qwen2.5 one)',
      ),
    backend: z.enum(BACKENDS).default('auto').describe("tfjs backend ('auto' honours OVR_BACKEND)"),
    json: z.boolean().default(false).describe('Print JSON (texts, token ids, log-probs, finish reasons)'),
  })
  .strict();
export type GenerateArgs = z.output<typeof GenerateArgs>;

/** One generation run's output. */
export interface GenerateRun {
  /** Tokens of the prompt (chat template + image pads). */
  promptTokens: number;
  texts: string[];
  tokens: number[][];
  logprobs: number[][];
  finishReasons: string[];
}

const exists = (f: string) =>
  stat(f).then(
    () => true,
    () => false,
  );

/** The tokenizer named by the flags, else the model folder's, else the bundled one (also `ovr-train serve`). */
export async function pickTokenizer(a: Pick<GenerateArgs, 'tokenizer' | 'model'>): Promise<QwenTokenizer> {
  if (a.tokenizer) return loadTokenizer(a.tokenizer);
  if (await exists(path.join(a.model, 'tokenizer.json'))) return loadTokenizer(a.model);
  return defaultTokenizer();
}

/** The chat turn: optional system message, then the user message (image part first when given). */
export function promptMessages(a: Pick<GenerateArgs, 'prompt' | 'image' | 'system'>): ChatMessage[] {
  const user: ChatMessage = a.image
    ? {
        role: 'user',
        content: [
          { type: 'image', image: a.image },
          { type: 'text', text: a.prompt },
        ],
      }
    : { role: 'user', content: a.prompt };
  return a.system === undefined ? [user] : [{ role: 'system', content: a.system }, user];
}

/**
 * Runs one prompt through processor + generate on `model`. Frees every tensor it creates.
 * @example const out = await runGenerate(model, tok, GenerateArgs.parse({ model: 'x', prompt: 'Hi', greedy: true }));
 */
export async function runGenerate(
  model: Qwen2_5_VL,
  tok: QwenTokenizer,
  a: GenerateArgs,
): Promise<GenerateRun> {
  const enc = await processor(promptMessages(a), {
    tokenizer: tok,
    addGenerationPrompt: true,
    padding: 'left',
    maxPixels: a.maxPixels,
    minPixels: a.minPixels,
  });
  const inputs: ModelInputs = { inputIds: enc.inputIds, attentionMask: enc.attentionMask };
  if (enc.pixelValues) {
    inputs.pixelValues = tf.tensor2d(enc.pixelValues, [enc.pixelValues.length / PATCH_DIM, PATCH_DIM]);
    inputs.imageGridThw = enc.imageGridThw;
  }
  try {
    const out = await generate(model, inputs, {
      maxNewTokens: a.maxNewTokens,
      greedy: a.greedy,
      temperature: a.temperature,
      topP: a.topP,
      topK: a.topK,
      numSamples: a.numSamples,
      // ids past the tokenizer's (embedding padding rows) decode to nothing; never pick them
      allowedVocab: Math.min(model.config.vocab_size, QWEN_REAL_VOCAB),
      rng: new Rng(a.seed ?? 0).split('sampling'),
      stopStrings: a.stop,
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    });
    return {
      promptTokens: enc.inputIds[0].length,
      texts: out.texts ?? [],
      tokens: out.tokens,
      logprobs: out.logprobs,
      finishReasons: out.finishReasons,
    };
  } finally {
    inputs.pixelValues?.dispose();
  }
}

const SUMMARY =
  'Generate a completion for one chat prompt (optionally with an image) with Qwen2.5-VL and a KV cache.\n' +
  'Example: ovr-train generate --model runs/sft/checkpoint-00000100 --prompt "What is 2+3?" --greedy';

/**
 * CLI entry; returns the exit code.
 * @example await generateCommand(['--model', 'runs/sft/checkpoint-00000010', '--prompt', 'Hi', '--greedy']);
 */
export async function generateCommand(argv: string[]): Promise<number> {
  const p = await startCommand(GenerateArgs, argv, 'ovr-train generate', SUMMARY, (c) => c.backend);
  if ('exit' in p) return p.exit;
  const a = p.config as GenerateArgs;
  const [model, tok] = await Promise.all([
    loadModel(a.model, { seed: a.seed, adapter: a.adapter }),
    pickTokenizer(a),
  ]);
  try {
    const out = await runGenerate(model, tok, a);
    if (a.json) console.log(JSON.stringify(out));
    else for (const t of out.texts) console.log(t);
    return 0;
  } finally {
    model.dispose();
  }
}

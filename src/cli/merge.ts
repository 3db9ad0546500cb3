// `ovr-train merge --model BASE --adapter DIR --out DIR [--dtype bf16|f32]`: folds a PEFT LoRA adapter into the base
// weights (`W += scale · B A`, PEFT `merge_and_unload`) and writes a full HF checkpoint (config.json + safetensors,
// Hub key layout) that needs no adapter support to load. Tokenizer / processor files of the base are copied along.
import { copyFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { attachAdapter, mergeAdapter } from '../model/lora.js';
import { loadAdapter } from '../model/peft.js';
import { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { saveWeights } from '../model/weights.js';
import { BACKENDS } from '../train/config.js';
import { parseCommand, startBackend } from './common.js';

/** Flags of `ovr-train merge`. */
export const MergeArgs = z
  .object({
    model: z
      .string()
      .min(1)
      .describe('Base model directory (config.json + safetensors) the adapter was trained on'),
    adapter: z
      .string()
      .min(1)
      .describe('PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)'),
    out: z.string().min(1).describe('Output directory for the merged checkpoint'),
    dtype: z
      .enum(['bf16', 'f32'])
      .default('bf16')
      .describe('Weight dtype of the written checkpoint (f32 keeps the merge exact; bf16 is the Hub format)'),
    maxShardGb: z.number().positive().default(5).describe('Largest safetensors shard, in GB'),
    backend: z.enum(BACKENDS).default('auto').describe("tfjs backend ('auto' honours OVR_BACKEND)"),
  })
  .strict();
export type MergeArgs = z.output<typeof MergeArgs>;

/** Files besides the weights that make a checkpoint usable (tokenizer, chat template, processor). */
const SIDE_FILES =
  /^(tokenizer.*|vocab\.json|merges\.txt|special_tokens_map\.json|chat_template\.json|preprocessor_config\.json|generation_config\.json)$/;

/**
 * Loads base + adapter, merges, writes `out`. Returns the files written.
 * @example await runMerge(MergeArgs.parse({ model: 'base', adapter: 'runs/a/checkpoint-00000020/adapter', out: 'merged', dtype: 'f32' }));
 */
export async function runMerge(a: MergeArgs): Promise<string[]> {
  if (path.resolve(a.out) === path.resolve(a.model))
    throw new Error('--out is the base model directory: pick a new directory (the base must stay intact)');
  const model = await Qwen2_5_VL.load(a.model);
  try {
    const lora = await loadAdapter(a.adapter, model.config);
    try {
      attachAdapter(model.params, lora);
      mergeAdapter(model.params);
    } finally {
      lora.dispose();
    }
    const files = await saveWeights(a.out, model.params, model.config, {
      dtype: a.dtype === 'f32' ? 'F32' : 'BF16',
      maxShardBytes: a.maxShardGb * 1e9,
    });
    for (const f of await readdir(a.model)) {
      if (!SIDE_FILES.test(f)) continue;
      await copyFile(path.join(a.model, f), path.join(a.out, f));
      files.push(f);
    }
    return files;
  } finally {
    model.dispose();
  }
}

const SUMMARY =
  'Merge a PEFT LoRA adapter into its base model and write a full HF checkpoint.\n' +
  'Example: ovr-train merge --model models/qwen2.5-vl-7b --adapter runs/lora/checkpoint-00000100/adapter --out merged-7b';

/** CLI entry; returns the exit code. */
export async function mergeCommand(argv: string[]): Promise<number> {
  const p = parseCommand(MergeArgs, argv, 'ovr-train merge', SUMMARY);
  if ('exit' in p) return p.exit;
  const a = p.config as MergeArgs;
  await startBackend(a.backend, process.env);
  const files = await runMerge(a);
  console.log(`merged ${a.adapter} into ${a.model}: wrote ${files.length} files to ${a.out}`);
  return 0;
}

// `ovr-train plan --model DIR|3b|7b [--batch --seq --lora.r --recompute --generations --device-gib 80]`: the memory
// plan of a training step and a GRPO rollout (plan/memory.ts) as a table, with a verdict and what to change.
// Computed from config.json alone: nothing is loaded or run.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseConfig, type Qwen2_5_VLConfig } from '../model/config.js';
import { LoraConfig } from '../model/lora.js';
import { formatPlan, planMemory } from '../plan/memory.js';
import { parseCommand } from './common.js';

/** Flags of `ovr-train plan`. */
export const PlanArgs = z
  .object({
    model: z
      .string()
      .min(1)
      .describe("Model directory or config.json, or '3b' / '7b' (the bundled Qwen2.5-VL configs), 'tiny'"),
    batch: z.number().int().positive().default(1).describe('Sequences per micro-batch'),
    seq: z.number().int().positive().default(2048).describe('Tokens per sequence (prompt + completion)'),
    accum: z.number().int().positive().default(1).describe('Micro-batches per optimizer step'),
    lora: LoraConfig.partial()
      .optional()
      .describe('LoRA settings (e.g. --lora.r 16); absent = full fine-tuning'),
    trainable: z.enum(['all', 'lm']).default('lm').describe('Without LoRA: train the LM only or everything'),
    recompute: z
      .boolean()
      .default(false)
      .describe('Recompute each decoder layer in backward (activation checkpointing)'),
    critic: z
      .boolean()
      .default(false)
      .describe('PPO (advantage gae): add the critic (a weight copy, or its own LoRA adapter under --lora)'),
    generations: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('GRPO: sequences decoded at once in a rollout (KV cache rows); 0 = SFT'),
    deviceGib: z.number().positive().default(80).describe('Device memory in GiB (80: A100/H100; 141: H200)'),
    json: z.boolean().default(false).describe('Print the plan as JSON'),
  })
  .strict();
export type PlanArgs = z.output<typeof PlanArgs>;

const MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');
const NAMED: Record<string, string> = { '3b': 'qwen2.5-vl-3b', '7b': 'qwen2.5-vl-7b', tiny: 'tiny' };

/** The config of `--model`: a named bundled config, a config.json, or a model directory. */
export async function planConfig(spec: string): Promise<Qwen2_5_VLConfig> {
  const file = NAMED[spec]
    ? path.join(MODELS_DIR, NAMED[spec], 'config.json')
    : spec.endsWith('.json')
      ? spec
      : path.join(spec, 'config.json');
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(
      `--model ${spec}: no ${file}; give a model directory, a config.json, or one of ${Object.keys(NAMED).join(', ')}`,
    );
  });
  return parseConfig(JSON.parse(text), file);
}

const SUMMARY =
  'Memory plan of a training step (and GRPO rollout) on one device: weights, gradients, AdamW, activations, KV cache.\n' +
  'Example: ovr-train plan --model 7b --seq 4096 --lora.r 16 --recompute --generations 8 --device-gib 80';

/** CLI entry; returns 0 when the plan fits, 1 when it does not (2 for bad flags). */
export async function planCommand(argv: string[]): Promise<number> {
  const p = parseCommand(PlanArgs, argv, 'ovr-train plan', SUMMARY);
  if ('exit' in p) return p.exit;
  const a = p.config as PlanArgs;
  const cfg = await planConfig(a.model);
  const lora = a.lora ? LoraConfig.parse(a.lora) : undefined;
  const plan = planMemory(cfg, {
    batch: a.batch,
    seq: a.seq,
    accum: a.accum,
    lora,
    trainable: a.trainable,
    recompute: a.recompute,
    critic: a.critic,
    generations: a.generations,
    deviceGiB: a.deviceGib,
  });
  if (a.json) console.log(JSON.stringify(plan, null, 2));
  else {
    const mode = lora ? `LoRA r ${lora.r}` : `full fine-tuning (${a.trainable})`;
    console.log(
      `${a.model}: ${mode}, batch ${a.batch} x seq ${a.seq}${a.recompute ? ', recompute' : ''}, float32\n`,
    );
    console.log(formatPlan(plan));
  }
  return plan.fits ? 0 : 1;
}

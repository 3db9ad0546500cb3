// LoRA in the trainers: the `lora` / `adapter` config fields of SftConfig and GrpoConfig, attaching the adapter to the
// model before the Trainer binds its optimizer, the trainable set (the adapter's Variables under LoRA), dropout keys
// per micro-batch, and the weights a checkpoint holds (the PEFT adapter instead of the base). Follows TRL's
// `peft_config` argument and PEFT's `PeftModel.from_pretrained(..., is_trainable=True)` for continuing an adapter.
import { z } from 'zod';
import { adapterOf, attachAdapter, LoraAdapter, LoraConfig } from '../model/lora.js';
import { holdsAdapter, loadAdapter, restoreAdapter, saveAdapter } from '../model/peft.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { saveWeights } from '../model/weights.js';

/** Config fields shared by SftConfig and GrpoConfig. */
export const loraFields = {
  lora: LoraConfig.optional().describe(
    'Train LoRA adapters instead of the weights (e.g. --lora.r 16 --lora.alpha 32); checkpoints then hold the PEFT adapter',
  ),
  adapter: z
    .string()
    .min(1)
    .optional()
    .describe('PEFT adapter folder to continue training from (its r, alpha and targets; implies LoRA)'),
};

/**
 * Attaches the run's adapter: continued from `adapter` (a PEFT folder), or fresh from `lora` (PEFT init, seeded).
 * Returns it (the model owns nothing: the caller disposes it after the run), or undefined for full fine-tuning.
 * @example const lora = await setupAdapter(model, cfg); // before new Trainer(...)
 */
export async function setupAdapter(
  model: Qwen2_5_VL,
  c: { lora?: LoraConfig; adapter?: string; seed?: number },
): Promise<LoraAdapter | undefined> {
  if (!c.lora && !c.adapter) return undefined;
  let a: LoraAdapter;
  if (c.adapter) {
    const loaded = await loadAdapter(c.adapter, model.config);
    // train with the run's dropout (the file's lora_dropout unless --lora.dropout is given) and seed
    const dropout = c.lora?.dropout ?? loaded.config.dropout;
    a = new LoraAdapter({ ...loaded.config, dropout }, loaded.tensors, c.seed ?? 0);
  } else {
    a = LoraAdapter.init(model.config, c.lora as LoraConfig, c.seed ?? 0);
  }
  attachAdapter(model.params, a);
  return a;
}

/** The micro-batch closures with the adapter in training mode and one dropout key per closure (`key`, `key + 1`, …). */
export function trainingClosures<T>(
  adapter: LoraAdapter | undefined,
  key: number,
  losses: (() => T)[],
): (() => T)[] {
  if (!adapter) return losses;
  return losses.map((f, i) => () => {
    adapter.training = true;
    adapter.dropoutKey = key + i;
    try {
      return f();
    } finally {
      adapter.training = false;
    }
  });
}

/**
 * Writes the weights of a checkpoint: the PEFT adapter (adapter_config.json + adapter_model.safetensors, F32) when the
 * model carries one, else the full float32 weights + config.json.
 */
export async function saveTrainedWeights(dir: string, model: Qwen2_5_VL, baseModel = ''): Promise<void> {
  const a = adapterOf(model.params);
  if (a) await saveAdapter(dir, a, { baseModel });
  else await saveWeights(dir, model.params, model.config, { dtype: 'F32' });
}

/**
 * Restores a checkpoint's trained weights into the model: the adapter's Variables under LoRA (the base is the run's
 * base model), else every weight. Refuses a LoRA checkpoint for a full run and the reverse.
 */
export async function restoreTrainedWeights(
  model: Qwen2_5_VL,
  dir: string,
  assignFull: (model: Qwen2_5_VL, dir: string) => Promise<void>,
): Promise<void> {
  const a = adapterOf(model.params);
  const isAdapter = await holdsAdapter(dir);
  if (a && !isAdapter)
    throw new Error(`resume: ${dir} holds full weights but this run trains LoRA; drop --lora`);
  if (!a && isAdapter)
    throw new Error(`resume: ${dir} holds a LoRA adapter; resume with the same --lora settings`);
  if (a) await restoreAdapter(a, dir, model.config);
  else await assignFull(model, dir);
}

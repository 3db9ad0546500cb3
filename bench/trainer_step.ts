// The SFT step `ovr-train sft` runs, for the bench: the trainer's own loss (sftLoss: LM head only at label
// positions) and its own update (Trainer.trainStep: accumulate, clip, guard, AdamW at the schedule's lr), with the
// CLI's default config (SftConfig defaults; trainable 'lm', as the text cold start and bench/torch_ref.py train).
import type * as tf from '@tensorflow/tfjs-core';
import type { Qwen2_5_VL } from '../src/model/qwen2_5_vl.js';
import { SftConfig } from '../src/train/config.js';
import { lossTokens, sftLoss } from '../src/train/sft.js';
import { Trainer } from '../src/train/trainer.js';

/**
 * One SFT step through Trainer.trainStep over `micro` micro-batches of the rows; returns the step and its losses.
 * @example const s = await makeTrainerStep(model, ids, labels, 1); await s.step(); s.dispose();
 */
export async function makeTrainerStep(
  model: Qwen2_5_VL,
  ids: number[][],
  labels: number[][],
  micro: number,
): Promise<{ step: () => Promise<void>; losses: number[]; dispose: () => void; last: () => tf.Tensor }> {
  if (ids.length % micro !== 0)
    throw new Error(`--micro-batches ${micro} must divide the batch ${ids.length}`);
  await Trainer.ready();
  const config = SftConfig.parse({ model: 'bench', data: { train: 'bench.jsonl' }, trainable: 'lm' });
  const trainer = new Trainer({ model, config, totalSteps: 1_000_000 });
  const n = lossTokens(labels);
  const rows = ids.length / micro;
  const closures = Array.from({ length: micro }, (_, m) => {
    const inputs = { inputIds: ids.slice(m * rows, (m + 1) * rows) };
    const lab = labels.slice(m * rows, (m + 1) * rows);
    return () => sftLoss(model, inputs, lab, n);
  });
  const tokens = ids.length * (ids[0]?.length ?? 0);
  const losses: number[] = [];
  const params = Object.values(trainer.params);
  return {
    step: async () => {
      losses.push((await trainer.trainStep(closures, { tokens })).loss);
    },
    losses,
    dispose: () => trainer.dispose(),
    last: () => params[params.length - 1],
  };
}

// Which parameters train: the one vocabulary of trainable parts ('all' | 'lm' | 'vision' | 'lm+merger') and the one
// selector every trainer, `Qwen2_5_VL.variables` and the bench use. HF Qwen2.5-VL param names, legacy
// (`visual.*`, `model.*`, `lm_head.*`) and transformers >= 4.52 (`model.visual.*`, `model.language_model.*`).
import * as tf from '@tensorflow/tfjs-core';

/** Which parameters receive gradients. `lm+merger` trains the language model and the vision-to-text merger. */
export const TRAINABLE_PARTS = ['all', 'lm', 'vision', 'lm+merger'] as const;

/** One of {@link TRAINABLE_PARTS}. */
export type TrainablePart = (typeof TRAINABLE_PARTS)[number];

/**
 * Whether parameter `name` trains under `part`. The merger counts as vision except in 'lm+merger'.
 * @example
 * isTrainableParam('visual.blocks.0.attn.qkv.weight', 'lm');        // false
 * isTrainableParam('visual.merger.mlp.0.weight', 'lm+merger');      // true
 * isTrainableParam('model.embed_tokens.weight', 'vision');          // false
 */
export function isTrainableParam(name: string, part: TrainablePart): boolean {
  const vision = name.startsWith('visual.') || name.startsWith('model.visual.');
  const merger = vision && /(^|\.)visual\.merger\./.test(name);
  switch (part) {
    case 'all':
      return true;
    case 'lm':
      return !vision;
    case 'vision':
      return vision;
    case 'lm+merger':
      return !vision || merger;
    default:
      throw new Error(`unknown trainable '${part}': use one of ${TRAINABLE_PARTS.join(', ')}`);
  }
}

/**
 * The trainable subset of a param record, as Variables (in the record's order).
 * @example const vars = selectTrainable(model.params, 'lm'); // every model.* param, no visual.*
 */
export function selectTrainable(
  params: Record<string, tf.Tensor>,
  part: TrainablePart,
): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [name, t] of Object.entries(params)) {
    if (!isTrainableParam(name, part)) continue;
    if (!(t instanceof tf.Variable))
      throw new Error(`param '${name}' is not a tf.Variable, so it cannot be trained`);
    out[name] = t;
  }
  if (Object.keys(out).length === 0) {
    throw new Error(`trainable '${part}' selects no parameter of this model; pick another --trainable`);
  }
  return out;
}

// Qwen2.5-VL weights on disk: load a checkpoint into the model's params and save them in HF layout (the config's
// shapes and Hub config.json handed to io/checkpoint.ts, which only reads and writes).
import * as tf from '@tensorflow/tfjs-core';
import {
  type LoadWeightsOptions,
  readWeights,
  type SaveWeightsOptions,
  type WeightLayout,
  type Weights,
  writeWeights,
} from '../io/checkpoint.js';
import { type Qwen2_5_VLConfig, toHubConfig } from './config.js';
import { paramShapes } from './params.js';

const layoutOf = (cfg: Qwen2_5_VLConfig): WeightLayout => ({
  shapes: paramShapes(cfg),
  tied: cfg.tie_word_embeddings,
});

/**
 * Loads the weights of a checkpoint folder / file / sharded index for `cfg` (strict by default).
 * @example
 * const cfg = await loadConfig('models/qwen2.5-vl-3b');
 * const params = await loadWeights('models/qwen2.5-vl-3b', cfg);
 * params['model.norm.weight'].shape; // [2048]
 */
export function loadWeights(
  dir: string,
  cfg: Qwen2_5_VLConfig,
  opts: LoadWeightsOptions = {},
): Promise<Weights> {
  return readWeights(dir, layoutOf(cfg), opts);
}

/**
 * Writes `params` in HF layout plus `config.json` (Hub flat layout, `torch_dtype` bfloat16/float32).
 * @example await saveWeights('out/ckpt', model.params, model.config, { dtype: 'BF16', maxShardBytes: 5e9 });
 */
export function saveWeights(
  dir: string,
  params: Record<string, tf.Tensor>,
  cfg: Qwen2_5_VLConfig,
  opts: SaveWeightsOptions = {},
): Promise<string[]> {
  return writeWeights(dir, params, layoutOf(cfg), (d) => toHubConfig(cfg, d), opts);
}

/**
 * Loads a checkpoint's weights and assigns them into the model's existing Variables (keeping their identity, so an
 * optimizer bound to them stays valid). Every tensor is read and checked before the first is assigned.
 * @example await assignWeights(model, 'runs/a/checkpoint-00000010');
 */
export async function assignWeights(
  model: { params: Record<string, tf.Tensor>; config: Qwen2_5_VLConfig },
  dir: string,
): Promise<void> {
  const loaded = await loadWeights(dir, model.config);
  try {
    const missing = Object.keys(model.params).filter((name) => !loaded[name]);
    if (missing.length > 0)
      throw new Error(`assignWeights: ${dir} has no tensor for ${missing.map((n) => `'${n}'`).join(', ')}`);
    for (const [name, v] of Object.entries(model.params)) (v as tf.Variable).assign(loaded[name]);
  } finally {
    tf.dispose(Object.values(loaded));
  }
}

// The one model loader every command uses: a model spec is 'tiny' (the bundled tiny config, random init), a
// config.json path (random init), or a directory with config.json + safetensors (its weights, or a random init of its
// config with `weights: false`). Follows HF `from_pretrained` / `from_config`.
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from './config.js';
import { Qwen2_5_VL } from './qwen2_5_vl.js';

/** models/tiny/config.json of this package (resolves from src/model and dist/model alike). */
export const TINY_CONFIG = fileURLToPath(new URL('../../models/tiny/config.json', import.meta.url));

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** Seed of the random init ('tiny', a config.json, or a directory with `weights: false`). Default 0. */
  seed?: number;
  /** For a directory: load its safetensors (default true) or only its config.json (random init). */
  weights?: boolean;
}

/**
 * Loads or creates the model named by `spec`: 'tiny', a config.json path (random init, seeded), or a directory with
 * config.json + safetensors.
 * @example
 * const model = await loadModel('tiny', { seed: 0 });
 * const real = await loadModel('models/qwen2.5-vl-3b');
 */
export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<Qwen2_5_VL> {
  const seed = opts.seed ?? 0;
  const file = spec === 'tiny' ? TINY_CONFIG : spec;
  const kind = await stat(file).then(
    (s) => (s.isDirectory() ? 'dir' : 'file'),
    () => 'none',
  );
  if (kind === 'none' || (kind === 'file' && !file.endsWith('.json'))) {
    throw new Error(
      `model '${spec}' is not 'tiny', a config.json path or a model directory` +
        (kind === 'none' ? ` (${file} does not exist)` : ''),
    );
  }
  if (kind === 'dir' && opts.weights !== false) return Qwen2_5_VL.load(file);
  return Qwen2_5_VL.init(await loadConfig(file), seed);
}

// Rollout engines: the contract (types.ts), the in-process engine, the SGLang and vLLM HTTP clients, the sync-folder
// writer, and `createEngine`, which builds the one a `GrpoConfig.rollout` names.
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import type { RolloutConfig } from './config.js';
import { LocalEngine } from './local.js';
import { SglangEngine } from './sglang.js';
import type { RolloutEngine } from './types.js';
import { VllmEngine } from './vllm.js';

export { RolloutConfig } from './config.js';
export { imageInputs, LocalEngine, rolloutPrompts } from './local.js';
export { SglangEngine } from './sglang.js';
export { pruneSyncDirs, writeSyncDir } from './sync.js';
export type {
  RolloutEngine,
  RolloutRequest,
  RolloutResult,
  RolloutSample,
  RolloutSampling,
  WeightSync,
} from './types.js';
export { RolloutEngineError } from './types.js';
export { VllmEngine } from './vllm.js';

/**
 * The engine `cfg` names; the local one samples from `model` (the trainer's policy, shared).
 * @example const engine = createEngine(cfg.rollout, { model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
 */
export function createEngine(
  cfg: RolloutConfig,
  o: { model: Qwen2_5_VL; padId: number; decode: (ids: number[]) => string },
): RolloutEngine {
  if (cfg.engine === 'local') return new LocalEngine({ model: o.model, padId: o.padId, decode: o.decode });
  const url = cfg.url as string; // the schema requires it for remote engines
  if (cfg.engine === 'sglang') return new SglangEngine({ url, retry: cfg.retry });
  return new VllmEngine({ url, model: cfg.model, retry: cfg.retry, decode: o.decode });
}

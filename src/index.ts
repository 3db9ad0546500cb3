// Public API of ovr: what a user needs, listed by name (trainers and their configs, model load/save, generation,
// processor and tokenizer, reward, backend, rng). Everything else is reachable through the package's subpath exports
// (`ovr/model`, `ovr/train`, `ovr/data`, `ovr/reward`, `ovr/io`, `ovr/backend`, `ovr/eval`, `ovr/demo`, `ovr/util`,
// `ovr/analysis`, `ovr/report`), each an index file listing its names. README "API surface" describes the split.
export const VERSION = '0.1.0';

// backend: pick and start the tfjs backend (the CLI does this from --backend / OVR_BACKEND).
export {
  BACKEND_NAMES,
  type BackendInfo,
  type BackendRequest,
  initBackend,
  ovrBackendFromEnv,
} from './backend/index.js';
// data: chat template, processor (images + text -> model inputs), tokenizer, JSONL rows and RL prompts.
export { type ChatMessage, type ContentPart, renderChat } from './data/chat.js';
export { loadSftExamples } from './data/dataset.js';
export { processImage } from './data/image.js';
export { type ProcessorOptions, type ProcessorOutput, processor } from './data/processor.js';
export { loadPrompts, type PromptExample } from './data/prompts.js';
export { readJsonl } from './data/rows.js';
export { defaultTokenizer, loadTokenizer, QwenTokenizer } from './data/tokenizer.js';
export { gradeDemo } from './demo/grade.js';
// demo: the miniature OVR pipeline (`ovr-train demo`) and its synthetic data.
export { demoDefaults } from './demo/options.js';
export { runDemo } from './demo/pipeline.js';
export { writeDemoJsonl } from './demo/render.js';
export { makeProblems } from './demo/tasks.js';
// eval: benchmark harness (`ovr-train eval`).
export { runEval } from './eval/harness.js';
// model: Qwen2.5-VL, its config, load/save, generation, the trainable parts.
export { loadConfig, parseConfig, type Qwen2_5_VLConfig } from './model/config.js';
export {
  type GenerateOptions,
  type GenerateResult,
  generate,
  QWEN_EOS_IDS,
  QWEN_PAD_ID,
} from './model/generate.js';
export { KVCache } from './model/kv_cache.js';
export { type LoadModelOptions, loadModel, TINY_CONFIG } from './model/load.js';
export {
  attachAdapter,
  detachAdapter,
  LoraAdapter,
  LoraConfig,
  mergeAdapter,
  withAdapterOff,
} from './model/lora.js';
export { loadAdapter, saveAdapter } from './model/peft.js';
export { type ModelInputs, Qwen2_5_VL } from './model/qwen2_5_vl.js';
export { QWEN_REAL_VOCAB } from './model/sampling.js';
export { selectTrainable, TRAINABLE_PARTS, type TrainablePart } from './model/trainable.js';
export { loadWeights, saveWeights } from './model/weights.js';
// plan: will a run fit the device (`ovr-train plan`).
export { formatPlan, type MemoryPlan, type PlanInput, planMemory } from './plan/memory.js';
// reward: the verifiable math reward.
export {
  extractAnswer,
  type MathRewardInput,
  mathReward,
  type RewardFormat,
  VerifierPool,
  verify,
} from './reward/index.js';
export type { LossClosure } from './train/accumulate.js';
// train: the SFT and GRPO trainers, their configs, the shared Trainer, the reward-function contract.
export { SftConfig } from './train/config.js';
export { type GrpoDeps, type GrpoResult, type GrpoStepRecord, trainGrpo } from './train/grpo.js';
export { GrpoConfig } from './train/grpo_config.js';
export type { RewardContext, RewardFunction } from './train/rollout.js';
export { type SftDeps, type SftResult, trainSft } from './train/sft.js';
export { Trainer, type TrainerOptions } from './train/trainer.js';
// util: JSONL step logs and the seeded splittable Rng.
export { JsonlLogger, readStepLog, type StepRecord } from './util/log.js';
export { Rng, type RngState } from './util/rng.js';

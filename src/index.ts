// Public API of ovr. Each module appends its exports here.
export const VERSION = '0.1.0';
export * from './train/config.js';
export * from './model/sampling.js';
export * from './train/optim.js';
export * from './train/schedule.js';
export * from './model/config.js';
export * from './io/safetensors.js';
// HostTensor: the safetensors contract type (train/optim's float32-only HostTensor is assignable to it).
export type { HostTensor } from './io/safetensors.js';
export * from './cli/args.js';
export * from './train/state.js';
export * from './train/grpo_math.js';
export * from './io/checkpoint.js';
export * from './data/resize.js';
export * from './data/image.js';
export * from './data/tokenizer.js';
// chat: IGNORE_INDEX (-100) is left to model/loss.js, which exports the same value.
export {
  type ChatMessage,
  type ContentPart,
  expandImagePads,
  inlineImages,
  QWEN2_5_VL_CHAT_TEMPLATE,
  type RenderedChat,
  type RenderOptions,
  renderChat,
  renderChatWithSpans,
  tokenizeWithLabels,
} from './data/chat.js';
export * from './data/templates.js';
export * from './data/processor.js';
export * from './train/grpo_config.js';
export * from './data/dataset.js';
// demo tasks, behaviour analysis, charts and HTML report (issue 9). tasks.ts' lastBoxed/normalizeAnswer stay
// internal: reward/ owns the public answer extraction.
export {
  describeScene,
  gradeDemo,
  makeProblems,
  type Problem,
  type ProblemOptions,
  problemKey,
  type Scene,
  splitOf,
  TASK_KINDS,
  type TaskKind,
} from './demo/tasks.js';
export {
  type DemoRow,
  makeVisualProblems,
  renderProblems,
  renderScene,
  sceneToSvg,
  type VisualProblem,
  writeDemoJsonl,
} from './demo/render.js';
export * from './analysis/behaviors.js';
export * from './report/charts.js';
export * from './report/html.js';
export * from './util/log.js';
export * from './util/progress.js';
export * from './reward/index.js';
// tfjs backend selection and our kernel patches (issue 3).
export * from './backend/index.js';
// Qwen2.5-VL forward (issue 4): layers, rope, attention, vision tower, text model, KV cache, loss, model class.
// `Params` (any-tensor param record) is exported as ModelParams: io/checkpoint owns the Variable-valued `Params`.
export type { Params as ModelParams } from './model/layers.js';
export { gatherRows, geluErf, linear, matMulWT, param, rmsNorm, silu, swiglu } from './model/layers.js';
export * from './model/rope.js';
export * from './model/attention.js';
export * from './model/vision.js';
export * from './model/text.js';
export * from './model/kv_cache.js';
export * from './model/loss.js';
export * from './model/qwen2_5_vl.js';
export * from './model/generate.js';
export * from './train/trainer.js';
// sft: loadModelSpec is left out (train/grpo.ts exports one with the same name and behaviour).
export {
  batchInputs,
  evalLoss,
  lossTokens,
  processorTokenize,
  type SftDeps,
  type SftResult,
  TINY_CONFIG,
  trainSft,
} from './train/sft.js';
// demo pipeline (ovr-train demo), demo vocabulary/eval, benchmark eval harness (ovr-train eval), seeded Rng.
export { Rng, type RngState } from './util/rng.js';
export {
  DEMO_MODEL_CONFIG,
  type DemoOptions,
  type DemoSummary,
  demoDefaults,
  formatSummary,
  type GrpoStageOptions,
  grpoStage,
  type RolloutRecord,
  rolloutRows,
  runDemo,
  type SftStageOptions,
  type StageContext,
  sftStage,
} from './demo/pipeline.js';
export {
  type DemoBatch,
  type DemoEvalResult,
  type DemoEvalRow,
  DemoVocab,
  evalDemo,
  promptBatch as demoPromptBatch,
  sftBatch as demoSftBatch,
} from './demo/eval.js';
export { type EvalFormat, type EvalItem, readEvalItems, toItem as toEvalItem } from './eval/data.js';
export {
  type EvalOptions,
  type EvalRecord,
  type EvalSummary,
  gradeCompletion,
  runEval,
  summarizeRecords,
} from './eval/harness.js';
// grpo: loadModelSpec comes from train/sft.js's twin and is not re-exported here.
export {
  completionLogprobs,
  type GrpoDeps,
  type GrpoResult,
  type GrpoStepRecord,
  type LossSettings,
  lossSettings,
  type MicroBatch,
  type MicroStats,
  microBatchGrads,
  totalGrpoSteps,
  trainGrpo,
} from './train/grpo.js';
export {
  buildTrainRows,
  disposeRows,
  type EncodedPrompt,
  encodePrompt,
  loadPrompts,
  type PromptExample,
  PromptStream,
  type RewardContext,
  type RewardFunction,
  rolloutPrompts,
  rowToPrompt,
  type ScoreOptions,
  scoreCompletions,
  type TrainRows,
} from './train/rollout.js';

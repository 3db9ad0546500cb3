// Public API of ovr, grouped by module (src/ folder), one comment per group. Groups are in path order because biome's
// organizeImports sorts re-exports by path: a new export line lands in its module's group after `biome check --write`.
export const VERSION = '0.1.0';

// analysis: behaviour rates of completions (rethinking, verification, ...) per step.
export * from './analysis/behaviors.js';

// backend: tfjs backend selection (cpu | wasm | webgpu) and our kernel patches.
export * from './backend/index.js';
// Opt-in, experimental: tfjs-wasm threads under Node (patches tfjs-backend-wasm 4.22.0 internals).
export { enableWasmThreads } from './backend/wasm_threads.js';
// cli: argument parsing shared by the ovr-train commands (flags > --config file > schema defaults).
export * from './cli/args.js';
// data: chat template, JSONL datasets, images (smart resize, patches), processor, prompt templates, tokenizer.
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
export * from './data/compact_vocab.js';
export * from './data/dataset.js';
export * from './data/image.js';
export * from './data/processor.js';
export * from './data/resize.js';
export * from './data/templates.js';
export * from './data/tokenizer.js';
// demo: demo vocabulary/eval, the demo pipeline (ovr-train demo), rendering and synthetic visual tasks.
export {
  type CaptionEvalResult,
  DEMO_RESPONSE_PREFIX,
  type DemoBatch,
  type DemoEvalResult,
  type DemoEvalRow,
  demoCorpus,
  demoTokenizer,
  descriptionItems,
  evalCaptions,
  evalDemo,
  promptBatch as demoPromptBatch,
} from './demo/eval.js';
export {
  DEMO_MODEL_CONFIG,
  DEMO_TASKS,
  type DemoOptions,
  type DemoSummary,
  demoDefaults,
  demoReward,
  formatSummary,
  type GrpoStageOptions,
  runDemo,
  type SftStageOptions,
} from './demo/pipeline.js';
export {
  DEMO_ROW_MODES,
  type DemoRow,
  type DemoRowMode,
  makeVisualProblems,
  mixDemoJsonl,
  renderProblems,
  renderScene,
  sceneToSvg,
  type VisualProblem,
  writeDemoJsonl,
} from './demo/render.js';
// tasks.ts' lastBoxed/normalizeAnswer stay internal: reward/ owns the public answer extraction.
export {
  CAPTION_PROMPT,
  captionReply,
  describeScene,
  gradeDemo,
  makeProblems,
  type Problem,
  type ProblemOptions,
  problemKey,
  type Scene,
  SHAPE_GRID,
  splitOf,
  TASK_KINDS,
  type TaskKind,
  tally,
} from './demo/tasks.js';

// eval: benchmark data and eval harness (ovr-train eval).
export { type EvalFormat, type EvalItem, readEvalItems, toItem as toEvalItem } from './eval/data.js';
export {
  type EvalOptions,
  type EvalRecord,
  type EvalSummary,
  gradeCompletion,
  runEval,
  summarizeRecords,
} from './eval/harness.js';

// io: HF-layout weight checkpoints and safetensors (F32/F16/BF16, sharded).
export * from './io/checkpoint.js';
// HostTensor: the safetensors contract type (train/optim's float32-only HostTensor is assignable to it).
export type { HostTensor } from './io/safetensors.js';
export * from './io/safetensors.js';

// model: Qwen2.5-VL attention, config, generate, KV cache, layers, loss, forward, rope, sampling, text, vision.
export * from './model/attention.js';
export * from './model/config.js';
export * from './model/generate.js';
export * from './model/kv_cache.js';
// `Params` (any-tensor param record) is exported as ModelParams: io/checkpoint owns the Variable-valued `Params`.
export type { Params as ModelParams } from './model/layers.js';
export { gatherRows, geluErf, linear, matMulWT, param, rmsNorm, silu, swiglu } from './model/layers.js';
export * from './model/loss.js';
export * from './model/qwen2_5_vl.js';
export * from './model/rope.js';
export * from './model/sampling.js';
export * from './model/text.js';
export * from './model/vision.js';

// report: vega-lite charts and the HTML run report.
export * from './report/charts.js';
export * from './report/html.js';

// reward: math answer extraction and verification, format rewards, the reward registry.
export * from './reward/index.js';

// train: configs, GRPO (loop, config, math), AdamW, rollouts, schedules, SFT, train state/resume, trainer.
export * from './train/config.js';
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
export * from './train/grpo_config.js';
export * from './train/grpo_math.js';
export * from './train/optim.js';
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
export * from './train/schedule.js';
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
export * from './train/state.js';
export * from './train/trainer.js';

// util: JSONL step logs, progress bar, seeded splittable Rng.
export * from './util/log.js';
export * from './util/progress.js';
export { Rng, type RngState } from './util/rng.js';

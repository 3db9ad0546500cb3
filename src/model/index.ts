// ovr/model: every public name of src/model/, by file (the package root, src/index.ts, lists the everyday subset).
export {
  causalMask,
  gqaAttention,
  MASK_MIN,
  packedCausalMask,
  type SegmentLayout,
  segmentedAttention,
  segmentLayout,
} from './attention.js';
export {
  consistencyIssues,
  headDim,
  loadConfig,
  parseConfig,
  type Qwen2_5_VLConfig,
  toHubConfig,
  type VisionConfig,
} from './config.js';
export {
  assertLeftPadded,
  type CausalLM,
  cutAtStop,
  type GenerateOptions,
  type GenerateResult,
  generate,
  QWEN_EOS_IDS,
  QWEN_PAD_ID,
  tileCache,
} from './generate.js';
export { KVCache } from './kv_cache.js';
export {
  ADAPTER,
  gatherRows,
  geluErf,
  type LinearAdapter,
  linear,
  matMulWT,
  type Params,
  param,
  rmsNorm,
  silu,
  swiglu,
} from './layers.js';
export { addInto, chunkedLogSumExp, fusedLinearCe } from './lm_head.js';
export { type LoadModelOptions, loadModel, TINY_CONFIG } from './load.js';
export {
  adapterOf,
  attachAdapter,
  detachAdapter,
  LM_TARGETS,
  LoraAdapter,
  LoraConfig,
  type LoraTarget,
  loraScale,
  loraTargets,
  matchesTarget,
  mergeAdapter,
  withAdapterOff,
} from './lora.js';
export {
  causalLmLoss,
  causalLmLossFromHidden,
  IGNORE_INDEX,
  type LossOptions,
  shiftLabels,
  tokenLogprobs,
  tokenLogprobsFromHidden,
} from './loss.js';
export { countParams, describeConfig, initKind, initWeights, paramShapes } from './params.js';
export {
  loadAdapter,
  parsePeftKey,
  peftConfigJson,
  restoreAdapter,
  saveAdapter,
  targetRegex,
} from './peft.js';
export {
  decodePositions,
  type ForwardOptions,
  type ModelInputs,
  modelForward,
  modelHidden,
  Qwen2_5_VL,
} from './qwen2_5_vl.js';
export {
  applyRotary,
  duplicatedCosSin,
  getRopeIndex,
  mergeOrderPositions,
  mropeCosSin,
  packedRopeIndex,
  type RopeIndex,
  type RopeTextConfig,
  ropeInvFreq,
  visionRotaryAngles,
} from './rope.js';
export {
  argmax,
  type FinishReason,
  kthLargest,
  nucleus,
  QWEN_REAL_VOCAB,
  resolveSampling,
  type SampleResult,
  type SamplingOptions,
  StopChecker,
  type StopOptions,
  sampleNext,
  sampleRow,
  sampleRows,
} from './sampling.js';
export {
  decoderLayer,
  embedInputs,
  type LayerKV,
  lmHeadWeight,
  lmLogits,
  type RopeTables,
  recomputedLayer,
  ropeTables,
  selfAttention,
  type TextForwardOptions,
  textForward,
} from './text.js';
export { isTrainableParam, selectTrainable, TRAINABLE_PARTS, type TrainablePart } from './trainable.js';
export {
  expandPermutation,
  inversePermutation,
  PATCH_WIDTH,
  patchEmbed,
  patchMerger,
  type Trace,
  VISION_EPS,
  VISION_ROPE_THETA,
  visionBlock,
  visionForward,
  type WindowPlan,
  windowPlan,
} from './vision.js';
export { assignWeights, loadWeights, saveWeights } from './weights.js';

// ovr/train: every public name of src/train/, by file (the package root, src/index.ts, lists the everyday subset).

export { accumulateGrads, type LossClosure } from './accumulate.js';
export {
  BACKENDS,
  type CommonTrainConfig,
  checkCommonTrainFields,
  commonTrainFields,
  SftConfig,
  sftDataFields,
} from './config.js';
export { type GrpoDeps, type GrpoResult, totalGrpoSteps, trainGrpo } from './grpo.js';
export {
  type GrpoBatchPlan,
  GrpoConfig,
  grpoBatchPlan,
  grpoDataFields,
  grpoRewardFields,
  REWARD_FORMATS,
} from './grpo_config.js';
export { type GrpoStepRecord, logRollouts, rolloutStats, type StepInputs, stepRecord } from './grpo_log.js';
export {
  aggregateLoss,
  clippedPolicyLoss,
  entropyFromLogits,
  type GroupAdvantageOptions,
  type GroupAdvantages,
  groupAdvantages,
  klK3,
  maskedMean,
  type PolicyLossInputs,
  type PolicyLossStats,
  selectGroups,
  stopGradient,
} from './grpo_math.js';
export {
  completionLogprobs,
  type Group,
  type LossSettings,
  lossSettings,
  type MicroBatch,
  type MicroStats,
  microBatchGrads,
  type PolicyState,
  type PolicyUpdate,
  policyLossClosure,
  updatePolicy,
} from './grpo_step.js';
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  type AdamWStepOptions,
  clipCoefficient,
  globalNorm,
  type HostF32Tensor,
  NonFiniteGuard,
  noDecayDefault,
  sumPairwise,
  type TensorMap,
} from './optim.js';
export { checkResumeConfig, RESUME_FREE_KEYS, resumeMismatches } from './resume.js';
export {
  buildTrainRows,
  disposeRows,
  type RewardContext,
  type RewardFunction,
  type ScoreOptions,
  scoreCompletions,
  type TrainRows,
} from './rollout.js';
export { constant, type Schedule, type WarmupCosineOptions, warmupCosine } from './schedule.js';
export {
  batchInputs,
  evalLoss,
  lossTokens,
  processorTokenize,
  type SftDeps,
  type SftResult,
  trainSft,
} from './sft.js';
export {
  checkpointName,
  type LoadedTrainState,
  latestCheckpoint,
  listCheckpoints,
  loadTrainState,
  openTrainRun,
  optimizerTensors,
  pruneCheckpoints,
  resolveResume,
  type SaveOptions,
  saveTrainState,
  type TrainState,
  writeRunConfig,
} from './state.js';
export {
  type StepResult,
  Trainer,
  type TrainerConfig,
  type TrainerOptions,
  type UpdateResult,
} from './trainer.js';

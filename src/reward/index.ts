// Public API of the verifiable math reward (see docs/reward.md).

export { closeBounded } from './bounded.js';
export {
  type Extracted,
  type ExtractKind,
  type ExtractOptions,
  extractAnswer,
  extractChoice,
} from './extract.js';
export { DEFAULT_TIME_LIMIT_MS } from './options.js';
export { type PoolOptions, type PoolStats, VerifierPool } from './pool.js';
export {
  type BatchRewardOptions,
  type MathRewardInput,
  mathReward,
  mathRewardBatch,
  mathRewardSync,
  type RewardFormat,
  type RewardOptions,
  type ScoredCompletion,
  scoreCompletion,
} from './reward.js';
export { DEFAULT_RTOL, extractGold, type Verdict, type VerifyOptions, verify } from './verify.js';

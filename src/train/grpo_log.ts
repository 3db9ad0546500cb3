// GRPO step statistics and logging: the JSONL record of one RL step (`GrpoStepRecord`), rollout statistics over
// every sampled completion, and the per-completion rollouts.jsonl lines.
import * as tf from '@tensorflow/tfjs-core';
import { behaviorRates } from '../analysis/behaviors.js';
import type { JsonlLogger, StepRecord } from '../util/log.js';
import type { Group, PolicyUpdate } from './grpo_step.js';

/** One JSONL line per RL step. */
export interface GrpoStepRecord extends StepRecord {
  step: number;
  lr: number;
  loss: number;
  gradNorm: number;
  rewardMean: number;
  rewardStd: number;
  accuracy: number;
  responseLenMean: number;
  responseLenMax: number;
  truncatedFrac: number;
  clipFraction: number;
  approxKl: number;
  /** Mean k3 KL to the reference (0 when klCoef = 0). */
  refKl: number;
  /** Exact mean entropy of the policy on the completions when entropyCoef > 0, else null. */
  entropy: number | null;
  /** -mean log-prob of the sampled tokens: a cheap entropy estimate (exact in expectation for topP = 1, topK = 0). */
  entropySampled: number;
  droppedGroups: number;
  refills: number;
  groups: number;
  nullRewards: number;
  logprobDiffMax: number;
  behaviors: Record<string, number>;
  timeRolloutMs: number;
  timeRewardMs: number;
  timeUpdateMs: number;
  numTensors: number;
}

/** Mean of xs (0 when empty). */
export const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const std = (xs: number[]): number => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
};

/** Step statistics over every completion sampled in the step (dropped groups included). */
export function rolloutStats(all: Group[]) {
  const rewards = all.flatMap((g) => g.rewards);
  const lens = all.flatMap((g) => g.tokens.map((t) => t.length));
  const lps = all.flatMap((g) => g.genLogprobs.flat());
  return {
    rewardMean: mean(rewards),
    rewardStd: std(rewards),
    accuracy: mean(rewards.map((r) => (r >= 1 ? 1 : 0))),
    responseLenMean: mean(lens),
    responseLenMax: Math.max(0, ...lens),
    truncatedFrac: mean(all.flatMap((g) => g.finish.map((f) => (f === 'length' ? 1 : 0)))),
    entropySampled: -mean(lps),
    behaviors: behaviorRates(all.flatMap((g) => g.texts)),
    completionTokens: lens.reduce((a, b) => a + b, 0),
  };
}

/** What the trainer loop measured in one RL step, besides the update and rollout statistics. */
export interface StepInputs {
  step: number;
  lr: number;
  entropyCoef: number;
  upd: PolicyUpdate | null;
  rs: ReturnType<typeof rolloutStats>;
  dropped: number;
  refills: number;
  groups: number;
  nulls: number;
  times: { rollout: number; reward: number };
  timeUpdateMs: number;
  /** Wall time of the whole step so far (ms), for tokensPerSec. */
  elapsedMs: number;
}

/**
 * The JSONL record of one RL step (1-based `step`); missing update statistics default to 0 (ratios to 1).
 * @example log.log(stepRecord({ step: 1, lr, entropyCoef: 0, upd, rs: rolloutStats(all), ...counts, elapsedMs }));
 */
export function stepRecord(x: StepInputs): GrpoStepRecord {
  const { upd, rs } = x;
  const st = upd?.stats ?? {};
  return {
    step: x.step,
    lr: x.lr,
    loss: upd?.loss ?? 0,
    gradNorm: upd?.gradNorm ?? 0,
    ...rs,
    clipFraction: st.clipFraction ?? 0,
    approxKl: st.approxKl ?? 0,
    refKl: st.refKl ?? 0,
    entropy: x.entropyCoef > 0 ? (st.entropy ?? 0) : null,
    ratioMin: st.ratioMin ?? 1,
    ratioMax: st.ratioMax ?? 1,
    droppedGroups: x.dropped,
    refills: x.refills,
    groups: x.groups,
    updates: upd?.updates ?? 0,
    skippedUpdates: upd?.skipped ?? 0,
    nullRewards: x.nulls,
    logprobDiffMax: upd?.diff ?? 0,
    timeRolloutMs: x.times.rollout,
    timeRewardMs: x.times.reward,
    timeUpdateMs: x.timeUpdateMs,
    tokensPerSec: rs.completionTokens / (x.elapsedMs / 1000),
    numTensors: tf.memory().numTensors,
  };
}

/** Appends the step's completions (prompt id, completion, reward, advantage, ...) to rollouts.jsonl. */
export function logRollouts(out: JsonlLogger, step: number, all: Group[]): void {
  for (const g of all) {
    g.texts.forEach((completion, j) => {
      out.log({
        step,
        promptId: g.example.id,
        sample: j,
        completion,
        reward: g.rewards[j],
        advantage: g.advantages[j],
        finishReason: g.finish[j],
        length: g.tokens[j].length,
        dropped: g.dropped,
      });
    });
  }
}

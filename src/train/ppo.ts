// PPO with a learned critic inside the RL trainer (GrpoConfig.advantage = 'gae'; the OVR / Open-Reasoner-Zero
// setting): after the rollout, the critic's values of the kept completions give GAE advantages per token (normalised
// over the batch), which replace the group-normalised rewards in the clipped policy loss; after the policy update the
// critic takes `critic.updateSteps` steps on the value loss. The loop in grpo.ts calls `ppoTargets` and
// `ppoCriticStep`; the math is ppo_math.ts, the critic critic.ts.

import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { Critic, type CriticSettings, type CriticUpdate, type PpoTargets } from './critic.js';
import type { GrpoConfig } from './grpo_config.js';
import type { Group } from './grpo_step.js';
import { buildTrainRows, disposeRows, type TrainRows } from './rollout.js';

/** The critic's settings from a resolved config. */
export function criticSettings(cfg: GrpoConfig): CriticSettings {
  const c = cfg.critic;
  return {
    lr: c.lr,
    warmupSteps: c.warmupSteps,
    updateSteps: c.updateSteps,
    valueClip: c.valueClip > 0 ? c.valueClip : undefined,
    maxGradNorm: c.maxGradNorm,
    betas: cfg.betas,
    eps: cfg.eps,
    weightDecay: cfg.weightDecay,
    trainable: c.trainable ?? cfg.trainable,
    maxConsecutiveNonFinite: cfg.maxConsecutiveNonFinite,
    recompute: cfg.recompute,
  };
}

/** A critic initialised from the policy's current weights when advantage is 'gae', else null. */
export function createCritic(cfg: GrpoConfig, policy: Qwen2_5_VL): Critic | null {
  if (cfg.advantage !== 'gae') return null;
  return Critic.fromPolicy(policy, criticSettings(cfg), cfg.critic.seed ?? cfg.seed ?? 0);
}

/** Rollout rows of a step (micro-batches of batchSize completions) and the critic targets computed on them. */
export interface PpoStep {
  rows: TrainRows[];
  targets: PpoTargets;
}

/**
 * Critic values and GAE targets for the kept groups; writes each group's per-token advantages
 * (`tokenAdvantages`) and, for the rollouts log, their per-completion mean into `advantages`.
 * The caller passes the result to {@link ppoCriticStep}, which frees the rows.
 */
export async function ppoTargets(
  critic: Critic,
  groups: Group[],
  cfg: GrpoConfig,
  padId: number,
): Promise<PpoStep> {
  const flat = groups.flatMap((g) => g.tokens.map((t) => ({ g, t })));
  const rows: TrainRows[] = [];
  for (let i = 0; i < flat.length; i += cfg.batchSize) {
    const part = flat.slice(i, i + cfg.batchSize);
    rows.push(
      buildTrainRows(
        part.map((r) => r.g.encoded),
        part.map((r) => r.t),
        padId,
      ),
    );
  }
  try {
    const rewards = groups.flatMap((g) => g.rewards);
    const targets = await critic.targets(rows, rewards, {
      gamma: cfg.gamma,
      lambda: cfg.lambda,
      norm: cfg.advantageNorm,
      groupSize: cfg.numGenerations,
    });
    let k = 0;
    for (const g of groups) {
      g.tokenAdvantages = g.tokens.map(() => targets.advantages[k++]);
      g.advantages = g.tokenAdvantages.map((a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0));
    }
    return { rows, targets };
  } catch (e) {
    rows.forEach(disposeRows);
    throw e;
  }
}

/** The critic's updates for RL step `step` (0-based) on the step's rows; frees the rows. */
export async function ppoCriticStep(critic: Critic, s: PpoStep, step: number): Promise<CriticUpdate> {
  try {
    return await critic.update(s.rows, s.targets, step);
  } finally {
    s.rows.forEach(disposeRows);
  }
}

/** Fields the step log adds for a PPO run. */
export function ppoRecordFields(s: PpoStep, u: CriticUpdate): Record<string, number> {
  return {
    valueLoss: u.valueLoss,
    valueClipFraction: u.valueClipFraction,
    explainedVariance: s.targets.explainedVariance,
    returnMean: s.targets.returnMean,
    valueMean: s.targets.valueMean,
    criticLr: u.criticLr,
    criticGradNorm: u.criticGradNorm,
    criticSkipped: u.criticSkipped,
  };
}

// Config fields of PPO with a learned critic (the OVR / Open-Reasoner-Zero RL setting), spread into GrpoConfig: the
// advantage estimator ('group' = GRPO, 'gae' = PPO with a critic), GAE gamma/lambda, advantage normalisation, and the
// critic's own optimizer settings. Defaults follow ORZ `playground/orz_7b_ppo.py` / `ppo_base_exp.py` and the OVR
// paper App. B: gamma = lambda = 1, batch-level normalisation, critic lr 5e-6 with a 50-step warm-up then constant,
// value_clip 0.2; OVR runs 4 critic steps per update.
import { z } from 'zod';
import { TRAINABLE_PARTS } from './config.js';

/** The critic's optimizer and loss settings (nested: --critic.lr, --critic.update-steps, ...). */
export const criticFields = {
  lr: z
    .number()
    .positive()
    .default(5e-6)
    .describe('Critic learning rate (ORZ/OVR 5e-6), constant after warm-up'),
  warmupSteps: z.number().int().min(0).default(50).describe('Critic linear warm-up in RL steps (ORZ 50)'),
  updateSteps: z
    .number()
    .int()
    .positive()
    .default(4)
    .describe('Critic optimizer steps per RL step, each over the whole rollout (OVR 4)'),
  valueClip: z
    .number()
    .min(0)
    .default(0.2)
    .describe('Value clipping radius around the rollout-time values (ORZ value_clip 0.2; 0: off)'),
  maxGradNorm: z.number().positive().default(1).describe('Critic global gradient-norm clip'),
  trainable: z
    .enum(TRAINABLE_PARTS)
    .optional()
    .describe(
      "Critic params that train (default: the policy's --trainable); the value head always trains. Under --lora the " +
        "critic is its own adapter on the policy's shared base and trains the whole adapter",
    ),
  seed: z
    .number()
    .int()
    .optional()
    .describe("Seed of the value-head init and of a LoRA critic's dropout masks (default: the run seed)"),
};

/** Fields added to GrpoConfig. */
export const ppoFields = {
  advantage: z
    .enum(['group', 'gae'])
    .default('group')
    .describe(
      "'group': GRPO, rewards normalised within each prompt's group; 'gae': PPO with a learned critic and GAE (OVR/ORZ)",
    ),
  gamma: z.number().min(0).max(1).default(1).describe('GAE discount (advantage gae; ORZ/OVR 1)'),
  lambda: z.number().min(0).max(1).default(1).describe('GAE lambda (advantage gae; ORZ/OVR 1)'),
  advantageNorm: z
    .enum(['batch', 'group', 'none'])
    .default('batch')
    .describe('Whitening of the GAE advantages over all tokens of the step (ORZ), per prompt group, or none'),
  critic: z
    .object(criticFields)
    .strict()
    .prefault({})
    .describe('Critic options for advantage gae (nested: --critic.lr 5e-6 --critic.update-steps 4)'),
};

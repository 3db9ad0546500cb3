// GRPO training configuration (zod 4): rollouts (G samples per prompt), reward, advantages, the clipped loss and its
// minibatching, plus the shared trainer fields of train/config.ts. Field names follow TRL `GRPOConfig` where one exists
// (num_generations -> numGenerations, epsilon_low/high -> clipLow/clipHigh, beta -> klCoef, scale_rewards ->
// scaleRewardsByStd, num_iterations -> ppoEpochs, loss_type 'dapo' -> lossAggregation 'token').
// Defaults follow ORZ/DAPO: no KL (the reference model is then not loaded), no entropy bonus, token-level loss.
//
// Batch vocabulary (completions, not prompts): one RL step samples promptsPerStep prompts x numGenerations
// completions (the rollout), then runs ppoEpochs passes over it in minibatches of miniBatchSize completions (one
// optimizer update each), each computed as micro-batches of batchSize completions (gradient accumulation).
import { z } from 'zod';
import { PROMPT_TEMPLATES } from '../data/templates.js';
import { RolloutConfig } from '../rollout/config.js';
import { type CommonTrainConfig, checkCommonTrainFields, commonTrainFields } from './config.js';
import { ppoFields } from './ppo_config.js';

/** Answer formats the math reward understands (see reward module): ORZ tags, \boxed{}, or anything it can extract. */
export const REWARD_FORMATS = ['orz', 'boxed', 'any'] as const;

/** Where and how to read the RL prompts (JSONL). */
export const grpoDataFields = {
  train: z
    .string()
    .min(1)
    .describe(
      'Prompts JSONL: rows with `question` (or `problem`) or chat `messages`, optional `image`/`images`, and `answer`',
    ),
  eval: z.string().min(1).optional().describe('Evaluation prompts JSONL (needed when evalEvery > 0)'),
  format: z
    .enum(['question', 'messages', 'auto'])
    .default('auto')
    .describe(
      "Row format: 'question' (question + answer), 'messages' (chat rows; the last user turn is the prompt), 'auto' (per row)",
    ),
  questionField: z
    .string()
    .default('auto')
    .describe("Field holding the question ('auto': question, then problem)"),
  answerField: z
    .string()
    .default('auto')
    .describe("Field holding the gold answer ('auto': answer, then solution's \\boxed{})"),
  promptTemplate: z
    .enum(PROMPT_TEMPLATES)
    .default('orz')
    .describe(
      "How a question becomes a prompt: 'orz' (<think>/<answer> with \\boxed{}, ORZ) or 'qwen' (chat + \\boxed{})",
    ),
  imageRoot: z
    .string()
    .optional()
    .describe('Folder that image paths in rows are relative to (default: the JSONL file folder)'),
  responsePrefix: z
    .string()
    .default('')
    .describe(
      "Text appended to chat prompts ('messages' rows) after the generation prompt, e.g. '<think>' as the ORZ template ends: the reply starts inside it (part of the prompt: not sampled, not rewarded)",
    ),
  shuffle: z.boolean().default(true).describe('Shuffle the prompts each epoch (seeded by `seed`)'),
};

/** The reward: a named reward function and its options. */
export const grpoRewardFields = {
  name: z
    .enum(['math'])
    .default('math')
    .describe("Reward function: 'math' (1 if the extracted answer equals the gold answer, else 0)"),
  format: z
    .enum(REWARD_FORMATS)
    .default('orz')
    .describe(
      "Where the answer must be: 'orz' (last \\boxed{} inside <answer></answer>; truncated completions score 0), 'boxed' (last \\boxed{}), 'any' (best effort)",
    ),
  workers: z.number().int().min(0).default(1).describe('Reward worker threads (0: score in the main thread)'),
};

const { gradAccumSteps: _derived, lr: _lr, ...shared } = commonTrainFields;

/** The GRPO training configuration. */
export const GrpoConfig = z
  .object({
    ...shared,
    lr: z
      .number()
      .positive()
      .default(1e-6)
      .describe('Peak learning rate (after warmup); 1e-6 as TRL GRPO and ORZ'),
    data: z
      .object(grpoDataFields)
      .strict()
      .describe('Prompt dataset options (nested: --data.train, --data.prompt-template, ...)'),
    reward: z
      .object(grpoRewardFields)
      .strict()
      .prefault({})
      .describe('Reward options (nested: --reward.format boxed)'),
    numGenerations: z
      .number()
      .int()
      .min(2)
      .default(8)
      .describe('G: completions sampled per prompt; advantages are normalised within these groups'),
    promptsPerStep: z
      .number()
      .int()
      .positive()
      .default(4)
      .describe('Prompts per RL step; the rollout has promptsPerStep x G completions'),
    miniBatchSize: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Completions per optimizer update (default: the whole rollout, one update per ppoEpoch)'),
    ppoEpochs: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe(
        'mu: passes over each rollout. With 1 pass and one minibatch the ratio is exactly 1 (on-policy)',
      ),
    temperature: z
      .number()
      .positive()
      .default(1)
      .describe('Sampling temperature of the rollouts (also used for the loss log-probs)'),
    topP: z
      .number()
      .gt(0)
      .max(1)
      .default(1)
      .describe('Nucleus sampling: keep the smallest set with probability >= topP (1: off)'),
    topK: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('Keep the topK most likely tokens when sampling (0: off)'),
    maxPromptLen: z
      .number()
      .int()
      .positive()
      .default(1024)
      .describe('Longest prompt in tokens (incl. image tokens); longer prompts are skipped'),
    maxResponseLen: z
      .number()
      .int()
      .positive()
      .default(1024)
      .describe('Most new tokens per completion; longer ones stop with finishReason length'),
    stopStrings: z
      .array(z.string().min(1))
      .default(['</answer>'])
      .describe('Stop a completion when its text contains one of these (comma list); EOS always stops'),
    scaleRewardsByStd: z
      .boolean()
      .default(true)
      .describe('Advantage = (r - mean) / (std + 1e-4) per group; false: r - mean (Dr. GRPO)'),
    dynamicSampling: z
      .boolean()
      .default(false)
      .describe(
        'Drop groups whose rewards are all equal (no signal) and sample new prompts to refill (DAPO)',
      ),
    maxRefills: z
      .number()
      .int()
      .min(0)
      .default(3)
      .describe('With dynamicSampling: extra sampling rounds per step before training on fewer groups'),
    clipLow: z.number().min(0).lt(1).default(0.2).describe('PPO clip: ratio floor is 1 - clipLow'),
    clipHigh: z
      .number()
      .min(0)
      .default(0.2)
      .describe('PPO clip: ratio ceiling is 1 + clipHigh (DAPO clip-higher: 0.28)'),
    lossAggregation: z
      .enum(['token', 'sequence'])
      .default('token')
      .describe(
        "'token': sum over all completion tokens / their count (DAPO); 'sequence': mean per completion, then mean",
      ),
    klCoef: z
      .number()
      .min(0)
      .default(0)
      .describe(
        'Weight of the k3 KL penalty to a frozen reference model (0: off, and the reference is not loaded)',
      ),
    refModel: z
      .string()
      .min(1)
      .optional()
      .describe('Reference model directory for the KL penalty (default: `model`); only used when klCoef > 0'),
    entropyCoef: z.number().min(0).default(0).describe('Weight of the entropy bonus (0: off)'),
    rollout: RolloutConfig.prefault({}).describe(
      'Rollout engine (nested: --rollout.engine sglang --rollout.url http://127.0.0.1:30000); docs/scaling.md',
    ),
    ...ppoFields,
  })
  .strict()
  .superRefine((c, ctx) => {
    checkCommonTrainFields({ ...c, gradAccumSteps: 1 } as CommonTrainConfig, ctx);
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: 'custom', path, message });
    const rollout = c.promptsPerStep * c.numGenerations;
    const mini = c.miniBatchSize ?? rollout;
    if (rollout % mini !== 0) {
      issue(
        ['miniBatchSize'],
        `miniBatchSize (${mini}) must divide the rollout, promptsPerStep x numGenerations (${c.promptsPerStep} x ${c.numGenerations} = ${rollout}): use a divisor such as ${c.numGenerations}`,
      );
    }
    if (mini % c.numGenerations !== 0) {
      issue(
        ['miniBatchSize'],
        `miniBatchSize (${mini}) must be a multiple of numGenerations (${c.numGenerations}) so each minibatch holds whole groups`,
      );
    }
    if (mini % c.batchSize !== 0) {
      issue(
        ['batchSize'],
        `miniBatchSize (${mini}) must be divisible by batchSize (${c.batchSize}): the update is miniBatchSize / batchSize micro-batches`,
      );
    }
    if (c.refModel !== undefined && c.klCoef === 0) {
      issue(
        ['refModel'],
        'refModel is only used when klCoef > 0: set --kl-coef (e.g. 0.001) or drop --ref-model',
      );
    }
    if (c.reward.format === 'orz' && c.data.promptTemplate !== 'orz') {
      issue(
        ['reward', 'format'],
        `reward.format 'orz' needs <answer> tags, which the '${c.data.promptTemplate}' template does not ask for: use --reward.format boxed or --data.prompt-template orz`,
      );
    }
    if (c.evalEvery > 0 && c.data.eval === undefined) {
      issue(
        ['data', 'eval'],
        `evalEvery (${c.evalEvery}) needs data.eval: pass --data.eval FILE or set evalEvery to 0`,
      );
    }
    const lora = c.lora !== undefined || c.adapter !== undefined;
    if (c.rollout.weights === 'adapter' && !lora) {
      issue(
        ['rollout', 'weights'],
        `rollout.weights 'adapter' syncs the LoRA adapter, but this run trains the full weights: add --lora.r 16 (or --adapter DIR) to train an adapter, or set --rollout.weights full${c.rollout.engine === 'vllm' ? " with rollout.engine 'sglang' (vLLM syncs adapters only)" : ''}`,
      );
    }
    if (c.rollout.weights === 'full' && lora && c.rollout.engine !== 'local') {
      issue(
        ['rollout', 'weights'],
        "this run trains a LoRA adapter, so the engine must load it: set --rollout.weights adapter (a 'full' sync would send the base weights without the adapter)",
      );
    }
  });

/** Resolved GRPO config (after defaults). */
export type GrpoConfig = z.infer<typeof GrpoConfig>;

/** Batch sizes of one RL step, derived from a resolved config. */
export interface GrpoBatchPlan {
  /** Completions sampled per step: promptsPerStep x numGenerations. */
  rolloutSize: number;
  /** Completions per optimizer update. */
  miniBatchSize: number;
  /** Micro-batches (of batchSize) accumulated per update. */
  microBatchesPerUpdate: number;
  /** Optimizer updates per RL step: ppoEpochs x rolloutSize / miniBatchSize. */
  updatesPerStep: number;
}

/**
 * Derived batch sizes of one RL step.
 * @example grpoBatchPlan(GrpoConfig.parse({ model: 'tiny', data: { train: 'p.jsonl' }, batchSize: 4 }))
 * // { rolloutSize: 32, miniBatchSize: 32, microBatchesPerUpdate: 8, updatesPerStep: 1 }
 */
export function grpoBatchPlan(c: GrpoConfig): GrpoBatchPlan {
  const rolloutSize = c.promptsPerStep * c.numGenerations;
  const miniBatchSize = c.miniBatchSize ?? rolloutSize;
  return {
    rolloutSize,
    miniBatchSize,
    microBatchesPerUpdate: miniBatchSize / c.batchSize,
    updatesPerStep: (c.ppoEpochs * rolloutSize) / miniBatchSize,
  };
}

// `GrpoConfig.rollout`: which engine samples the rollouts, how often it gets the trainer's weights, and how the
// engine/trainer mismatch is corrected. zod 4, every field described (shown by `ovr-train grpo --help` as
// --rollout.engine, --rollout.url, ...). Defaults keep today's behaviour: the in-process engine, synced every update.
import { z } from 'zod';

/** How the trainer forms importance weights from the engine/trainer log-prob mismatch (train/is_correction.ts). */
export type IsMode = 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';
export const IS_MODES = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'] as const;

/** Retry policy of a remote engine (src/rollout/http.ts). */
export const RetryConfig = z
  .object({
    attempts: z.number().int().min(1).default(3).describe('Attempts per engine call before the step fails'),
    backoffMs: z.number().min(0).default(500).describe('Wait before the 2nd attempt, doubled each retry'),
    maxBackoffMs: z.number().min(0).default(10_000).describe('Cap on one wait between attempts'),
    timeoutMs: z
      .number()
      .positive()
      .default(1_800_000)
      .describe('Time limit of one call (a whole rollout batch: long reasoning chains take minutes)'),
  })
  .strict();

/** The rollout engine settings. */
export const RolloutConfig = z
  .object({
    engine: z
      .enum(['local', 'sglang', 'vllm'])
      .default('local')
      .describe(
        "Who samples the rollouts: 'local' (in-process tfjs), 'sglang' (/generate), 'vllm' (OpenAI API); `ovr-train serve` speaks both",
      ),
    url: z.string().optional().describe('Base URL of the sglang/vllm engine, e.g. http://127.0.0.1:30000'),
    model: z.string().optional().describe('vllm: served model name (default: the first of GET /v1/models)'),
    syncEvery: z
      .number()
      .int()
      .min(1)
      .default(1)
      .describe(
        'Push the weights to the engine after every N RL steps (rollouts in between are off-policy, corrected by IS)',
      ),
    weights: z
      .enum(['full', 'adapter'])
      .default('full')
      .describe("What a sync writes and loads: 'full' HF safetensors, or the LoRA 'adapter' (PEFT files)"),
    syncDir: z
      .string()
      .optional()
      .describe(
        'Folder for the synced weights; must be readable by the engine at the same path (default: <outDir>/rollout-weights)',
      ),
    syncDtype: z
      .enum(['F32', 'BF16'])
      .default('F32')
      .describe(
        'dtype of synced weights or adapter: F32 keeps engine = trainer exactly; BF16 halves the bytes (engines serve bf16)',
      ),
    isMode: z
      .enum(IS_MODES)
      .default('token_truncate')
      .describe(
        'Importance-sampling correction of the engine/trainer mismatch (TIS token_truncate, as verl; TRL: sequence_mask)',
      ),
    isCap: z.number().min(1).default(2).describe('Cap C of the importance weights (verl 2, TRL 3)'),
    maxVersionLag: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        'Refuse rollouts whose weights are older than the last synced version by more than this many syncs',
      ),
    retry: RetryConfig.prefault({}).describe('Retries of engine calls (nested: --rollout.retry.attempts 5)'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.engine !== 'local' && !c.url)
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: `rollout.engine '${c.engine}' needs rollout.url (e.g. http://127.0.0.1:30000)`,
      });
    if (c.engine === 'local' && c.url)
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: "rollout.url is set but rollout.engine is 'local': set --rollout.engine sglang or vllm",
      });
    if (c.engine === 'vllm' && c.weights === 'full')
      ctx.addIssue({
        code: 'custom',
        path: ['weights'],
        message:
          "rollout.engine 'vllm' syncs adapters only (vLLM has no public full-weight reload): set rollout.weights 'adapter' or use sglang",
      });
  });
export type RolloutConfig = z.output<typeof RolloutConfig>;

// Training configuration schemas (zod 4): the fields SFT and GRPO share, and the SFT config itself.
// Follows TRL's dataclass configs (help text on every field, `__post_init__` rejecting bad combinations with a fix)
// and mlx-lm's flags > file > defaults flow; see STYLE.md "Config flow".
// Every field has a `.describe()`, because `ovr-train <cmd> --help` is generated from these descriptions.
import { z } from 'zod';
import { imageSizeFields, type SmartResizeOptions } from '../data/resize.js';
import { TRAINABLE_PARTS } from '../model/trainable.js';
import { loraFields } from './lora.js';

export { isTrainableParam, TRAINABLE_PARTS } from '../model/trainable.js';

/**
 * Names of the tfjs backends a run may select (the same list as `BACKEND_NAMES` in src/backend/index.ts; a test
 * keeps them equal). `tensorflow` is tfjs-node(-gpu) when installed; `auto` picks the fastest that starts.
 */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

/**
 * Fields shared by every trainer (SFT and GRPO), as a plain zod shape object so other schemas can spread it.
 * @example
 * const GrpoConfig = z.object({ ...commonTrainFields, numGenerations: z.number().int().describe('G') }).strict();
 */
export const commonTrainFields = {
  model: z
    .string()
    .min(1)
    .describe(
      "Model to start from: a directory with config.json + *.safetensors, 'tiny' for a random tiny model, or a config.json path (random init)",
    ),
  outDir: z
    .string()
    .min(1)
    .default('runs/run')
    .describe('Run directory: checkpoints, the JSONL log and the resolved config go here'),
  seed: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('Seed for every random stream (data order, sampling, init); 0 is a valid seed'),
  steps: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Number of optimizer steps. Set steps or epochs, not both; with neither the run is 1 epoch'),
  epochs: z
    .number()
    .positive()
    .optional()
    .describe('Number of passes over the training data (may be fractional). Set steps or epochs, not both'),
  batchSize: z
    .number()
    .int()
    .positive()
    .default(4)
    .describe('Sequences per micro-batch (one forward/backward pass)'),
  gradAccumSteps: z
    .number()
    .int()
    .positive()
    .default(1)
    .describe('Micro-batches accumulated per optimizer step; effective batch = batchSize * gradAccumSteps'),
  lr: z.number().positive().default(1e-5).describe('Peak learning rate (after warmup)'),
  minLrRatio: z
    .number()
    .min(0)
    .max(1)
    .default(0.1)
    .describe('Cosine decay floor as a fraction of lr (0 decays to zero)'),
  warmupSteps: z.number().int().min(0).default(0).describe('Linear warmup steps from 0 to lr'),
  weightDecay: z
    .number()
    .min(0)
    .default(0.0)
    .describe('AdamW decoupled weight decay (biases, norm weights and the token embedding are exempt)'),
  betas: z
    .tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)])
    .default([0.9, 0.999])
    .describe('AdamW beta1,beta2 (comma list on the CLI: --betas 0.9,0.95)'),
  eps: z.number().positive().default(1e-8).describe('AdamW epsilon added to sqrt(v)'),
  maxGradNorm: z
    .number()
    .min(0)
    .default(1.0)
    .describe('Clip gradients to this global L2 norm; 0 disables clipping'),
  trainable: z
    .enum(TRAINABLE_PARTS)
    .default('all')
    .describe(
      "Parts to train: 'all', 'lm' (freeze vision tower and merger), 'vision' (freeze the LM), 'lm+merger' (freeze the vision blocks)",
    ),
  recompute: z
    .boolean()
    .default(false)
    .describe(
      'Recompute each decoder layer in the backward pass (activation checkpointing: keeps only layer inputs; see ovr-train plan)',
    ),
  ...loraFields,
  saveEvery: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('Save a checkpoint every N steps (0: only at the end)'),
  keepLast: z.number().int().positive().default(3).describe('Keep only the newest N checkpoints in outDir'),
  logEvery: z
    .number()
    .int()
    .positive()
    .default(1)
    .describe('Write a JSONL log line (and read loss/gradNorm from the device) every N steps'),
  evalEvery: z.number().int().min(0).default(0).describe('Evaluate on the eval set every N steps (0: never)'),
  maxConsecutiveNonFinite: z
    .number()
    .int()
    .positive()
    .default(5)
    .describe('Skip steps whose gradient norm is NaN/Inf; stop the run after this many in a row'),
  backend: z
    .enum(BACKENDS)
    .default('auto')
    .describe(
      "tfjs backend: 'auto' (tfjs-node-gpu, tfjs-node, webgpu on a real GPU, wasm, cpu), or one of them forced",
    ),
  resume: z
    .string()
    .optional()
    .describe("Resume from a checkpoint directory, or 'latest' for the newest checkpoint in outDir"),
  allowConfigChange: z
    .boolean()
    .default(false)
    .describe(
      'On resume, continue even when settings that change the run (seed, data, sizes, lr, ...) differ from the checkpoint',
    ),
  ...imageSizeFields,
};

/** Output type of the shared fields, for functions that only need those. */
export type CommonTrainConfig = z.infer<z.ZodObject<typeof commonTrainFields>>;

type Ctx = z.RefinementCtx;

/**
 * Cross-field checks of the shared fields; call from each trainer schema's `superRefine`.
 * @example
 * z.object({ ...commonTrainFields }).strict().superRefine((c, ctx) => checkCommonTrainFields(c, ctx));
 */
export function checkCommonTrainFields(c: CommonTrainConfig, ctx: Ctx): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (c.steps !== undefined && c.epochs !== undefined) {
    issue('steps', `set steps (${c.steps}) or epochs (${c.epochs}), not both: remove one of them`);
  }
  if (c.steps !== undefined && c.warmupSteps >= c.steps && c.warmupSteps > 0) {
    issue(
      'warmupSteps',
      `warmupSteps (${c.warmupSteps}) must be less than steps (${c.steps}): lower warmupSteps`,
    );
  }
  if (c.steps !== undefined && c.saveEvery > c.steps) {
    issue(
      'saveEvery',
      `saveEvery (${c.saveEvery}) exceeds steps (${c.steps}): use 0 to save only at the end`,
    );
  }
  if (c.resume === '')
    issue('resume', "resume is empty: give a checkpoint directory or 'latest', or drop the flag");
}

/** Where and how to read SFT data (JSONL). */
export const sftDataFields = {
  train: z.string().min(1).describe('Training JSONL file (one row per line)'),
  eval: z.string().min(1).optional().describe('Evaluation JSONL file (needed when evalEvery > 0)'),
  format: z
    .enum(['messages', 'question_solution', 'auto'])
    .default('auto')
    .describe(
      "Row format: 'messages' (chat rows; a reply's text part marked train: false is input without loss), " +
        "'question_solution' (question/problem + solution/answer), or 'auto' (per row)",
    ),
  questionField: z
    .string()
    .default('auto')
    .describe("Field holding the question ('auto': question, then problem)"),
  solutionField: z.string().default('auto').describe("Field holding the worked solution ('auto': solution)"),
  answerField: z.string().default('auto').describe("Field holding the final answer ('auto': answer)"),
  promptTemplate: z
    .enum(['plain', 'qwen', 'orz'])
    .default('qwen')
    .describe(
      "How question/solution rows become messages: 'plain' (question -> solution), 'qwen' (ask for \\boxed{}), 'orz' (<think>/<answer> tags)",
    ),
  imageRoot: z
    .string()
    .optional()
    .describe('Folder that image paths in rows are relative to (default: the JSONL file folder)'),
};

/** The SFT training configuration. */
export const SftConfig = z
  .object({
    ...commonTrainFields,
    data: z
      .object(sftDataFields)
      .strict()
      .describe('Dataset options (nested: --data.train, --data.format, ...)'),
    maxSeqLen: z
      .number()
      .int()
      .positive()
      .default(1024)
      .describe(
        'Longest sequence in tokens; longer rows are truncated (rows with images are dropped instead)',
      ),
    packing: z
      .boolean()
      .default(false)
      .describe(
        'Pack several short sequences into one maxSeqLen row; attention is block-diagonal per sequence and positions restart, so loss and gradients equal unpacked training',
      ),
    lengthGrouping: z
      .boolean()
      .default(true)
      .describe('Batch sequences of similar length together (less padding)'),
    padSide: z.enum(['right', 'left']).default('right').describe('Pad side for training batches'),
  })
  .strict()
  .superRefine((c, ctx) => {
    checkCommonTrainFields(c, ctx);
    if (c.evalEvery > 0 && c.data.eval === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'eval'],
        message: `evalEvery (${c.evalEvery}) needs data.eval: pass --data.eval FILE or set evalEvery to 0`,
      });
    }
    if (c.packing && c.padSide === 'left') {
      ctx.addIssue({
        code: 'custom',
        path: ['padSide'],
        message:
          "packing fills rows from the left, so padSide must be 'right': drop --pad-side left or --packing",
      });
    }
  });

/** Resolved SFT config (after defaults). */
export type SftConfig = z.infer<typeof SftConfig>;

/** The image-size settings of a training config, for the processor. */
export function imageOptions(c: { maxPixels: number; minPixels: number }): SmartResizeOptions {
  return { maxPixels: c.maxPixels, minPixels: c.minPixels };
}

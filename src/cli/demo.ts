// `ovr-train demo [--quick] [--steps N] [--sft-steps N] [--pretrain-steps N] [--seed S] [--model-config PATH] [--backend B]
// [--out DIR]`. The OVR pipeline in miniature (src/demo/pipeline.ts): base-model captioning (stage 0), text-only SFT
// cold start, then GRPO on images, evals,
// checkpoints, logs, charts and an HTML report in a run folder. Fully offline.
import path from 'node:path';
import { z } from 'zod';
import { BACKEND_NAMES } from '../backend/index.js';
import { type DemoOptions, demoDefaults } from '../demo/options.js';
import { runDemo } from '../demo/pipeline.js';
import { TASK_KINDS } from '../demo/tasks.js';
import { openRunFolder } from '../io/run_folder.js';
import { startCommand } from './common.js';

/** Flags of `ovr-train demo`; unset numbers fall back to the tuned defaults of `demoDefaults(quick)`. */
export const DemoArgs = z
  .object({
    quick: z
      .boolean()
      .default(false)
      .describe('tiny smoke run (~1 min): checks the plumbing, no learning claim'),
    steps: z.number().int().min(1).optional().describe('RL (GRPO) steps; default 60 (quick: 2)'),
    sftSteps: z.number().int().min(1).optional().describe('stage-1 SFT steps; default 300 (quick: 3)'),
    pretrainSteps: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('stage-0 captioning steps (the base model learning to see); default 400 (quick: 2)'),
    seed: z.number().int().min(0).default(0).describe('seed of data, init and sampling'),
    modelConfig: z
      .string()
      .optional()
      .describe(
        "model config: a folder with config.json or a .json file (default: the package's models/demo; its token ids must fit the demo vocabulary)",
      ),
    backend: z
      .enum(BACKEND_NAMES)
      .optional()
      .describe('tfjs backend (default: OVR_BACKEND or auto, which picks wasm on CPU)'),
    out: z.string().optional().describe('run folder (default runs/demo-<timestamp>)'),
    tasks: z
      .array(z.enum(TASK_KINDS))
      .optional()
      .describe(`task kinds, comma-separated, of ${TASK_KINDS.join(',')} (default count,compare)`),
    rlLr: z.number().positive().optional().describe('RL learning rate (default 1e-4)'),
    sftLr: z.number().positive().optional().describe('stage-1 SFT learning rate (default 3e-3)'),
    rlAlgo: z
      .enum(['grpo', 'ppo'])
      .default('grpo')
      .describe(
        "stage-2 RL: 'grpo' (group-normalised rewards) or 'ppo' (learned critic + GAE, the paper's setting)",
      ),
    judgeUrl: z
      .string()
      .url()
      .optional()
      .describe('OpenAI-compatible endpoint for the behaviour-transfer table (default: the offline lexicon)'),
    judgeModel: z.string().min(1).optional().describe('judge model name (with --judge-url)'),
  })
  .strict();

export type DemoArgsT = z.output<typeof DemoArgs>;

/** Flags -> full demo options (defaults < flags). */
export function demoOptions(a: DemoArgsT): DemoOptions {
  const o = demoDefaults(a.quick, a.seed);
  if (a.modelConfig) o.modelConfig = a.modelConfig;
  if (a.out) o.out = a.out;
  if (a.steps) o.rl.steps = a.steps;
  if (a.sftSteps) o.sft.steps = a.sftSteps;
  if (a.pretrainSteps) o.pretrain.steps = a.pretrainSteps;
  if (a.tasks) o.tasks = [...a.tasks];
  if (a.rlLr) o.rl.lr = a.rlLr;
  if (a.sftLr) o.sft.lr = a.sftLr;
  if (a.backend) o.backend = a.backend;
  o.rl.advantage = a.rlAlgo === 'ppo' ? 'gae' : 'group';
  if (a.judgeUrl) {
    if (!a.judgeModel) throw new Error('ovr-train demo: --judge-url needs --judge-model');
    o.judge = { url: a.judgeUrl, model: a.judgeModel, cacheDir: path.join(o.out, 'judge-cache') };
  }
  return o;
}

const USAGE =
  'The OVR pipeline in miniature: stage 0 gives a tiny random-init Qwen2.5-VL its perception (image captions, standing\n' +
  "in for Qwen2.5-VL's pre-training), stage 1 SFT on text-only renderings of a shapes task\n" +
  '(think/answer chains with reflection), stage 2 GRPO on the image version with the verifiable reward.\n' +
  'Writes checkpoints, JSONL logs, PNG charts and report/index.html to the run folder.';

/** CLI entry; returns the exit code. */
export async function demoCommand(argv: string[]): Promise<number> {
  const p = await startCommand(DemoArgs, argv, 'ovr-train demo', USAGE, (c) => c.backend);
  if ('exit' in p) return p.exit;
  const o = demoOptions(p.config as z.output<typeof DemoArgs>);
  o.backend = p.backend.name;
  // Before anything is written: a demo run needs a folder of its own (there is no resume of a demo).
  const lock = openRunFolder(o.out, {
    command: 'ovr-train demo',
    fix: 'give --out a new folder (each demo run writes a fresh one; the default is runs/demo-<timestamp>)',
  });
  try {
    await runDemo(o);
  } finally {
    lock.release();
  }
  return 0;
}

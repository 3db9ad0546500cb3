// `ovr-train sft --config run.json [--flags]`: supervised fine-tuning (the linguistic cold start) with SftConfig.
// Parses once (defaults < file < flags), starts the backend, runs trainSft and prints a one-line JSON summary.

import { SftConfig } from '../train/config.js';
import { trainSft } from '../train/sft.js';
import { SIGNAL_EXIT } from '../util/interrupt.js';
import { startCommand } from './common.js';

const SUMMARY =
  'Supervised fine-tuning of Qwen2.5-VL on JSONL chat rows (or question/solution rows), loss on assistant tokens only.\n' +
  'Writes <outDir>/training_config.json, <outDir>/log.jsonl (one line per step) and <outDir>/checkpoint-<step>/.\n' +
  'Example: ovr-train sft --model tiny --data.train data/train.jsonl --steps 100 --out-dir runs/sft';

/**
 * CLI entry: returns the exit code (0 ok, 2 bad arguments); training errors propagate with their message.
 * @example await sftCommand(['--config', 'run.json', '--lr', '3e-5']);
 */
export async function sftCommand(argv: string[]): Promise<number> {
  const p = await startCommand(SftConfig, argv, 'ovr-train sft', SUMMARY, (c) => c.backend);
  if ('exit' in p) return p.exit;
  const cfg = p.config as SftConfig;
  const backend = p.backend.name;
  const r = await trainSft(cfg);
  const last = r.losses[r.losses.length - 1];
  console.log(
    JSON.stringify({
      steps: r.steps,
      loss: last ?? null,
      checkpoint: r.checkpoint,
      nonFiniteSteps: r.nonFiniteSteps,
      backend,
    }),
  );
  return r.interrupted ? SIGNAL_EXIT[r.interrupted] : 0;
}

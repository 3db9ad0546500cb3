// `ovr-train grpo --config run.json [--flags]`: GRPO with the verifiable math reward (src/train/grpo.ts).
// Flags follow GrpoConfig (kebab-case, nested with dots: --data.train, --reward.format); precedence is
// defaults < --config file < flags. `--help` lists every field with its description and default.

import { GrpoConfig } from '../train/grpo_config.js';
import { SIGNAL_EXIT } from '../util/interrupt.js';
import { startCommand } from './common.js';

const PROG = 'ovr-train grpo';

const ABOUT = [
  'GRPO (ORZ/DAPO style): per step, sample promptsPerStep prompts x numGenerations completions, score them with',
  'the math reward, normalise rewards within each group, then run ppoEpochs passes of PPO-clipped updates.',
  '`steps` counts RL steps (one rollout + its updates). Writes log.jsonl (one line per step), rollouts.jsonl',
  '(every completion with its reward), training_config.json and checkpoint-<step>/ into --out-dir.',
].join('\n');

/** CLI entry: parses flags, trains, prints where the run went; returns the exit code. */
export async function grpoCommand(argv: string[]): Promise<number> {
  const p = await startCommand(GrpoConfig, argv, PROG, ABOUT, (c) => c.backend);
  if ('exit' in p) return p.exit;
  const { trainGrpo } = await import('../train/grpo.js');
  const res = await trainGrpo(p.config as GrpoConfig);
  const last = res.records.at(-1);
  const summary = last
    ? `reward ${last.rewardMean.toFixed(3)}, accuracy ${last.accuracy.toFixed(3)}, response length ${last.responseLenMean.toFixed(1)}`
    : 'nothing to do (already at the last step)';
  console.log(`${PROG}: ${res.steps} step(s); last step ${summary}`);
  console.log(
    `${PROG}: log ${res.logFile}, rollouts ${res.rolloutsFile}${res.lastCheckpoint ? `, checkpoint ${res.lastCheckpoint}` : ''}`,
  );
  return res.interrupted ? SIGNAL_EXIT[res.interrupted] : 0;
}

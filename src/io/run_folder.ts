// Run-folder layout knowledge for messages: which `checkpoint-<step>` folders a run folder holds, a hint when a run
// folder is given where a checkpoint folder is expected, and the advice for a damaged latest checkpoint. The layout is
// the one train/state.ts writes (HF Trainer style: runDir/checkpoint-00000010/train_state.json).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** A checkpoint folder name: `checkpoint-<step>`. */
export const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
/** The file a complete checkpoint folder holds (written last). */
export const STATE_FILE = 'train_state.json';

/** Complete checkpoints directly inside `dir`, oldest first (synchronous: used while building error messages). */
export function checkpointsIn(dir: string): { step: number; dir: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { step: number; dir: string }[] = [];
  for (const n of names) {
    const m = CHECKPOINT_RE.exec(n);
    if (m && existsSync(path.join(dir, n, STATE_FILE)))
      out.push({ step: Number(m[1]), dir: path.join(dir, n) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * A hint for `dir` given where a checkpoint (model) folder was expected: when it is a run folder, names its newest
 * checkpoints and the one to pass. '' when `dir` is not a run folder.
 * @example runFolderHint('runs/sft1') // " runs/sft1 is a run folder with 3 checkpoints (..., checkpoint-00000030); pass runs/sft1/checkpoint-00000030"
 */
export function runFolderHint(dir: string): string {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return '';
  }
  if (!isDir) return '';
  const cks = checkpointsIn(dir);
  if (cks.length === 0) {
    return existsSync(path.join(dir, 'training_config.json'))
      ? ` ${dir} is a run folder without a complete checkpoint yet.`
      : '';
  }
  const names = cks.map((c) => path.basename(c.dir));
  const shown = names.length > 3 ? ['...', ...names.slice(-3)] : names;
  return (
    ` ${dir} is a run folder with ${cks.length} checkpoint(s) (${shown.join(', ')}); ` +
    `pass one of them, e.g. ${cks[cks.length - 1].dir}`
  );
}

/**
 * The error for a checkpoint that cannot be loaded: names it, the cause, and the previous complete checkpoint of the
 * same run folder to resume from instead (or says there is none).
 * @example throw damagedCheckpointError('runs/a/checkpoint-00000020', e);
 */
export function damagedCheckpointError(checkpointDir: string, cause: unknown): Error {
  const runDir = path.dirname(checkpointDir);
  const step = Number(CHECKPOINT_RE.exec(path.basename(checkpointDir))?.[1] ?? Number.POSITIVE_INFINITY);
  const earlier = checkpointsIn(runDir).filter((c) => c.step < step);
  const prev = earlier[earlier.length - 1];
  const advice = prev
    ? `Resume from the previous checkpoint instead: --resume ${prev.dir} (move the damaged one out of ${runDir} first, ` +
      "so that 'latest' does not pick it again)."
    : `There is no earlier complete checkpoint in ${runDir}: start the run again.`;
  const err = new Error(
    `checkpoint ${checkpointDir} is damaged and cannot be resumed: ${(cause as Error)?.message ?? cause}\n${advice}`,
  );
  err.cause = cause;
  return err;
}

// Run folders: the one entry for commands that write one (lock + refuse a fresh run into a used folder), which
// `checkpoint-<step>` folders a run folder holds, a hint when a run folder is given where a checkpoint folder is
// expected, and the advice for a damaged latest checkpoint. The layout is
// the one train/state.ts writes (HF Trainer style: runDir/checkpoint-00000010/train_state.json).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { acquireRunLock, LOCK_FILE, type RunLock } from './run_lock.js';

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

/** Options of {@link openRunFolder}. */
export interface OpenRunFolderOptions {
  /** What holds the lock, e.g. 'ovr-train sft'. */
  command: string;
  /** The run continues what is in the folder (a resume): existing contents are expected. */
  resume?: boolean;
  /** Existing outputs may be replaced (e.g. `eval --overwrite`). */
  overwrite?: boolean;
  /** How to proceed when the folder already holds a run, e.g. "pass --resume latest to continue it". */
  fix: string;
}

/** A short description of what a run folder holds (log lines, checkpoints, other files). */
export function describeRunFolder(dir: string, names: string[]): string {
  const parts: string[] = [];
  const cks = names.filter((n) => CHECKPOINT_RE.test(n)).sort();
  for (const log of ['log.jsonl', 'rollouts.jsonl']) {
    if (!names.includes(log)) continue;
    let lines = 0;
    try {
      lines = readFileSync(path.join(dir, log), 'utf8')
        .split('\n')
        .filter((l) => l.trim()).length;
    } catch {
      // unreadable: named without a count
    }
    parts.push(`${log} (${lines} lines)`);
  }
  if (cks.length === 1) parts.push(cks[0]);
  if (cks.length > 1) parts.push(`${cks.length} checkpoints ${cks[0]}..${cks[cks.length - 1]}`);
  const rest = names.filter((n) => !CHECKPOINT_RE.test(n) && n !== 'log.jsonl' && n !== 'rollouts.jsonl');
  if (rest.length > 0)
    parts.push(
      rest.length > 4 ? `${rest.slice(0, 4).join(', ')} and ${rest.length - 4} more` : rest.join(', '),
    );
  return parts.join(', ');
}

/**
 * The one entry to a run folder for every command that writes one (sft, grpo, demo, eval --out): takes the folder's
 * lock (refusing a folder another live run writes, naming its pid), then refuses a fresh run into a folder that
 * already holds files, before anything is written (never appends to an old log, never half-overwrites). Returns the
 * lock; release it when the run ends (it is also released at exit).
 * @example const lock = openRunFolder(cfg.outDir, { command: 'ovr-train sft', resume: !!cfg.resume, fix: 'pass --resume latest to continue it' });
 */
export function openRunFolder(dir: string, o: OpenRunFolderOptions): RunLock {
  const lock = acquireRunLock(dir, o.command);
  if (o.resume || o.overwrite) return lock;
  const names = readdirSync(dir).filter((n) => n !== LOCK_FILE && !n.startsWith(`${LOCK_FILE}.`));
  if (names.length > 0) {
    lock.release();
    throw new Error(`${dir} already holds a run (${describeRunFolder(dir, names)}): ${o.fix}`);
  }
  return lock;
}

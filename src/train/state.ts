// Atomic training checkpoints: step, data position, rng state, optimizer moments, the resolved config and the weights.
// Each checkpoint is written whole into a temp dir inside the run dir, then renamed to `checkpoint-<step>`, so a crash
// mid-write never leaves a half checkpoint where `latestCheckpoint` would find it (HF Trainer layout, minus torch).
//
// Layout of runDir/checkpoint-00000010/:
//   train_state.json        step, dataPosition, rng, optimizer step, extra (format 'ovr-train-state', version 1)
//   training_config.json    the resolved training config
//   optimizer.safetensors   F32 `exp_avg.<param>` and `exp_avg_sq.<param>` (torch AdamW state names)
//   ...                     whatever `writeWeights(tmpDir)` writes (model safetensors + config.json)
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DataPosition } from '../data/batches.js';
import { withWriteContext } from '../io/files.js';
import { checkpointsIn, openRunFolder } from '../io/run_folder.js';
import type { RunLock } from '../io/run_lock.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { RngState } from '../util/rng.js';
import type { AdamWState, HostF32Tensor } from './optim.js';

/** Everything a trainer needs to continue a run exactly. */
export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  dataPosition: DataPosition;
  /** Rng state (`Rng.getState()`), or states by stream name; JSON-serialisable. */
  rng: RngState | Record<string, RngState>;
  /** AdamW moments; omitted for weights-only checkpoints. */
  optimizerState?: AdamWState;
  /** The resolved (parsed, defaulted) training config. */
  resolvedConfig: unknown;
  /** Anything else JSON-serialisable (non-finite step counts, best eval loss, ...). */
  extra?: Record<string, unknown>;
}

/**
 * Writes the resolved training config to `runDir/training_config.json` at the start of a run (each checkpoint keeps
 * its own copy as well).
 * @example await writeRunConfig(cfg.outDir, cfg);
 */
export async function writeRunConfig(runDir: string, resolvedConfig: unknown): Promise<string> {
  const file = path.join(runDir, CONFIG_FILE);
  await withWriteContext(file, 'the training config', async () => {
    await mkdir(runDir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeJsonSynced(tmp, resolvedConfig);
    await rename(tmp, file);
  });
  return file;
}

/** Options of {@link saveTrainState}. */
export interface SaveOptions {
  /** Writes model weights (+ config.json) into the temp dir before the rename, e.g. `(d) => saveWeights(model, d)`. */
  writeWeights?: (tmpDir: string) => Promise<void>;
  /** Keep only the newest N checkpoints in the run dir after a successful save (default: keep all). */
  keepLast?: number;
}

const PREFIX = 'checkpoint-';
const TMP_PREFIX = '.tmp-checkpoint-';
const STATE_FILE = 'train_state.json';
const CONFIG_FILE = 'training_config.json';
const OPTIM_FILE = 'optimizer.safetensors';
const FORMAT = 'ovr-train-state';

/** Directory name of the checkpoint for `step`. @example checkpointName(10) // 'checkpoint-00000010' */
export const checkpointName = (step: number): string => `${PREFIX}${String(step).padStart(8, '0')}`;

/** Writes a JSON file and flushes it to disk before returning. */
async function writeJsonSynced(file: string, value: unknown): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** AdamW moments as one F32 tensor map with torch's state names. */
export function optimizerTensors(s: AdamWState): Map<string, HostF32Tensor> {
  const out = new Map<string, HostF32Tensor>();
  for (const [n, t] of s.m) out.set(`exp_avg.${n}`, t);
  for (const [n, t] of s.v) out.set(`exp_avg_sq.${n}`, t);
  return out;
}

/** Inverse of {@link optimizerTensors}. */
function optimizerFromTensors(
  step: number,
  tensors: Map<string, { dtype: string; shape: number[]; data: unknown }>,
): AdamWState {
  const m = new Map<string, HostF32Tensor>();
  const v = new Map<string, HostF32Tensor>();
  for (const [k, t] of tensors) {
    if (t.dtype !== 'float32') throw new Error(`optimizer state '${k}' must be float32, got ${t.dtype}`);
    const host = { dtype: 'float32' as const, shape: t.shape, data: t.data as Float32Array };
    if (k.startsWith('exp_avg_sq.')) v.set(k.slice('exp_avg_sq.'.length), host);
    else if (k.startsWith('exp_avg.')) m.set(k.slice('exp_avg.'.length), host);
    else throw new Error(`unexpected optimizer tensor '${k}' (expected exp_avg.* or exp_avg_sq.*)`);
  }
  return { step, m, v };
}

/**
 * Saves a checkpoint atomically as `runDir/checkpoint-<step>` and prunes old ones to `keepLast`.
 * Returns the checkpoint directory. On failure the temp dir is removed and earlier checkpoints are untouched.
 * @example
 * await saveTrainState(cfg.outDir, { step, dataPosition, rng: { data: rng.getState() },
 *   optimizerState: await opt.exportState(), resolvedConfig: cfg }, { writeWeights: (d) => saveWeights(model, d), keepLast: 3 });
 */
export async function saveTrainState(
  runDir: string,
  state: TrainState,
  opts: SaveOptions = {},
): Promise<string> {
  if (!Number.isInteger(state.step) || state.step < 0) {
    throw new Error(`saveTrainState: step must be an integer >= 0, got ${state.step}`);
  }
  const final = path.join(runDir, checkpointName(state.step));
  const tmp = path.join(runDir, `${TMP_PREFIX}${state.step}-${process.pid}-${Date.now()}`);
  await withWriteContext(final, 'a checkpoint', async () => {
    await mkdir(runDir, { recursive: true });
    await mkdir(tmp);
  });
  try {
    if (opts.writeWeights) await opts.writeWeights(tmp);
    if (state.optimizerState)
      await writeSafetensors(path.join(tmp, OPTIM_FILE), optimizerTensors(state.optimizerState));
    await writeJsonSynced(path.join(tmp, CONFIG_FILE), state.resolvedConfig ?? null);
    // The state file goes last: a directory with train_state.json is complete.
    await writeJsonSynced(path.join(tmp, STATE_FILE), {
      format: FORMAT,
      version: 1,
      step: state.step,
      dataPosition: state.dataPosition,
      rng: state.rng,
      optimizer: state.optimizerState ? { step: state.optimizerState.step, file: OPTIM_FILE } : null,
      extra: state.extra ?? {},
    });
    await replaceDir(tmp, final);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw saveError(e, final, runDir);
  }
  if (opts.keepLast !== undefined) await pruneCheckpoints(runDir, opts.keepLast);
  return final;
}

/** A failed save names the checkpoint and says what is left: the earlier checkpoints, untouched. */
function saveError(e: unknown, final: string, runDir: string): Error {
  const prev = checkpointsIn(runDir);
  const kept = prev.length
    ? `the earlier checkpoints are intact (newest: ${prev[prev.length - 1].dir}); fix the cause and resume with --resume latest`
    : 'no earlier checkpoint exists';
  const err = new Error(`saving ${final} failed: ${(e as Error).message}\n${kept}`);
  err.cause = e;
  return err;
}

/** Renames `src` to `dest`; an existing `dest` (same step saved again) is moved aside first, then deleted. */
async function replaceDir(src: string, dest: string): Promise<void> {
  const exists = await stat(dest).then(
    () => true,
    () => false,
  );
  if (!exists) return rename(src, dest);
  const old = `${path.join(path.dirname(dest), TMP_PREFIX)}old-${path.basename(dest)}-${Date.now()}`;
  await rename(dest, old);
  await rename(src, dest);
  await rm(old, { recursive: true, force: true });
}

/** Completed checkpoints in `runDir`, oldest first, as `{ step, dir }`. Temp dirs are ignored. */
export async function listCheckpoints(runDir: string): Promise<{ step: number; dir: string }[]> {
  return checkpointsIn(runDir);
}

/**
 * The newest complete checkpoint directory in `runDir`, or undefined when there is none.
 * @example const dir = await latestCheckpoint('runs/sft1'); // 'runs/sft1/checkpoint-00000200'
 */
export async function latestCheckpoint(runDir: string): Promise<string | undefined> {
  const all = await listCheckpoints(runDir);
  return all.length ? all[all.length - 1].dir : undefined;
}

/** Deletes all but the newest `keepLast` checkpoints, and temp dirs left by crashed saves. */
export async function pruneCheckpoints(runDir: string, keepLast: number): Promise<void> {
  if (!Number.isInteger(keepLast) || keepLast < 1)
    throw new Error(`keepLast must be an integer >= 1, got ${keepLast}`);
  const all = await listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keepLast)))
    await rm(c.dir, { recursive: true, force: true });
  for (const n of await readdir(runDir)) {
    if (n.startsWith(TMP_PREFIX)) await rm(path.join(runDir, n), { recursive: true, force: true });
  }
}

/** Loaded checkpoint: the saved state plus its directory (weights are loaded from `dir` by the model loader). */
export type LoadedTrainState = TrainState & { dir: string };

/**
 * Reads a checkpoint written by {@link saveTrainState}.
 * @example const s = await loadTrainState(await latestCheckpoint(runDir) ?? fail()); opt.importState(s.optimizerState!);
 */
export async function loadTrainState(dir: string): Promise<LoadedTrainState> {
  const file = path.join(dir, STATE_FILE);
  let raw: any;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(
      `loadTrainState: cannot read ${file} (${(e as Error).message}); is '${dir}' a checkpoint dir?`,
    );
  }
  if (raw?.format !== FORMAT || raw.version !== 1) {
    throw new Error(
      `loadTrainState: ${file} is not an ${FORMAT} v1 file (format ${raw?.format}, version ${raw?.version})`,
    );
  }
  const resolvedConfig = JSON.parse(await readFile(path.join(dir, CONFIG_FILE), 'utf8'));
  const optimizerState = raw.optimizer
    ? optimizerFromTensors(raw.optimizer.step, await readSafetensors(path.join(dir, raw.optimizer.file)))
    : undefined;
  return {
    dir,
    step: raw.step,
    dataPosition: raw.dataPosition,
    rng: raw.rng,
    optimizerState,
    resolvedConfig,
    extra: raw.extra,
  };
}

/**
 * Resolves a `resume` config value: 'latest' -> newest complete checkpoint in `outDir`, else the given dir. 'latest'
 * in a run dir with no complete checkpoint yet (the run stopped before its first save: it holds its log or
 * training_config.json) resolves to undefined: the run starts again from step 0 there. 'latest' where no run ever
 * wrote is an error (most likely a wrong --out-dir).
 * @example const dir = await resolveResume(cfg.resume, cfg.outDir);
 */
export async function resolveResume(resume: string | undefined, outDir: string): Promise<string | undefined> {
  if (resume === undefined) return undefined;
  if (resume === 'latest') {
    const d = await latestCheckpoint(outDir);
    if (d) return d;
    if (RUN_FILES.some((f) => existsSync(path.join(outDir, f)))) return undefined;
    throw new Error(
      `resume 'latest': no run in ${outDir} (no checkpoint, no ${RUN_FILES.join(' or ')}); check --out-dir, or start without --resume`,
    );
  }
  const ok = await stat(path.join(resume, STATE_FILE)).then(
    () => true,
    () => false,
  );
  if (!ok)
    throw new Error(`resume '${resume}': no ${STATE_FILE} there; pass a checkpoint-<step> dir or 'latest'`);
  return resume;
}

/** Files a run writes before its first checkpoint. */
const RUN_FILES = [CONFIG_FILE, 'log.jsonl'];

/**
 * Opens a trainer's run dir (io/run_folder.ts): takes its lock (another live run writing it is refused, naming its
 * pid) and refuses a fresh run (no `resume`) into a dir that already holds files, before anything is written.
 * Release the returned lock when the run ends.
 * @example const lock = openTrainRun(cfg.outDir, cfg.resume, 'ovr-train sft'); try { ... } finally { lock.release(); }
 */
export function openTrainRun(outDir: string, resume: string | undefined, command: string): RunLock {
  return openRunFolder(outDir, {
    command,
    resume: resume !== undefined,
    fix: 'pass --resume latest to continue that run, or choose another --out-dir',
  });
}

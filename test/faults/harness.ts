// Fault-injection harness: runs `ovr-train <command>` as a real child process (node + tsx on src/cli/index.ts, the
// same entry as bin/ovr-train.js), kills it with SIGKILL when a condition holds (a step logged, a checkpoint folder
// appearing, a temp checkpoint being written), and compares run folders byte for byte. No mocks: real processes, real
// files, real signals. Randomness of kill points comes from OVR_FAULT_SEED (printed, so a failure can be replayed).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Project root (no test/helpers import: bench/robustness.ts uses this harness outside vitest). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI entry as an ES module source for `node --import tsx -e`. */
const ENTRY = `import(${JSON.stringify(path.join(ROOT, 'src', 'cli', 'index.ts'))}).then((m) => m.runAndExit(process.argv.slice(1)));`;

/** A running CLI process with its output so far. */
export interface CliRun {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves with the exit code (null when killed by a signal) once the process ends. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
}

/**
 * Starts `ovr-train <args>` in a child process (wasm backend unless args say otherwise).
 * @example const r = startCli(['sft', '--config', cfg]); const { code } = await r.done;
 */
export function startCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', ENTRY, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>(
    (resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out, err })),
  );
  return { child, out: () => out, err: () => err, done };
}

/** Runs the CLI to the end. */
export async function runCliToEnd(args: string[], env: Record<string, string> = {}) {
  return startCli(args, env).done;
}

/** Polls `cond` every 20 ms until it holds (true) or the process exits (false). */
export async function waitFor(run: CliRun, cond: () => boolean, timeoutMs = 600_000): Promise<boolean> {
  const t0 = Date.now();
  let exited = false;
  void run.done.then(() => {
    exited = true;
  });
  while (!cond()) {
    if (exited) return false;
    if (Date.now() - t0 > timeoutMs) throw new Error(`waitFor: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** SIGKILL now and wait for the exit. */
export async function kill9(run: CliRun): Promise<void> {
  run.child.kill('SIGKILL');
  await run.done;
}

/** Step numbers of the lines of `runDir/<file>` (log.jsonl, rollouts.jsonl), in file order; a torn last line is skipped. */
export function loggedSteps(runDir: string, file = 'log.jsonl'): number[] {
  const f = path.join(runDir, file);
  if (!existsSync(f)) return [];
  const out: number[] = [];
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push((JSON.parse(line) as { step: number }).step);
    } catch {
      // a line cut by kill -9 mid-write
    }
  }
  return out;
}

/** Number of complete checkpoint folders in `runDir` (with train_state.json). */
export function completeCheckpoints(runDir: string): string[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((n) => /^checkpoint-\d+$/.test(n) && existsSync(path.join(runDir, n, 'train_state.json')))
    .sort();
}

/** True while a checkpoint is being written (a temp checkpoint folder exists). */
export function checkpointInProgress(runDir: string): boolean {
  return existsSync(runDir) && readdirSync(runDir).some((n) => n.startsWith('.tmp-checkpoint-'));
}

/**
 * Files of two checkpoint folders that differ (weights and optimizer state byte for byte; train_state.json except
 * its wall-clock fields). Empty when the two are bit-identical.
 */
export function checkpointDiff(a: string, b: string): string[] {
  const diff: string[] = [];
  const names = new Set([...readdirSync(a), ...readdirSync(b)]);
  for (const n of names) {
    const fa = path.join(a, n);
    const fb = path.join(b, n);
    if (!existsSync(fa) || !existsSync(fb)) {
      diff.push(`${n}: only in ${existsSync(fa) ? a : b}`);
      continue;
    }
    if (n === 'training_config.json') continue; // holds the resume setting and the out dir
    const A = readFileSync(fa);
    const B = readFileSync(fb);
    if (n === 'train_state.json') {
      const strip = (buf: Buffer) => {
        const j = JSON.parse(buf.toString('utf8'));
        delete j.extra?.elapsedMs;
        delete j.extra?.time;
        return JSON.stringify(j);
      };
      if (strip(A) !== strip(B)) diff.push(`${n}: ${strip(A)} vs ${strip(B)}`);
    } else if (!A.equals(B)) diff.push(`${n}: ${A.length} vs ${B.length} bytes, contents differ`);
  }
  return diff;
}

/** A small seeded generator (mulberry32) for kill points; the seed comes from OVR_FAULT_SEED or the clock. */
export function faultRng(label: string): () => number {
  let s = Number(process.env.OVR_FAULT_SEED ?? Date.now() % 1e9) >>> 0;
  console.log(`${label}: OVR_FAULT_SEED=${s}`);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Whether the slow sweep is on. */
export const SLOW = process.env.OVR_SLOW === '1';

/**
 * Flags of `ovr-train sft` on the tiny model as the fault tests run it: question_solution rows from `train`, batch 2,
 * lr 1e-3, a checkpoint after every step, wasm backend, into `outDir`; `extra` flags are appended.
 * @example startCli(sftArgs({ train, outDir, steps: 4, keepLast: 2, extra: ['--resume', 'latest'] }));
 */
export function sftArgs(o: {
  train: string;
  outDir: string;
  steps: number;
  keepLast: number;
  saveEvery?: number;
  extra?: string[];
}) {
  const flags: Record<string, string> = {
    model: 'tiny',
    'data.train': o.train,
    'data.format': 'question_solution',
    steps: String(o.steps),
    'batch-size': '2',
    lr: '1e-3',
    'save-every': String(o.saveEvery ?? 1),
    'keep-last': String(o.keepLast),
    backend: 'wasm',
    'out-dir': o.outDir,
  };
  return ['sft', ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]), ...(o.extra ?? [])];
}

/** Writes `rows` as JSONL (one object per line) to `file`. */
export function writeJsonl(file: string, rows: unknown[]): void {
  writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}

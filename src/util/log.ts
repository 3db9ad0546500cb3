// JSONL step logger: one JSON object per line in the run dir (STYLE.md "Log JSONL per step").
// Lines are appended synchronously, so a crash loses at most the line being written. Non-finite numbers (a NaN loss
// is exactly what a log must show) are written as the strings "NaN", "Infinity", "-Infinity", which plain JSON lacks.
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { writeError } from '../io/files.js';

/** One log line. `step` is required; the trainers add their own fields. */
export interface StepRecord {
  step: number;
  loss?: number;
  lr?: number;
  gradNorm?: number;
  tokensPerSec?: number;
  numTensors?: number;
  [key: string]: unknown;
}

const encode = (_k: string, v: unknown): unknown =>
  typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;

const NON_FINITE: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
};
const decode = (_k: string, v: unknown): unknown =>
  typeof v === 'string' && v in NON_FINITE ? NON_FINITE[v] : v;

/**
 * Cuts a last line without its newline (a process killed mid-write leaves one), so the next line appended does not
 * glue onto it. Whole lines are never touched.
 */
function dropTornTail(file: string): void {
  // Regular files only: a log may be a device or a pipe (/dev/full, a FIFO), where reading never ends.
  if (!existsSync(file) || !statSync(file).isFile()) return;
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const last = Buffer.alloc(1);
    if (size === 0 || (readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a)) return;
    // scan back from the end, a chunk at a time, for the last newline (the file may be large)
    const chunk = Buffer.alloc(1 << 16);
    let end = size;
    let cut = 0;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = readSync(fd, chunk, 0, end - start, start);
      const at = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (at >= 0) {
        cut = start + at + 1;
        break;
      }
      end = start;
    }
    truncateSync(file, cut);
  } finally {
    closeSync(fd);
  }
}

/**
 * Appends records as JSON lines to `file` (parent dirs are created).
 * @example
 * const log = new JsonlLogger(path.join(cfg.outDir, 'log.jsonl'));
 * log.log({ step, loss, lr, gradNorm, tokensPerSec, numTensors: tf.memory().numTensors });
 * log.close();
 */
export class JsonlLogger {
  private fd: number | undefined;

  constructor(
    readonly file: string,
    private readonly opts: { timestamps?: boolean } = {},
  ) {
    try {
      mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      dropTornTail(file);
      this.fd = openSync(file, 'a');
    } catch (e) {
      throw writeError(e, file, 'the JSONL log');
    }
  }

  /** Writes one line; adds `time` (ms since epoch) unless constructed with `timestamps: false`. */
  log(record: StepRecord): void {
    if (this.fd === undefined) throw new Error(`JsonlLogger: ${this.file} is closed`);
    if (!Number.isInteger(record.step))
      throw new Error(`JsonlLogger: step must be an integer, got ${record.step}`);
    const line = this.opts.timestamps === false ? record : { ...record, time: Date.now() };
    try {
      writeSync(this.fd, `${JSON.stringify(line, encode)}\n`);
    } catch (e) {
      throw writeError(e, this.file, `log line of step ${record.step}`);
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Reads a log written by {@link JsonlLogger}; non-finite markers become numbers again.
 * @example const losses = readStepLog('runs/a/log.jsonl').map((r) => r.loss);
 */
export function readStepLog(file: string): StepRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l, decode) as StepRecord;
      } catch (e) {
        throw new Error(`${file}:${i + 1}: not a JSON log line (${(e as Error).message})`);
      }
    });
}

/** The `step` of a JSONL line, or undefined (no numeric step, or not JSON). */
function lineStep(l: string): number | undefined {
  try {
    const at = (JSON.parse(l) as { step?: unknown }).step;
    return typeof at === 'number' ? at : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Drops every line of a JSONL log whose `step` is after `step` (a resume re-runs those steps, so each step appears
 * once). Lines without a numeric step are kept; a missing file is left missing. The file keeps its inode (an open
 * {@link JsonlLogger} appending to it stays valid): a dropped tail is cut with truncate, anything else rewritten.
 * Returns the number of lines dropped.
 * @example truncateStepLog('runs/a/log.jsonl', 3); // keeps steps 1..3
 */
export function truncateStepLog(file: string, step: number): number {
  if (!existsSync(file)) return 0;
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const drop = lines.map((l) => {
    const at = lineStep(l);
    return at !== undefined && at > step;
  });
  const dropped = drop.filter(Boolean).length;
  if (dropped === 0) return 0;
  const first = drop.indexOf(true);
  const kept = lines.filter((_, i) => !drop[i]);
  if (drop.slice(first).every(Boolean)) {
    truncateSync(file, Buffer.byteLength(kept.map((l) => `${l}\n`).join('')));
  } else writeFileSync(file, kept.map((l) => `${l}\n`).join(''));
  return dropped;
}

// Run-folder lock: one writer per run folder. A lock file `<dir>/.ovr-run.lock` holds the owner's pid, host, start
// time and command; it is created with O_EXCL (atomic: of two racing runs exactly one wins) and removed on release or
// process exit. A lock left by a killed run (kill -9, power loss) is stale when its process is gone, which is checked
// on the same host by pid + the process start time in /proc (so a recycled pid does not keep a dead run's lock).
// Follows the classic pidfile protocol (e.g. PostgreSQL's postmaster.pid, git's index.lock) with stale detection.
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { writeError } from './files.js';

/** Name of the lock file inside a run folder. */
export const LOCK_FILE = '.ovr-run.lock';

/** What a lock file records about its owner. */
export interface LockInfo {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** What holds the lock, e.g. 'ovr-train sft'. */
  command: string;
  /** Linux boot id + process start ticks, to tell a live owner from a recycled pid (absent off Linux). */
  procStart?: string;
}

/** A held lock; `release()` removes the file (idempotent; also done at process exit). */
export interface RunLock {
  readonly dir: string;
  readonly file: string;
  readonly info: LockInfo;
  release(): void;
}

/** Boot id + start time (clock ticks since boot) of `pid` from /proc, or undefined where /proc is not available. */
function procStart(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) counted after the ')' that closes the command name (which may contain spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${boot}:${fields[19]}`;
  } catch {
    return undefined;
  }
}

/** True when the process that wrote `info` still runs (same host only; another host's lock is assumed alive). */
export function lockOwnerAlive(info: LockInfo): boolean {
  if (info.host !== hostname()) return true;
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // The pid exists (or we may not signal it): it is the owner unless its start time says it is a recycled pid.
  if (info.procStart === undefined) return true;
  const now = procStart(info.pid);
  return now === undefined || now === info.procStart;
}

function readLock(file: string): LockInfo | undefined {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    return typeof j.pid === 'number' && typeof j.host === 'string' ? j : undefined;
  } catch {
    return undefined;
  }
}

function refusal(dir: string, file: string, o: LockInfo): Error {
  const where = o.host === hostname() ? `pid ${o.pid}` : `pid ${o.pid} on host ${o.host}`;
  return new Error(
    `run folder ${dir} is in use by ${where} (${o.command}, started ${o.startedAt}). ` +
      'Wait for that run to finish or stop it, or write to another folder. ' +
      `If no such run exists any more, delete ${file}.`,
  );
}

/**
 * Moves a stale lock out of the way. Two runs may both see the same stale lock: the rename lets only one take it,
 * and a lock that turns out to be fresh (another run replaced the stale one meanwhile) is put back with link(),
 * which never overwrites.
 */
function clearStale(file: string, stale: LockInfo): void {
  const aside = `${file}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // someone else moved it first
  }
  const moved = readLock(aside);
  if (moved && (moved.pid !== stale.pid || moved.startedAt !== stale.startedAt)) {
    try {
      linkSync(aside, file);
    } catch {
      // a third run already holds the lock; the fresh one we moved is lost only as a file, its owner keeps running
    }
  }
  unlinkSync(aside);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const held = new Map<string, RunLock>();
let exitHook = false;

function releaseAllAtExit(): void {
  for (const l of [...held.values()]) l.release();
}

/**
 * Takes the lock of run folder `dir` (created if missing) for this process, or throws naming the holder's pid, the
 * folder and what to do. A stale lock (its process is gone) is taken over. Released by `release()` or at exit.
 * @example
 * const lock = acquireRunLock('runs/sft1', 'ovr-train sft');
 * try { await train(); } finally { lock.release(); }
 */
export function acquireRunLock(dir: string, command: string): RunLock {
  const abs = path.resolve(dir);
  const mine = held.get(abs);
  if (mine) throw new Error(`run folder ${dir} is already locked by this process (${mine.info.command})`);
  try {
    mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw writeError(e, abs, 'the run folder');
  }
  const file = path.join(abs, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command,
    procStart: procStart(process.pid),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw writeError(e, file, 'the run lock');
      }
      const other = readLock(file);
      // An unreadable lock is one being written right now (or garbage): treat it as held unless it stays unreadable.
      if (other && lockOwnerAlive(other)) throw refusal(dir, file, other);
      if (other) clearStale(file, other);
      else if (attempt === 2) {
        throw new Error(
          `run folder ${dir} has an unreadable lock file ${file}; delete it if no run is using the folder`,
        );
      } else sleepSync(50); // its writer may be between create and write
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(info)}\n`);
    } finally {
      closeSync(fd);
    }
    return register(abs, file, info);
  }
  const other = readLock(file);
  throw other ? refusal(dir, file, other) : new Error(`cannot take the run lock ${file}`);
}

function register(dir: string, file: string, info: LockInfo): RunLock {
  let done = false;
  const lock: RunLock = {
    dir,
    file,
    info,
    release() {
      if (done) return;
      done = true;
      held.delete(dir);
      const cur = readLock(file);
      // Remove only our own lock (never one a later run took after ours was judged stale).
      if (cur && cur.pid === info.pid && cur.startedAt === info.startedAt) {
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      }
    },
  };
  held.set(dir, lock);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', releaseAllAtExit);
  }
  return lock;
}

/** The lock currently on `dir`, if any (for messages and tests). */
export function readRunLock(dir: string): LockInfo | undefined {
  return readLock(path.join(dir, LOCK_FILE));
}

// Run-folder lock: atomic create, refusal naming the holder, stale takeover (kill -9), release at exit, and a race of
// several processes where exactly one wins. Real child processes (node + tsx), no mocks.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireRunLock, LOCK_FILE, readRunLock } from '../../src/io/run_lock.js';
import { ROOT } from '../helpers.js';

const MODULE = path.join(ROOT, 'src', 'io', 'run_lock.ts');

/** A node process that takes the lock of `dir`, prints 'locked' (or the error) and then runs `then`. */
function child(dir: string, then: 'hold' | 'exit') {
  const code =
    `import(${JSON.stringify(MODULE)}).then((m) => { try { m.acquireRunLock(${JSON.stringify(dir)}, 'child'); ` +
    `console.log('locked'); } catch (e) { console.log('refused: ' + e.message); } ` +
    `${then === 'hold' ? 'setInterval(() => {}, 1000);' : ''} });`;
  const p = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: ROOT });
  let out = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  const line = new Promise<string>((resolve) => {
    p.stdout.on('data', () => out.includes('\n') && resolve(out.trim()));
    p.on('exit', () => resolve(out.trim()));
  });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
  return { p, line, exited };
}

const tmp = () => mkdtempSync(path.join(tmpdir(), 'ovr-lock-'));

describe('run-folder lock', () => {
  it('is taken, refuses a second taker in the same process, and is released', () => {
    const dir = tmp();
    const lock = acquireRunLock(dir, 'ovr-train sft');
    expect(readRunLock(dir)).toMatchObject({ pid: process.pid, command: 'ovr-train sft' });
    expect(() => acquireRunLock(dir, 'ovr-train grpo')).toThrow(/already locked by this process/);
    lock.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    acquireRunLock(dir, 'again').release();
  });

  it('refuses while another live process holds it, naming its pid and the folder', async () => {
    const dir = tmp();
    const c = child(dir, 'hold');
    try {
      expect(await c.line).toBe('locked');
      expect(() => acquireRunLock(dir, 'me')).toThrow(
        new RegExp(`run folder ${dir} is in use by pid ${c.p.pid} \\(child, started .*delete .*${LOCK_FILE}`),
      );
    } finally {
      c.p.kill('SIGKILL');
      await c.exited;
    }
  }, 30_000);

  it('takes over the stale lock of a process killed with SIGKILL', async () => {
    const dir = tmp();
    const c = child(dir, 'hold');
    expect(await c.line).toBe('locked');
    c.p.kill('SIGKILL');
    await c.exited;
    expect(readRunLock(dir)?.pid).toBe(c.p.pid); // left behind by kill -9
    const lock = acquireRunLock(dir, 'me');
    expect(readRunLock(dir)?.pid).toBe(process.pid);
    lock.release();
  }, 30_000);

  it('treats a lock whose pid was recycled by another process as stale', () => {
    const dir = tmp();
    // pid 1 is alive but its start time differs from the recorded one.
    const fake = { pid: 1, host: hostname(), startedAt: 'x', command: 'old', procStart: 'nope:1' };
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(fake));
    const lock = acquireRunLock(dir, 'me');
    expect(readRunLock(dir)?.pid).toBe(process.pid);
    lock.release();
  });

  it('is released when the holder exits normally', async () => {
    const dir = tmp();
    const c = child(dir, 'exit');
    expect(await c.line).toBe('locked');
    await c.exited;
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  }, 30_000);

  it('lets exactly one of 4 racing processes win', async () => {
    const dir = tmp();
    const cs = Array.from({ length: 4 }, () => child(dir, 'hold'));
    try {
      const lines = await Promise.all(cs.map((c) => c.line));
      expect(lines.filter((l) => l === 'locked')).toHaveLength(1);
      const winner = cs[lines.indexOf('locked')].p.pid;
      for (const l of lines.filter((x) => x !== 'locked')) expect(l).toContain(`in use by pid ${winner}`);
    } finally {
      for (const c of cs) c.p.kill('SIGKILL');
      await Promise.all(cs.map((c) => c.exited));
    }
  }, 60_000);
});

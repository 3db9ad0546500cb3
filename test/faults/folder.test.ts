// Fault injection on run folders, through real `ovr-train sft` processes on the tiny model: two runs into one folder
// (the second is refused naming the first's pid, the first finishes intact), a fresh run into an old run folder
// (refused before writing anything), a damaged latest checkpoint (the error names the previous checkpoint, and
// resuming from it ends bit-identical), and a disk that fills up during a checkpoint save (root only: a real tmpfs;
// the error names the path, the earlier checkpoint stays complete, and after freeing space the run resumes to the
// bit-identical end).
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointDiff,
  checkpointInProgress,
  completeCheckpoints,
  loggedSteps,
  runCliToEnd,
  sftArgs,
  startCli,
  waitFor,
  writeJsonl,
} from './harness.js';

const STEPS = 3;
const tmp = mkdtempSync(path.join(tmpdir(), 'ovr-faults-dir-'));
const train = path.join(tmp, 'train.jsonl');
const ck = (dir: string, step: number) => path.join(dir, `checkpoint-${String(step).padStart(8, '0')}`);

const args = (outDir: string, extra: string[] = []) =>
  sftArgs({ train, outDir, steps: STEPS, keepLast: 3, extra });

/** Every file under `dir` with its size and mtime, to prove a refused run wrote nothing. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.push(`${path.relative(dir, p)} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out;
}

let reference: string;
beforeAll(async () => {
  const rows = Array.from({ length: 6 }, (_, i) => ({
    question: `What is ${i} times 2?`,
    solution: `${i} times 2 is \\boxed{${2 * i}}.`,
    answer: String(2 * i),
  }));
  writeJsonl(train, rows);
  reference = path.join(tmp, 'reference');
  const r = await runCliToEnd(args(reference));
  expect(r.code, r.err).toBe(0);
}, 300_000);

describe('run folders under faults', () => {
  it('a second run into a folder in use is refused naming the pid; the first finishes intact', async () => {
    const dir = path.join(tmp, 'shared');
    const first = startCli(args(dir));
    expect(await waitFor(first, () => existsSync(path.join(dir, '.ovr-run.lock')))).toBe(true);
    const second = await runCliToEnd(args(dir));
    expect(second.code).not.toBe(0);
    expect(second.err).toContain(`run folder ${dir} is in use by pid ${first.child.pid}`);
    const r = await first.done;
    expect(r.code, r.err).toBe(0);
    expect(checkpointDiff(ck(reference, STEPS), ck(dir, STEPS))).toEqual([]);
    expect(loggedSteps(dir)).toEqual([1, 2, 3]);
    expect(existsSync(path.join(dir, '.ovr-run.lock'))).toBe(false);
  }, 600_000);

  it('a fresh run into an old run folder is refused before writing anything', async () => {
    const dir = path.join(tmp, 'old');
    cpSync(reference, dir, { recursive: true });
    const before = snapshot(dir);
    const r = await runCliToEnd(args(dir));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(new RegExp(`${dir} already holds a run`));
    expect(r.err).toContain('--resume latest');
    expect(snapshot(dir)).toEqual(before);
  }, 300_000);

  it('a damaged latest checkpoint names the previous one; resuming from it ends bit-identical', async () => {
    const dir = path.join(tmp, 'damaged');
    cpSync(reference, dir, { recursive: true });
    const model = path.join(ck(dir, 3), 'model.safetensors');
    truncateSync(model, Math.floor(statSync(model).size / 2));
    const r = await runCliToEnd(args(dir, ['--resume', 'latest']));
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(`checkpoint ${ck(dir, 3)} is damaged`);
    expect(r.err).toContain(`--resume ${ck(dir, 2)}`);
    const again = await runCliToEnd(args(dir, ['--resume', ck(dir, 2)]));
    expect(again.code, again.err).toBe(0);
    expect(checkpointDiff(ck(reference, 3), ck(dir, 3))).toEqual([]);
    expect(loggedSteps(dir)).toEqual([1, 2, 3]);
  }, 300_000);

  const root = process.getuid?.() === 0;
  describe.skipIf(!root)('disk full (tmpfs, root only)', () => {
    let mnt = '';
    afterAll(() => {
      if (mnt) execFileSync('umount', [mnt]);
    });
    it('the save names the path, the earlier checkpoint is intact, resume after freeing space is exact', async () => {
      const one = readdirSync(ck(reference, 1)).reduce(
        (s, n) => s + statSync(path.join(ck(reference, 1), n)).size,
        0,
      );
      mnt = path.join(tmp, 'mnt');
      mkdirSync(mnt);
      // Room for one checkpoint and a half: the second save runs out of space.
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.floor(one * 1.5)}`, 'tmpfs', mnt]);
      const dir = path.join(mnt, 'run');
      const r = await runCliToEnd(args(dir));
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/cannot write .* the disk is full \(ENOSPC\)/);
      expect(r.err).toContain(dir);
      expect(completeCheckpoints(dir)).toEqual(['checkpoint-00000001']);
      expect(checkpointInProgress(dir)).toBe(false);
      expect(checkpointDiff(ck(reference, 1), ck(dir, 1))).toEqual([]);
      execFileSync('mount', ['-o', `remount,size=${one * 5}`, mnt]);
      const resumed = await runCliToEnd(args(dir, ['--resume', 'latest']));
      expect(resumed.code, resumed.err).toBe(0);
      expect(checkpointDiff(ck(reference, 3), ck(dir, 3))).toEqual([]);
      expect(loggedSteps(dir)).toEqual([1, 2, 3]);
      expect(JSON.parse(readFileSync(path.join(dir, 'training_config.json'), 'utf8')).steps).toBe(STEPS);
    }, 600_000);
  });
});

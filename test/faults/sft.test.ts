// Fault injection, SFT: `ovr-train sft` on the tiny model is killed with SIGKILL at a random point (after a logged
// step, or while a checkpoint is being written), resumed with `--resume latest` until it finishes, and must end
// bit-identical to an uninterrupted run (weights, AdamW moments, train state) with each step logged once.
// Default: one kill. OVR_SLOW=1: a sweep of random kill points, several kills per run.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointDiff,
  checkpointInProgress,
  completeCheckpoints,
  faultRng,
  kill9,
  loggedSteps,
  runCliToEnd,
  SLOW,
  sftArgs,
  startCli,
  waitFor,
  writeJsonl,
} from './harness.js';

const STEPS = 4;
const tmp = mkdtempSync(path.join(tmpdir(), 'ovr-faults-sft-'));
const train = path.join(tmp, 'train.jsonl');

/** The run's flags; every run of this file uses the same settings, only --out-dir (and --resume) differ. */
const args = (outDir: string, resume = false) =>
  sftArgs({
    train,
    outDir,
    steps: STEPS,
    keepLast: 2,
    extra: ['--data.prompt-template', 'qwen', ...(resume ? ['--resume', 'latest'] : [])],
  });
const last = (dir: string) => path.join(dir, `checkpoint-${String(STEPS).padStart(8, '0')}`);

let reference: string;
beforeAll(async () => {
  const rows = Array.from({ length: 8 }, (_, i) => ({
    question: `What is ${i} + ${i + 1}?`,
    solution: `${i} + ${i + 1} = ${2 * i + 1}, so \\boxed{${2 * i + 1}}.`,
    answer: String(2 * i + 1),
  }));
  writeJsonl(train, rows);
  reference = path.join(tmp, 'reference');
  const r = await runCliToEnd(args(reference));
  expect(r.code, r.err).toBe(0);
}, 300_000);

/**
 * Runs into `dir`, killing the process `kills` times at random points (after a random logged step, or while a
 * checkpoint is being written), resuming after each kill; returns what each kill interrupted.
 */
async function runWithKills(dir: string, kills: number, rnd: () => number): Promise<string[]> {
  const what: string[] = [];
  for (let k = 0; k <= kills; k++) {
    // after a kill, always --resume latest: before the first checkpoint that restarts the run from step 0
    const run = startCli(args(dir, k > 0));
    if (k === kills) {
      const r = await run.done;
      expect(r.code, `final run failed:\n${r.err}`).toBe(0);
      break;
    }
    const done = loggedSteps(dir).length;
    const midSave = rnd() < 0.5;
    const after = done + 1 + Math.floor(rnd() * Math.max(1, STEPS - 1 - done));
    const hit = await waitFor(run, () =>
      midSave
        ? checkpointInProgress(dir) && loggedSteps(dir).length >= after - 1
        : loggedSteps(dir).length >= after,
    );
    if (!hit) {
      what.push('finished before the kill point');
      const r = await run.done;
      expect(r.code, `run ${k} exited before the kill point:\n${r.err}`).toBe(0);
      return what;
    }
    await kill9(run);
    what.push(
      midSave ? `mid-checkpoint after ${loggedSteps(dir).length} logged step(s)` : `after step ${after}`,
    );
  }
  return what;
}

describe('SFT: kill -9 and resume', () => {
  it('one kill at a random point: the resumed run ends bit-identical, each step logged once', async () => {
    const rnd = faultRng('sft kill');
    const dir = path.join(tmp, 'one');
    const what = await runWithKills(dir, 1, rnd);
    console.log(`sft kill: ${what.join('; ')}`);
    expect(checkpointDiff(last(reference), last(dir))).toEqual([]);
    expect(loggedSteps(dir)).toEqual(loggedSteps(reference));
  }, 600_000);

  it('SIGINT mid-run (wasm, synchronous kernels): the step ends, a checkpoint is saved, exit 130; resume finishes', async () => {
    const dir = path.join(tmp, 'sigint');
    const long = (resume: boolean) =>
      sftArgs({
        train,
        outDir: dir,
        steps: 40,
        keepLast: 1,
        saveEvery: 0,
        extra: resume ? ['--resume', 'latest'] : [],
      });
    const run = startCli(long(false));
    expect(await waitFor(run, () => loggedSteps(dir).length >= 1)).toBe(true);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.err).toBe(130);
    expect(r.err).toContain('SIGINT received: stopping after the current step and saving a checkpoint');
    const saved = completeCheckpoints(dir);
    console.log(`SIGINT after ${loggedSteps(dir).length} logged step(s): saved ${saved.join(', ')}`);
    expect(saved).toHaveLength(1);
    const at = Number(saved[0].slice('checkpoint-'.length));
    // stopped within a step or two of the signal, not at the end of the run (the bug: signals waited for the loop)
    expect(at).toBeLessThan(10);
    expect(loggedSteps(dir)).toEqual(Array.from({ length: at }, (_, i) => i + 1));
    const rest = await runCliToEnd(long(true));
    expect(rest.code, rest.err).toBe(0);
    expect(loggedSteps(dir)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  }, 300_000);

  it.skipIf(!SLOW)(
    'sweep (OVR_SLOW=1): 4 runs, up to 3 kills each',
    async () => {
      const rnd = faultRng('sft sweep');
      for (let i = 0; i < 4; i++) {
        const dir = path.join(tmp, `sweep-${i}`);
        const what = await runWithKills(dir, 1 + Math.floor(rnd() * 3), rnd);
        console.log(`sft sweep ${i}: ${what.join('; ')}`);
        expect(checkpointDiff(last(reference), last(dir)), what.join('; ')).toEqual([]);
        expect(loggedSteps(dir), what.join('; ')).toEqual(loggedSteps(reference));
      }
    },
    3_600_000,
  );
});

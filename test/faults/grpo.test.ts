// Fault injection, GRPO with rewards that vary within groups (non-zero advantages, so every step changes the weights):
// the tiny model is first taught by a short SFT run to answer "Pick 1 or 2." with \boxed{1} or \boxed{2} about half
// the time each, then `ovr-train grpo` (gold answer 2) is killed with SIGKILL at random points and resumed with
// `--resume latest`; it must end bit-identical to an uninterrupted run, with each step once in log.jsonl and each
// step's rollouts once in rollouts.jsonl. OVR_SLOW=1 only: the warm start alone is ~1 minute on 2 cores.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readStepLog } from '../../src/util/log.js';
import {
  checkpointDiff,
  faultRng,
  kill9,
  loggedSteps,
  runCliToEnd,
  SLOW,
  startCli,
  waitFor,
} from './harness.js';

const STEPS = 4;
const tmp = mkdtempSync(path.join(tmpdir(), 'ovr-faults-grpo-'));
const sftData = path.join(tmp, 'sft.jsonl');
const prompts = path.join(tmp, 'prompts.jsonl');
const warm = path.join(tmp, 'warm');
const warmCheckpoint = path.join(warm, 'checkpoint-00000040');

const grpoArgs = (outDir: string, resume = false) => [
  'grpo',
  '--model',
  warmCheckpoint,
  '--data.train',
  prompts,
  '--data.prompt-template',
  'qwen',
  '--reward.format',
  'any',
  '--reward.workers',
  '0',
  '--num-generations',
  '4',
  '--prompts-per-step',
  '2',
  '--max-response-len',
  '8',
  '--steps',
  String(STEPS),
  '--lr',
  '1e-4',
  '--save-every',
  '1',
  '--keep-last',
  '2',
  '--backend',
  'wasm',
  '--out-dir',
  outDir,
  ...(resume ? ['--resume', 'latest'] : []),
];
const last = (dir: string) => path.join(dir, `checkpoint-${String(STEPS).padStart(8, '0')}`);

let reference: string;
describe.skipIf(!SLOW)('GRPO: kill -9 and resume (OVR_SLOW=1)', () => {
  beforeAll(async () => {
    const rows = ['1', '2', '1', '2', '1', '2', '1', '2'].map((a) => ({
      question: 'Pick 1 or 2.',
      solution: `\\boxed{${a}}`,
      answer: a,
    }));
    writeFileSync(sftData, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const ps = Array.from({ length: 4 }, (_, i) => ({ id: `p${i}`, question: 'Pick 1 or 2.', answer: '2' }));
    writeFileSync(prompts, `${ps.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const sft = await runCliToEnd([
      'sft',
      '--model',
      'tiny',
      '--data.train',
      sftData,
      '--data.format',
      'question_solution',
      '--data.prompt-template',
      'qwen',
      '--steps',
      '40',
      '--batch-size',
      '4',
      '--lr',
      '2e-2',
      '--warmup-steps',
      '0',
      '--min-lr-ratio',
      '1',
      '--save-every',
      '40',
      '--backend',
      'wasm',
      '--out-dir',
      warm,
    ]);
    expect(sft.code, sft.err).toBe(0);
    reference = path.join(tmp, 'reference');
    const r = await runCliToEnd(grpoArgs(reference));
    expect(r.code, r.err).toBe(0);
  }, 900_000);

  it('the reference run has non-zero advantages at every step', () => {
    const log = readStepLog(path.join(reference, 'log.jsonl'));
    console.log(
      `grpo reference: rewardStd per step ${log.map((l) => Number(l.rewardStd).toFixed(3)).join(' ')}`,
    );
    for (const l of log) {
      expect(l.rewardStd, `step ${l.step}`).toBeGreaterThan(0);
      expect(l.gradNorm, `step ${l.step}`).toBeGreaterThan(0);
    }
  });

  it('two kills at random steps: bit-identical end, logs and rollouts once per step', async () => {
    const rnd = faultRng('grpo kill');
    const dir = path.join(tmp, 'killed');
    const what: string[] = [];
    for (let k = 0; k < 3; k++) {
      const run = startCli(grpoArgs(dir, k > 0)); // after a kill, always --resume latest
      if (k === 2) {
        const r = await run.done;
        expect(r.code, r.err).toBe(0);
        break;
      }
      const after = loggedSteps(dir).length + 1 + Math.floor(rnd() * 1.5);
      if (!(await waitFor(run, () => loggedSteps(dir).length >= after))) break;
      // half the time at once, half the time a little later (inside the next step's rollout or save)
      if (rnd() < 0.5) await new Promise((r) => setTimeout(r, 200 + rnd() * 1500));
      await kill9(run);
      what.push(`killed with ${loggedSteps(dir).length} step(s) logged`);
    }
    console.log(`grpo kill: ${what.join('; ')}`);
    expect(checkpointDiff(last(reference), last(dir))).toEqual([]);
    expect(loggedSteps(dir)).toEqual(loggedSteps(reference));
    expect(loggedSteps(dir, 'rollouts.jsonl')).toEqual(loggedSteps(reference, 'rollouts.jsonl'));
  }, 900_000);
});

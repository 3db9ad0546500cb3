import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { AdamWState } from '../../src/train/optim.js';
import {
  checkpointName,
  latestCheckpoint,
  listCheckpoints,
  loadTrainState,
  resolveResume,
  saveTrainState,
  type TrainState,
  writeRunConfig,
} from '../../src/train/state.js';
import { Rng, type RngState } from '../../src/util/rng.js';

const made: string[] = [];
async function runDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'ovr-state-'));
  made.push(d);
  return d;
}
afterAll(async () => {
  for (const d of made) await rm(d, { recursive: true, force: true });
});

function optState(step: number): AdamWState {
  const f = (xs: number[]) => new Float32Array(xs);
  return {
    step,
    m: new Map([
      ['model.norm.weight', { dtype: 'float32', shape: [3], data: f([0.1, -0.2, 1e-30]) }],
      ['lm_head.weight', { dtype: 'float32', shape: [2, 2], data: f([1, 2, 3, 4]) }],
    ]),
    v: new Map([
      ['model.norm.weight', { dtype: 'float32', shape: [3], data: f([1e-8, 4, 0]) }],
      ['lm_head.weight', { dtype: 'float32', shape: [2, 2], data: f([5, 6, 7, 8.5]) }],
    ]),
  };
}

function state(step: number): TrainState {
  const rng = new Rng(7).split('data');
  for (let i = 0; i < step; i++) rng.uniform();
  return {
    step,
    dataPosition: { epoch: 1, index: step * 2 },
    rng: { data: rng.getState() },
    optimizerState: optState(step),
    resolvedConfig: { lr: 1e-5, data: { train: 'x.jsonl' } },
    extra: { nonFiniteTotal: 1 },
  };
}

/** A real weights writer for the tests: one small file, standing in for saveWeights' output format-agnostically. */
const weights = (tag: string) => async (d: string) => writeFile(path.join(d, 'weights.txt'), tag);

describe('saveTrainState / loadTrainState', () => {
  it('round-trips every field bit-exactly, with optimizer moments in F32 safetensors under torch names', async () => {
    const dir = await runDir();
    const s = state(10);
    const ck = await saveTrainState(dir, s, { writeWeights: weights('w10') });
    expect(path.basename(ck)).toBe('checkpoint-00000010');
    expect((await readdir(ck)).sort()).toEqual([
      'optimizer.safetensors',
      'train_state.json',
      'training_config.json',
      'weights.txt',
    ]);
    const back = await loadTrainState(ck);
    expect(back.step).toBe(10);
    expect(back.dataPosition).toEqual(s.dataPosition);
    expect(back.rng).toEqual(s.rng);
    expect(back.resolvedConfig).toEqual(s.resolvedConfig);
    expect(back.extra).toEqual(s.extra);
    expect(back.optimizerState!.step).toBe(10);
    for (const k of ['m', 'v'] as const) {
      for (const [n, t] of s.optimizerState![k]) {
        const got = back.optimizerState![k].get(n)!;
        expect(got.shape).toEqual(t.shape);
        expect(Array.from(got.data)).toEqual(Array.from(t.data));
      }
    }
    const raw = await readSafetensors(path.join(ck, 'optimizer.safetensors'));
    expect([...raw.keys()].sort()).toEqual([
      'exp_avg.lm_head.weight',
      'exp_avg.model.norm.weight',
      'exp_avg_sq.lm_head.weight',
      'exp_avg_sq.model.norm.weight',
    ]);
    // the restored rng continues the same stream
    const a = new Rng((s.rng as Record<string, RngState>).data);
    const b = new Rng((back.rng as Record<string, RngState>).data);
    expect(a.uniform()).toBe(b.uniform());
  });

  it('saves without optimizer state (weights-only checkpoint)', async () => {
    const dir = await runDir();
    const s = { ...state(3), optimizerState: undefined };
    const back = await loadTrainState(await saveTrainState(dir, s));
    expect(back.optimizerState).toBeUndefined();
  });

  it('a crash mid-write leaves the previous checkpoint intact and latest', async () => {
    const dir = await runDir();
    await saveTrainState(dir, state(5), { writeWeights: weights('w5') });
    const crash = async (d: string) => {
      await writeFile(path.join(d, 'weights.txt'), 'partial');
      throw new Error('disk full');
    };
    await expect(saveTrainState(dir, state(6), { writeWeights: crash })).rejects.toThrow('disk full');
    expect(await readdir(dir)).toEqual(['checkpoint-00000005']);
    const latest = await latestCheckpoint(dir);
    expect(latest).toBe(path.join(dir, 'checkpoint-00000005'));
    expect(await readFile(path.join(latest!, 'weights.txt'), 'utf8')).toBe('w5');
    expect((await loadTrainState(latest!)).step).toBe(5);
  });

  it('ignores temp dirs and incomplete checkpoint dirs left by a killed process', async () => {
    const dir = await runDir();
    await saveTrainState(dir, state(5));
    await mkdir(path.join(dir, '.tmp-checkpoint-9-123-456'));
    await writeFile(path.join(dir, '.tmp-checkpoint-9-123-456', 'weights.txt'), 'partial');
    await mkdir(path.join(dir, checkpointName(8))); // no train_state.json: incomplete
    expect(await latestCheckpoint(dir)).toBe(path.join(dir, 'checkpoint-00000005'));
    // the next successful save with pruning removes the stale temp dir
    await saveTrainState(dir, state(10), { keepLast: 5 });
    expect((await readdir(dir)).filter((n) => n.startsWith('.tmp'))).toEqual([]);
  });

  it('keepLast prunes the oldest checkpoints, ordering by step number', async () => {
    const dir = await runDir();
    for (const step of [2, 4, 10, 100]) await saveTrainState(dir, state(step), { keepLast: 2 });
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([10, 100]);
    expect(await latestCheckpoint(dir)).toBe(path.join(dir, 'checkpoint-00000100'));
  });

  it('re-saving the same step replaces the checkpoint', async () => {
    const dir = await runDir();
    await saveTrainState(dir, state(4), { writeWeights: weights('first') });
    const ck = await saveTrainState(dir, state(4), { writeWeights: weights('second') });
    expect(await readFile(path.join(ck, 'weights.txt'), 'utf8')).toBe('second');
    expect(await readdir(dir)).toEqual(['checkpoint-00000004']);
  });

  it('writeRunConfig writes the resolved config as JSON in the run dir, which is not mistaken for a checkpoint', async () => {
    const dir = await runDir();
    const file = await writeRunConfig(path.join(dir, 'new'), { lr: 1e-5, betas: [0.9, 0.95] });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ lr: 1e-5, betas: [0.9, 0.95] });
    expect(await latestCheckpoint(path.join(dir, 'new'))).toBeUndefined();
  });

  it('latestCheckpoint of an empty or missing dir is undefined', async () => {
    expect(await latestCheckpoint(await runDir())).toBeUndefined();
    expect(await latestCheckpoint('/nonexistent/ovr-run')).toBeUndefined();
  });

  it('errors name the culprit', async () => {
    const dir = await runDir();
    await expect(loadTrainState(dir)).rejects.toThrow(/train_state.json.*is .* a checkpoint dir/);
    await expect(saveTrainState(dir, { ...state(1), step: -1 })).rejects.toThrow(
      /step must be an integer >= 0/,
    );
    await expect(resolveResume('latest', dir)).rejects.toThrow(
      /resume 'latest': no run in .* \(no checkpoint, no training_config.json or log.jsonl\); check --out-dir/,
    );
    await expect(resolveResume(dir, dir)).rejects.toThrow(/pass a checkpoint-<step> dir or 'latest'/);
    expect(await resolveResume(undefined, dir)).toBeUndefined();
    // a run stopped before its first checkpoint (its log exists): 'latest' means start again from step 0
    await writeFile(path.join(dir, 'log.jsonl'), '{"step":1}\n');
    expect(await resolveResume('latest', dir)).toBeUndefined();
    const ck = await saveTrainState(dir, state(2));
    expect(await resolveResume('latest', dir)).toBe(ck);
    expect(await resolveResume(ck, dir)).toBe(ck);
  });
});

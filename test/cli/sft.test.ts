// `ovr-train sft` on the real tiny config (full 151936-row vocabulary) with the real Qwen tokenizer and chat template:
// --help lists every SftConfig field, bad flags exit 2 naming the flag, an in-process run on a JSON config (flags
// overriding the file) writes the run dir, JSONL log and checkpoint, and one real subprocess run via tsx does the same
// through src/cli/index.ts main(). Both use the wasm backend: a full-vocabulary step is ~4x faster there than on cpu
// (the cpu-backend evidence is test/train/*.test.ts).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/cli/args.js';
import { sftCommand } from '../../src/cli/sft.js';
import { SftConfig } from '../../src/train/config.js';
import { readStepLog } from '../../src/util/log.js';
import { ROOT } from '../helpers.js';
import { capture, runCli } from './run.js';

let tmp: string;
let runJson: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-cli-sft-'));
  const train = path.join(tmp, 'train.jsonl');
  const rows = [
    {
      messages: [
        { role: 'user', content: '1+1?' },
        { role: 'assistant', content: '2' },
      ],
    },
    { question: 'What is 2+3?', solution: '2+3=5', answer: '5' },
  ];
  await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  runJson = path.join(tmp, 'run.json');
  await writeFile(
    runJson,
    JSON.stringify({
      model: 'tiny',
      steps: 5,
      batchSize: 1,
      gradAccumSteps: 2,
      lr: 1e-3,
      backend: 'cpu',
      data: { train, promptTemplate: 'plain' },
    }),
  );
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('ovr-train sft', () => {
  it('--help lists every field with its description', async () => {
    const r = await capture(() => sftCommand(['--help']));
    expect(r.code).toBe(0);
    for (const flag of [
      '--model',
      '--data.train',
      '--grad-accum-steps',
      '--max-seq-len',
      '--trainable',
      '--resume',
    ]) {
      expect(r.out).toContain(flag);
    }
    expect(r.out).toContain('Micro-batches accumulated per optimizer step');
  });

  it('models/tiny-sft.json (the example run config) parses with SftConfig', () => {
    const r = parseArgs(SftConfig, ['--config', path.join(ROOT, 'models', 'tiny-sft.json')]);
    expect(r.kind).toBe('config');
    if (r.kind === 'config')
      expect([r.config.model, r.config.trainable, r.config.data.format]).toEqual([
        'tiny',
        'lm',
        'question_solution',
      ]);
  });

  it('exits 2 on a misspelt flag, naming it and suggesting the right one', async () => {
    const r = await capture(() =>
      sftCommand(['--model', 'tiny', '--data.train', 'x.jsonl', '--grad-acum-steps', '2']),
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/grad-acum-steps/);
    expect(r.err).toMatch(/--grad-accum-steps/);
  });

  it('in process: --config file + a flag override writes config, log and checkpoint', async () => {
    const outDir = path.join(tmp, 'inproc');
    // flags beat the file: steps 5 -> 1, gradAccumSteps 2 -> 1, backend cpu -> wasm; lr comes from the file
    const r = await capture(() =>
      sftCommand([
        '--config',
        runJson,
        '--steps',
        '1',
        '--grad-accum-steps',
        '1',
        '--backend',
        'wasm',
        '--out-dir',
        outDir,
      ]),
    );
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out.trim().split('\n').pop()!);
    expect(summary.steps).toBe(1);
    expect(Number.isFinite(summary.loss)).toBe(true);
    const resolved = JSON.parse(await readFile(path.join(outDir, 'training_config.json'), 'utf8'));
    expect([resolved.steps, resolved.backend, resolved.lr, resolved.gradAccumSteps]).toEqual([
      1,
      'wasm',
      1e-3,
      1,
    ]);
    const log = readStepLog(path.join(outDir, 'log.jsonl'));
    expect(log).toHaveLength(1);
    expect(Object.keys(log[0])).toEqual(
      expect.arrayContaining(['step', 'loss', 'lr', 'gradNorm', 'tokensPerSec', 'numTensors']),
    );
    // ln(151936) = 11.93: a random init starts near uniform
    expect(Math.abs(log[0].loss! - Math.log(151936))).toBeLessThan(0.5);
    const ck = await readdir(path.join(outDir, 'checkpoint-00000001'));
    expect(ck.sort()).toEqual(
      [
        'config.json',
        'model.safetensors',
        'optimizer.safetensors',
        'train_state.json',
        'training_config.json',
      ].sort(),
    );
  }, 120_000);

  it('subprocess: npx tsx ... sft --config run.json runs and writes the run dir', async () => {
    const outDir = path.join(tmp, 'sub');
    const { stdout } = await runCli([
      'sft',
      '--config',
      runJson,
      '--steps',
      '1',
      '--backend',
      'wasm',
      '--out-dir',
      outDir,
    ]);
    const summary = JSON.parse(stdout.trim().split('\n').pop()!);
    expect([summary.steps, summary.backend]).toEqual([1, 'wasm']);
    expect(readStepLog(path.join(outDir, 'log.jsonl'))).toHaveLength(1);
    expect(await readdir(outDir)).toEqual(expect.arrayContaining(['checkpoint-00000001', 'log.jsonl']));
  }, 120_000);
});

// `ovr-train grpo`: --help explains every GrpoConfig field, bad flags / combinations exit 2 with a fix, and one real
// step on the tiny model from a JSON config + flags writes the log, rollouts, resolved config and a checkpoint.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/index.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';
import { ROOT } from '../helpers.js';
import { capture, runCli } from './run.js';

const BACKEND = process.env.OVR_TEST_BACKEND ?? 'wasm';
const TMP = path.join(ROOT, 'runs', 'test-artifacts', `grpo-cli-${process.pid}`);

afterEach(() => vi.restoreAllMocks());
afterAll(() => rm(TMP, { recursive: true, force: true }));

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

describe('ovr-train grpo', () => {
  it('--help lists every field (nested ones with dots) with its description', async () => {
    const { code, out } = await capture(() => main(['grpo', '--help']));
    expect(code).toBe(0);
    const top = Object.keys(GrpoConfig.shape);
    expect(top.length).toBeGreaterThan(30);
    for (const k of top.filter((k) => k !== 'data' && k !== 'reward'))
      expect(out, k).toContain(`--${kebab(k)}`);
    for (const k of [
      'train',
      'eval',
      'format',
      'question-field',
      'answer-field',
      'prompt-template',
      'image-root',
      'shuffle',
    ])
      expect(out).toContain(`--data.${k}`);
    for (const k of ['name', 'format', 'workers']) expect(out).toContain(`--reward.${k}`);
    expect(out).toContain('G: completions sampled per prompt');
    expect(out).toContain('`steps` counts RL steps');
    expect(out).not.toContain('(no description)');
  });

  it('examples/configs/grpo-puzzlevqa.json is a valid config whose data file exists', async () => {
    const file = path.join(ROOT, 'examples', 'configs', 'grpo-puzzlevqa.json');
    const cfg = GrpoConfig.parse(JSON.parse(await readFile(file, 'utf8')));
    expect(cfg.reward.format).toBe('orz');
    expect(existsSync(path.resolve(ROOT, cfg.data.train))).toBe(true);
  });

  it('a typo or a bad combination exits 2 and says how to fix it', async () => {
    const typo = await capture(() =>
      main(['grpo', '--model', 'tiny', '--data.train', 'x.jsonl', '--num-generation', '4']),
    );
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/num-generations/);
    const combo = await capture(() =>
      main([
        'grpo',
        '--model',
        'tiny',
        '--data.train',
        'x.jsonl',
        '--num-generations',
        '4',
        '--mini-batch-size',
        '6',
      ]),
    );
    expect(combo.code).toBe(2);
    expect(combo.err).toMatch(/miniBatchSize \(6\) must/);
  });

  it('one step on the tiny model from --config + flags: log, rollouts, resolved config, checkpoint', async () => {
    await rm(TMP, { recursive: true, force: true });
    await mkdir(TMP, { recursive: true });
    const train = path.join(TMP, 'prompts.jsonl');
    await writeFile(
      train,
      `${JSON.stringify({ id: 'a', question: 'What is 1+1?', answer: '2' })}\n${JSON.stringify({ id: 'b', problem: 'What is 2+3?', solution: 'It is \\boxed{5}.' })}\n`,
    );
    const config = path.join(TMP, 'run.json');
    const outDir = path.join(TMP, 'run');
    await writeFile(
      config,
      JSON.stringify({
        model: 'tiny',
        outDir,
        backend: BACKEND,
        data: { train },
        promptsPerStep: 2,
        numGenerations: 2,
        batchSize: 2,
        maxResponseLen: 4,
      }),
    );
    const { code, out } = await capture(() =>
      main(['grpo', '--config', config, '--steps', '1', '--reward.workers', '0']),
    );
    expect(code).toBe(0);
    expect(out).toMatch(/1 step\(s\); last step reward/);
    const log = (await readFile(path.join(outDir, 'log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.length).toBe(1);
    expect(log[0]).toMatchObject({ step: 1, groups: expect.any(Number), rewardMean: expect.any(Number) });
    const rolls = (await readFile(path.join(outDir, 'rollouts.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rolls.length).toBe(4);
    expect(new Set(rolls.map((r) => r.promptId))).toEqual(new Set(['a', 'b']));
    expect(rolls.every((r) => typeof r.completion === 'string' && (r.reward === 0 || r.reward === 1))).toBe(
      true,
    );
    const resolved = JSON.parse(await readFile(path.join(outDir, 'training_config.json'), 'utf8'));
    expect(resolved).toMatchObject({
      steps: 1,
      numGenerations: 2,
      reward: { workers: 0, format: 'orz' },
      klCoef: 0,
    });
    expect(existsSync(path.join(outDir, 'checkpoint-00000001', 'train_state.json'))).toBe(true);
    expect(existsSync(path.join(outDir, 'checkpoint-00000001', 'model.safetensors'))).toBe(true);
  }, 120_000);

  it('subprocess without --backend: OVR_BACKEND picks the backend, and one line says which and why', async () => {
    const dir = path.join(TMP, 'env');
    await mkdir(dir, { recursive: true });
    const train = path.join(dir, 'prompts.jsonl');
    await writeFile(train, `${JSON.stringify({ id: 'a', question: 'What is 1+1?', answer: 2 })}\n`);
    const args = ['grpo', '--model', 'tiny', '--data.train', train, '--out-dir', path.join(dir, 'run')];
    const flags = ['--steps', '1', '--prompts-per-step', '1', '--num-generations', '2', '--batch-size', '2'];
    const small = ['--max-response-len', '2', '--reward.workers', '0'];
    const { stdout, stderr } = await runCli([...args, ...flags, ...small], 180_000, {
      ...process.env,
      OVR_BACKEND: 'wasm',
    });
    const lines = stderr.split('\n').filter((l) => l.startsWith('ovr backend:'));
    console.log(lines.join('\n'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ovr backend: wasm \(forced; .*\[OVR_BACKEND\]$/);
    expect(stdout).toMatch(/1 step\(s\); last step reward/);
  }, 200_000);
});

// `ovr-train ppo --lora.r 8` on the tiny model: PPO with a LoRA critic from the CLI. Step 1 writes a checkpoint whose
// policy weights and critic are both PEFT adapters (critic/ holds the critic adapter + value head + optimizer moments,
// no full weights); `--resume latest` continues to step 2 with the critic restored; the log has the PPO fields.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.js';
import { testBackendName } from '../backend/select.js';
import { ROOT } from '../helpers.js';
import { capture } from './run.js';

const BACKEND = testBackendName('wasm');
const TMP = path.join(ROOT, 'runs', 'test-artifacts', `ppo-cli-${process.pid}`);
afterAll(() => rm(TMP, { recursive: true, force: true }));

describe('ovr-train ppo --lora.r', () => {
  it('trains policy and critic as LoRA adapters, checkpoints both as PEFT adapters, resumes', async () => {
    await mkdir(TMP, { recursive: true });
    const train = path.join(TMP, 'prompts.jsonl');
    await writeFile(
      train,
      `${JSON.stringify({ id: 'a', question: 'What is 1+1?', answer: '2' })}\n${JSON.stringify({ id: 'b', question: 'What is 2+3?', answer: '5' })}\n`,
    );
    const outDir = path.join(TMP, 'run');
    const args = (steps: number, extra: string[] = []) => [
      'ppo',
      '--model',
      'tiny',
      '--out-dir',
      outDir,
      '--backend',
      BACKEND,
      '--data.train',
      train,
      '--steps',
      String(steps),
      '--save-every',
      '1',
      '--prompts-per-step',
      '2',
      '--num-generations',
      '2',
      '--batch-size',
      '2',
      '--max-response-len',
      '3',
      '--reward.workers',
      '0',
      '--lora.r',
      '8',
      '--critic.update-steps',
      '2',
      ...extra,
    ];
    const t0 = performance.now();
    const first = await capture(() => main(args(1)));
    expect(first.err).not.toMatch(/Error/);
    expect(first.code).toBe(0);
    const ck = path.join(outDir, 'checkpoint-00000001');
    const top = await readdir(ck);
    expect(top).toContain('adapter_config.json');
    expect(top).not.toContain('model.safetensors');
    const critic = (await readdir(path.join(ck, 'critic'))).sort();
    expect(critic).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'critic_state.json',
      'optimizer.safetensors',
      'value_head.safetensors',
    ]);
    const peft = JSON.parse(await readFile(path.join(ck, 'critic', 'adapter_config.json'), 'utf8'));
    expect(peft).toMatchObject({ peft_type: 'LORA', r: 8 });
    expect(JSON.parse(await readFile(path.join(ck, 'critic', 'critic_state.json'), 'utf8')).step).toBe(2);
    const resumed = await capture(() => main(args(2, ['--resume', 'latest'])));
    expect(resumed.code).toBe(0);
    const log = (await readFile(path.join(outDir, 'log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    console.log(
      `ppo --lora.r 8: 2 steps (1 + resumed 1) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `value loss ${log.map((r) => r.valueLoss.toFixed(4)).join(' ')}`,
    );
    expect(log.map((r) => r.step)).toEqual([1, 2]);
    for (const r of log)
      for (const k of ['valueLoss', 'explainedVariance', 'returnMean']) expect(r).toHaveProperty(k);
    expect(
      JSON.parse(
        await readFile(path.join(outDir, 'checkpoint-00000002', 'critic', 'critic_state.json'), 'utf8'),
      ).step,
    ).toBe(4);
  }, 120_000);
});

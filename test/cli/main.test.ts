// The CLI entry: usage text, unknown commands, and the OVR_WASM_THREADS opt-in checked before any command runs.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.js';
import { ROOT } from '../helpers.js';
import { capture } from './run.js';

describe('ovr-train main', () => {
  const saved = process.env.OVR_WASM_THREADS;
  afterEach(() => {
    if (saved === undefined) delete process.env.OVR_WASM_THREADS;
    else process.env.OVR_WASM_THREADS = saved;
  });

  it('prints usage with the environment knobs, and names an unknown command', async () => {
    const help = await capture(() => main(['--help']));
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/OVR_BACKEND=/);
    expect(help.out).toMatch(/OVR_WASM_THREADS=2/);
    const bad = await capture(() => main(['trian']));
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown command 'trian'/);
  });

  it('refuses a bad OVR_WASM_THREADS with the valid range, before the command runs', async () => {
    process.env.OVR_WASM_THREADS = '9';
    const r = await capture(() => main(['grade', '--help']));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/OVR_WASM_THREADS=9: .*threads must be an integer in \[2, 8\]/);
    expect(r.out).toBe('');
  });

  it('with OVR_WASM_THREADS=2 the process exits when the command is done (the worker pool would keep it alive)', async () => {
    // runAndExit is what bin/ovr-train.js runs; a launcher that only sets process.exitCode hung here until killed.
    const entry = "import('./src/cli/index.ts').then(({ runAndExit }) => runAndExit(process.argv.slice(1)));";
    const args = [
      'generate',
      '--model',
      'tiny',
      '--prompt',
      'Hi',
      '--max-new-tokens',
      '2',
      '--backend',
      'wasm',
    ];
    const t0 = performance.now();
    const r = await promisify(execFile)('npx', ['tsx', '-e', entry, ...args], {
      cwd: ROOT,
      timeout: 90_000,
      env: { ...process.env, OVR_WASM_THREADS: '2' },
    });
    console.log(`threaded generate exited after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.stderr).toMatch(/XNNPACK SIMD, 2 thread\(s\)/);
    expect(r.stdout.trim().length).toBeGreaterThan(0); // the generated text
  }, 120_000);
});

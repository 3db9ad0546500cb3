// The CLI entry: usage text, unknown commands, and the OVR_WASM_THREADS opt-in checked before any command runs.
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.js';
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
});

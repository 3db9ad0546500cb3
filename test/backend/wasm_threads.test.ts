// The experimental wasm threads shim (opt-in): argument errors in-process, and in a fresh child process (threads
// must be enabled before the wasm backend starts) that 2 pthreads really start and a matMul + softmax give the
// same numbers as the 1-thread build.
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { enableWasmThreads } from '../../src/backend/wasm_threads.js';
import { ROOT } from '../helpers.js';

/** Runs a probe in a new process with `threads` wasm threads (1 = stock build); returns its JSON line. */
function probe(threads: number): { threads: number; out: number[] } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'test/backend/wasm_threads_probe.ts', String(threads)],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    throw new Error(
      `probe failed (${r.status}): ${r.stderr
        .split('\n')
        .filter((l) => !l.trim().startsWith('at '))
        .join(' | ')
        .slice(0, 800)}`,
    );
  return JSON.parse(line);
}

describe('enableWasmThreads (experimental)', () => {
  it('starts 2 pthreads in a fresh process and computes what the 1-thread build computes', () => {
    const one = probe(1);
    const two = probe(2);
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(two.out.length).toBe(one.out.length);
    const d = Math.max(...two.out.map((x, i) => Math.abs(x - one.out[i])));
    console.log(`2 threads vs 1: max abs diff ${d.toExponential(3)} over ${one.out.length} values`);
    expect(d).toBeLessThan(1e-6);
  });

  it('rejects a bad thread count and a call after the wasm backend started, saying what to do', async () => {
    expect(() => enableWasmThreads(1)).toThrow(/threads must be an integer in \[2, 8\], got 1/);
    expect(() => enableWasmThreads(2.5)).toThrow(/threads must be an integer/);
    await initBackend({ backend: 'wasm', log: () => {} });
    expect(tf.getBackend()).toBe('wasm');
    expect(() => enableWasmThreads(2)).toThrow(/already initialised; call it before initBackend/);
  });
});

// The 'tensorflow' backend built by `ovr-train native` (src/backend/native_build.ts): bad input names its step;
// once built, initBackend reports TF's own version and devices, products equal cpu, dtype rules and reads behave
// like cpu, nothing leaks, and re-running the command is cached. The build itself runs in CI (.ci/run).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { run } from '../../src/backend/native_libs.js';
import { nativeCommand } from '../../src/cli/native.js';
import { nativeBuilt } from './select.js';

const silent = { log: () => {} };
const ROOT = path.resolve(import.meta.dirname, '../..');

/** Runs nativeCommand, capturing stderr lines. */
async function runNative(argv: string[]): Promise<{ code: number; err: string }> {
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { code: await nativeCommand(argv), err: lines.join('\n') };
  } finally {
    console.error = orig;
  }
}

describe('ovr-train native: each failure names its step and the fix', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ovr-native-'));

  it('a missing wheel file', async () => {
    const r = await runNative(['--tensorflow-wheel', '/nonexistent/tf.whl', '--cache', tmp]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/step 'tensorflow libraries': wheel file '\/nonexistent\/tf\.whl' not found/);
  });

  it('a wheel without libtensorflow_cc.so.2 (TF < 2.12 layout) says which TF to use', async () => {
    const whl = path.join(tmp, 'tensorflow_cpu-2.9.1-cp311-cp311-linux_x86_64.whl');
    const py =
      "import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1],'w') as z: z.writestr('tensorflow/__init__.py','')";
    expect(run('python3', ['-c', py, whl]).status).toBe(0);
    const r = await runNative(['--tensorflow-wheel', whl, '--cache', tmp]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /has no .*libtensorflow_cc\.so\.2: TensorFlow >= 2\.12 wheels ship it; use tensorflow-cpu==2\.21\.\*/,
    );
  });

  it('a Python that cannot run', async () => {
    const r = await runNative(['--python', '/nonexistent/python3', '--cache', tmp]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/step 'tensorflow libraries': could not run '\/nonexistent\/python3'/);
  });

  it('a folder that is not a project', async () => {
    const wheel = path.join(tmp, 'x.whl');
    writeFileSync(wheel, '');
    const r = await runNative(['--project', tmp, '--tensorflow-wheel', wheel, '--cache', tmp]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/step 'project': .* has no package\.json/);
  });

  it('both library sources at once is a usage error', async () => {
    const r = await runNative(['--tensorflow-wheel', 'a.whl', '--python', 'python3']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--tensorflow-wheel or --python, not both/);
  });
});

describe.runIf(nativeBuilt)('tensorflow backend (built by ovr-train native)', () => {
  it('initBackend reports the TF version and devices of the loaded library', async () => {
    const info = await initBackend({ backend: 'tensorflow', ...silent });
    expect(info.name).toBe('tensorflow');
    expect(info.reason).toMatch(/^forced; @tensorflow\/tfjs-node, TensorFlow 2\.21\.\d+ on CPU$/);
    const binding = (tf.backend() as unknown as { binding: { TF_Version: string } }).binding;
    expect(info.reason).toContain(binding.TF_Version);
  });

  it('matMul, batched matMul and the gather gradient equal cpu; dataSync works; nothing leaks', async () => {
    await initBackend({ backend: 'tensorflow', ...silent });
    const a = Float32Array.from({ length: 256 * 96 }, (_, i) => Math.sin(i * 0.37));
    const b = Float32Array.from({ length: 96 * 64 }, (_, i) => Math.cos(i * 0.11));
    const compute = () =>
      tf.tidy(() => {
        const x = tf.tensor2d(a, [256, 96]);
        const w = tf.tensor2d(b, [96, 64]);
        const q = tf.reshape(x, [4, 64, 96]);
        const g = tf.grad((e: tf.Tensor) => tf.sum(tf.gather(e, tf.tensor1d([3, 1, 3, 0], 'int32'))))(x);
        return [tf.matMul(x, w), tf.matMul(q, q, false, true), g].map((t) => t.dataSync());
      });
    const before = tf.memory().numTensors;
    const got = compute();
    expect(tf.memory().numTensors).toBe(before);
    await initBackend({ backend: 'cpu', ...silent });
    const ref = compute();
    let maxDiff = 0;
    got.forEach((g, i) => {
      for (let j = 0; j < g.length; j++) maxDiff = Math.max(maxDiff, Math.abs(g[j] - ref[i][j]));
    });
    console.log(`tensorflow vs cpu, matMul/batched/gather-grad max diff ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('int32 and bool results keep their dtype (as on cpu)', async () => {
    await initBackend({ backend: 'tensorflow', ...silent });
    const [s, m, c] = tf.tidy(() => {
      const i = tf.tensor1d([1, 2, 3], 'int32');
      return [tf.add(i, tf.scalar(2, 'int32')), tf.greater(i, 1), tf.cumsum(i)];
    });
    expect([s.dtype, m.dtype, c.dtype]).toEqual(['int32', 'bool', 'int32']);
    expect([Array.from(await s.data()), Array.from(await m.data()), Array.from(await c.data())]).toEqual([
      [3, 4, 5],
      [0, 1, 1],
      [1, 3, 6],
    ]);
    tf.dispose([s, m, c]);
  });

  it('re-running ovr-train native is cached (no npm install, no compile) and proves the backend again', async () => {
    const req = createRequire(path.join(ROOT, 'package.json'));
    const dir = path.dirname(path.dirname(req.resolve('@tensorflow/tfjs-node')));
    const stamp = JSON.parse(readFileSync(path.join(dir, 'lib', 'ovr-native.json'), 'utf8'));
    const r = run(process.execPath, [path.join(ROOT, 'bin/ovr-train.js'), 'native', '--cache', stamp.cache], {
      cwd: ROOT,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cached steps: npm install, compile/);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      package: '@tensorflow/tfjs-node',
      tensorflow: expect.stringMatching(/^2\.21\./),
      devices: ['CPU'],
    });
  }, 120_000);
});

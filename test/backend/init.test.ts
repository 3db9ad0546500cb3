// initBackend: auto choice and its one log line, forcing each backend, bad names, the wasm heap guard,
// and the webgpu patches (AddN > 7 inputs, Dawn errors surfaced at the next read, device limits).
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  checkWebgpuErrors,
  DEFAULT_WASM_MAX_BYTES,
  initBackend,
  ovrBackendFromEnv,
  WASM_HEAP_MAX,
  wasmHeapGuard,
} from '../../src/backend/index.js';
import { applyPatch, removePatch } from '../../src/backend/kernels.js';
import { findWebgpuAdapter, WEBGPU_PATCHES } from '../../src/backend/webgpu.js';
import { WASM_PATCH_NAMES } from './op_cases.js';
import { nativeBuilt } from './select.js';

const silent = { log: () => {} };
// TensorFlow must load before Dawn in one process (src/backend/index.ts, startNative).
if (nativeBuilt) await initBackend({ backend: 'tensorflow', ...silent });
const realGpu = await findWebgpuAdapter(false);
// Same rule as ops.test.ts: OVR_TEST_WEBGPU=1 must work, =0 skips, unset runs when Dawn finds any adapter.
const flag = process.env.OVR_TEST_WEBGPU;
const webgpuWanted = flag === '1' || (flag !== '0' && typeof (await findWebgpuAdapter(true)) !== 'string');

describe('ovrBackendFromEnv', () => {
  it('maps unset/empty to auto, normalises case and blanks, rejects unknown names', () => {
    expect(ovrBackendFromEnv({})).toBe('auto');
    expect(ovrBackendFromEnv({ OVR_BACKEND: '' })).toBe('auto');
    expect(ovrBackendFromEnv({ OVR_BACKEND: ' WASM ' })).toBe('wasm');
    expect(ovrBackendFromEnv({ OVR_BACKEND: 'webgpu' })).toBe('webgpu');
    expect(() => ovrBackendFromEnv({ OVR_BACKEND: 'cuda' })).toThrow(
      /OVR_BACKEND='cuda'.*auto, tensorflow, webgpu, wasm, cpu/,
    );
  });
});

describe('initBackend', () => {
  it('rejects an unknown backend name and a bad wasmMaxBytes, saying what is allowed', async () => {
    // @ts-expect-error: a wrong name as it would arrive from untyped config
    await expect(initBackend({ backend: 'tpu', ...silent })).rejects.toThrow(
      /unknown backend 'tpu'.*auto, tensorflow, webgpu, wasm, cpu/,
    );
    await expect(initBackend({ backend: 'wasm', wasmMaxBytes: 5 * 2 ** 30, ...silent })).rejects.toThrow(
      new RegExp(`wasmMaxBytes must be .*${WASM_HEAP_MAX}.*got ${5 * 2 ** 30}`),
    );
  });

  it('auto picks tensorflow when built, else wasm on a box without a real GPU, and logs one line with the skip reasons', async () => {
    const lines: string[] = [];
    const info = await initBackend({ log: (l) => lines.push(l) });
    const expected = nativeBuilt ? 'tensorflow' : typeof realGpu === 'string' ? 'wasm' : 'webgpu';
    expect(info.name).toBe(expected);
    expect(tf.getBackend()).toBe(expected);
    expect(lines).toHaveLength(1);
    console.log(lines[0]);
    expect(lines[0]).not.toContain('\n');
    expect(lines[0]).toMatch(new RegExp(`^ovr backend: ${expected} `));
    const skipped = Object.fromEntries(info.skipped.map((s) => [s.name, s.why]));
    expect(skipped['@tensorflow/tfjs-node-gpu']).toMatch(/not installed .*npx ovr-train native --gpu/);
    if (nativeBuilt) expect(info.reason).toMatch(/^@tensorflow\/tfjs-node, TensorFlow 2\.\d+\.\d+ on CPU$/);
    else expect(skipped['@tensorflow/tfjs-node']).toMatch(/not installed \(build it: npx ovr-train native\)/);
    if (expected === 'wasm') {
      expect(skipped.webgpu).toMatch(/no GPU adapter|only a software adapter/);
      expect(info.patches).toEqual(WASM_PATCH_NAMES);
    }
    for (const s of info.skipped) expect(lines[0]).toContain(s.why);
  });

  it('is idempotent: the same request returns the same info and does not log again', async () => {
    const first = await initBackend(silent);
    const lines: string[] = [];
    const again = await initBackend({ log: (l) => lines.push(l) });
    expect(again).toBe(first);
    expect(lines).toEqual([]);
  });

  it.skipIf(nativeBuilt)(
    'forcing tensorflow without tfjs-node(-gpu) fails and says how to build it',
    async () => {
      await expect(initBackend({ backend: 'tensorflow', ...silent })).rejects.toThrow(
        /backend 'tensorflow' could not start.*npx ovr-train native --gpu.*npx ovr-train native\)/,
      );
    },
  );

  it('forces cpu and wasm', async () => {
    const cpu = await initBackend({ backend: 'cpu', ...silent });
    expect([cpu.name, tf.getBackend(), cpu.reason]).toEqual([
      'cpu',
      'cpu',
      expect.stringMatching(/^forced; /),
    ]);
    const wasm = await initBackend({ backend: 'wasm', ...silent });
    expect([wasm.name, tf.getBackend()]).toEqual(['wasm', 'wasm']);
    expect(wasm.patches).toContain('wasm.BatchMatMul');
  });
});

describe('wasm heap guard', () => {
  it('throws before an allocation passes the configured limit, counts exactly, and recovers after dispose', async () => {
    await initBackend({ backend: 'wasm', wasmMaxBytes: 2 ** 20, ...silent }); // 1 MiB
    const guard = wasmHeapGuard(tf.backend());
    expect(guard?.limit).toBe(2 ** 20);
    const base = guard?.live ?? 0;
    const a = tf.fill([200_000], 3); // 800 000 bytes
    expect(guard?.live).toBe(base + 800_000);
    const n = tf.memory().numTensors;
    expect(() => tf.zeros([100_000])).toThrow(
      /wasm heap guard: allocating 400000 bytes .*limit of 1\.00 MiB.*wasmMaxBytes/,
    );
    expect(() => tf.tidy(() => tf.add(a, 1))).toThrow(/wasm heap guard/); // a kernel output is guarded too
    expect(tf.memory().numTensors).toBe(n);
    const v = await a.data();
    expect([v[0], v[199_999]]).toEqual([3, 3]); // the live tensor is intact
    a.dispose();
    expect(guard?.live).toBe(base);
    const b = tf.tidy(() => tf.add(tf.fill([100_000], 1), 1)); // 2 x 400 kB fit again
    expect((await b.data())[123]).toBe(2);
    b.dispose();
    await initBackend({ backend: 'wasm', wasmMaxBytes: DEFAULT_WASM_MAX_BYTES, ...silent });
    expect(guard?.limit).toBe(DEFAULT_WASM_MAX_BYTES);
  });
});

describe.skipIf(!webgpuWanted)('webgpu patches', () => {
  it('forcing webgpu works (Dawn OpenGL ES compat on llvmpipe here) and requests the adapter limits', async () => {
    const info = await initBackend({ backend: 'webgpu', ...silent });
    console.log(`forced webgpu: ${info.reason}`);
    expect([info.name, tf.getBackend()]).toEqual(['webgpu', 'webgpu']);
    const choice = await findWebgpuAdapter(true);
    if (typeof choice === 'string') throw new Error(choice);
    const adapter = (await choice.gpu.requestAdapter(choice.options)) as GPUAdapter;
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    for (const k of [
      'maxBufferSize',
      'maxStorageBufferBindingSize',
      'maxStorageBuffersPerShaderStage',
    ] as const) {
      expect(device.limits[k], k).toBe(adapter.limits[k]);
    }
  });

  it('AddN of 10 and 40 tensors is exact (stock tfjs returns zeros past the storage-buffer limit)', async () => {
    for (const n of [10, 40]) {
      const s = tf.tidy(() => tf.addN(Array.from({ length: n }, (_, i) => tf.fill([5], i + 1))));
      expect(Array.from(await s.data())).toEqual(Array(5).fill((n * (n + 1)) / 2));
      s.dispose();
    }
  });

  it('a Dawn validation error surfaces as a thrown error at the next read, then clears', async () => {
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    device.createBuffer({ size: 4, usage: 0 }); // invalid: Dawn reports it asynchronously
    const x = tf.tidy(() => tf.add(tf.ones([3]), 1));
    await expect(x.data()).rejects.toThrow(/WebGPU error reported by Dawn.*Buffer usages must not be 0/);
    expect(Array.from(await x.data())).toEqual([2, 2, 2]);
    x.dispose();
    await checkWebgpuErrors(); // nothing pending
    device.createBuffer({ size: 4, usage: 0 });
    await expect(checkWebgpuErrors()).rejects.toThrow(/Buffer usages must not be 0/);
  });

  it('without the AddN patch, 40 inputs break the pipeline and the error is thrown instead of returning zeros', async () => {
    const addN = WEBGPU_PATCHES[0];
    expect(removePatch(addN)).toBe(true);
    try {
      const s = tf.tidy(() => tf.addN(Array.from({ length: 40 }, () => tf.ones([5]))));
      await expect(s.data()).rejects.toThrow(/storage buffers \(41\).*exceeds the maximum/);
      s.dispose();
    } finally {
      expect(applyPatch(addN)).toBe(true);
    }
  });
});

// Op coverage: forward values and gradients of every op the model and trainers use, on each backend,
// against the cpu backend as oracle. Prints an op x backend table (max abs / rel diff) as markdown.
// Backends: cpu (oracle) + wasm always; webgpu when OVR_TEST_WEBGPU=1 (CI, must work), skipped when
// OVR_TEST_WEBGPU=0, otherwise run when Dawn finds an adapter (GL on llvmpipe counts here); tensorflow once
// `ovr-train native` has built it (select.ts: nativeBuilt).
import * as tf from '@tensorflow/tfjs-core';
// NOTE: after the tfjs-core import: the first copy to load creates the shared engine (see report).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendName, initBackend } from '../../src/backend/index.js';
import { findWebgpuAdapter } from '../../src/backend/webgpu.js';
import { Rng } from '../../src/util/rng.js';
import { OP_CASES, type OpCase, wsum } from './op_cases.js';
import { nativeBuilt } from './select.js';

/** |got - ref| / max(1, |ref|) must stay below this (mixed abs/rel, as the research runs did). */
const TOL: Record<string, number> = { wasm: 1e-5, webgpu: 1e-4, tensorflow: 1e-5 };

type Values = { data: ArrayLike<number>; dtype: tf.DataType }[];
type Diff = { abs: number; rel: number; mixed: number; exactMismatch: boolean };

async function runCase(c: OpCase): Promise<Values> {
  const outs = tf.tidy(() => {
    const { diff, fn } = c.make(new Rng(1234).split(c.name));
    const ys = fn(...diff);
    const list = Array.isArray(ys) ? ys : [ys];
    if (c.grad === false || diff.length === 0) return list;
    return [...list, ...tf.grads((...xs: tf.Tensor[]) => wsum(fn(...xs)))(diff)];
  });
  const vals: Values = [];
  for (const t of outs) vals.push({ data: await t.data(), dtype: t.dtype });
  tf.dispose(outs);
  return vals;
}

function compare(got: Values, ref: Values): Diff {
  expect(got.length, 'number of outputs').toBe(ref.length);
  let abs = 0;
  let mixed = 0;
  let scale = 0;
  let exactMismatch = false;
  got.forEach((g, i) => {
    expect(g.data.length, `output ${i} size`).toBe(ref[i].data.length);
    for (let j = 0; j < g.data.length; j++) {
      const d = Math.abs(g.data[j] - ref[i].data[j]);
      const dd =
        Number.isNaN(d) && !(Number.isNaN(g.data[j]) && Number.isNaN(ref[i].data[j])) ? Infinity : d || 0;
      if (ref[i].dtype !== 'float32' && dd !== 0) exactMismatch = true;
      abs = Math.max(abs, dd);
      mixed = Math.max(mixed, dd / Math.max(1, Math.abs(ref[i].data[j])));
      if (Number.isFinite(ref[i].data[j])) scale = Math.max(scale, Math.abs(ref[i].data[j]));
    }
  });
  return { abs, rel: scale > 0 ? abs / scale : abs, mixed, exactMismatch };
}

async function webgpuWanted(): Promise<boolean> {
  const flag = process.env.OVR_TEST_WEBGPU;
  if (flag === '1') return true;
  if (flag === '0') return false;
  // TensorFlow must load before Dawn in one process (src/backend/index.ts, startNative).
  if (nativeBuilt) await initBackend({ backend: 'tensorflow', log: () => {} });
  return typeof (await findWebgpuAdapter(true)) !== 'string';
}

const ref = new Map<string, Values>();
const table = new Map<string, Map<string, Diff | string>>();
const seconds: Record<string, number> = {};
const useWebgpu = await webgpuWanted();
// tensorflow before webgpu: TensorFlow cannot load after Dawn in one process (src/backend/index.ts, startNative).
const BACKENDS: BackendName[] = [
  'wasm',
  ...(nativeBuilt ? (['tensorflow'] as const) : []),
  ...(useWebgpu ? (['webgpu'] as const) : []),
];
const silent = { log: () => {} };

beforeAll(async () => {
  await initBackend({ backend: 'cpu', ...silent });
  const t0 = performance.now();
  for (const c of OP_CASES) ref.set(c.name, await runCase(c));
  seconds.cpu = (performance.now() - t0) / 1000;
});

afterAll(() => {
  const cell = (d: Diff | string | undefined) =>
    d === undefined
      ? '-'
      : typeof d === 'string'
        ? `FAIL: ${d}`
        : `${d.abs.toExponential(1)} / ${d.rel.toExponential(1)}`;
  const lines = [
    `| op (fwd + grads) | ${BACKENDS.map((b) => `${b} max abs / rel vs cpu`).join(' | ')} |`,
    `|---|${BACKENDS.map(() => '---').join('|')}|`,
    ...OP_CASES.map(
      (c) =>
        `| ${c.name}${c.grad === false ? ' (fwd)' : ''} | ${BACKENDS.map((b) => cell(table.get(c.name)?.get(b))).join(' | ')} |`,
    ),
    '',
    `time per backend (s): ${Object.entries(seconds)
      .map(([b, s]) => `${b} ${s.toFixed(2)}`)
      .join(', ')}`,
  ];
  console.log(
    `\nOP COVERAGE (tolerance: |diff| / max(1, |cpu|) <= ${JSON.stringify(TOL)}, integer outputs exact)\n${lines.join('\n')}\n`,
  );
});

describe.each(BACKENDS)('op coverage on %s vs cpu', (backend) => {
  it(`every op matches cpu within ${TOL[backend]} and leaks nothing`, async () => {
    await initBackend({ backend, ...silent });
    expect(tf.getBackend()).toBe(backend);
    const before = tf.memory().numTensors;
    const failures: string[] = [];
    const t0 = performance.now();
    for (const c of OP_CASES) {
      const row = table.get(c.name) ?? new Map<string, Diff | string>();
      table.set(c.name, row);
      try {
        const d = compare(await runCase(c), ref.get(c.name) as Values);
        row.set(backend, d);
        if (!(d.mixed <= TOL[backend]) || d.exactMismatch)
          failures.push(`${c.name}: abs ${d.abs}, mixed ${d.mixed}`);
      } catch (e) {
        row.set(backend, (e as Error).message.split('\n')[0].slice(0, 80));
        failures.push(`${c.name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    seconds[backend] = (performance.now() - t0) / 1000;
    expect(failures, failures.join('\n')).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

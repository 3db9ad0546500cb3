// matMul GFLOP/s per backend, with and without our kernel patches (wasm), side by side.
// Usage: npx tsx bench/matmul.ts [cpu|wasm|webgpu|all]   (default wasm)
// Cases: plain / transposeA / transposeB 2-D, a 3-D activation x weight product, attention-style batched
// QK^T, and a linear layer forward + backward. The backward is the two matmuls tf.grads would run
// (dX = dY W^T, dW = X^T dY), written out because tfjs-core's node bundle registers no gradients.
import * as tf from '@tensorflow/tfjs-core';
import { type BackendName, initBackend } from '../src/backend/index.js';
import { installWasmPatches, removeWasmPatches } from '../src/backend/wasm.js';

interface Case {
  name: string;
  flops: number;
  shapes: number[][];
  run: (xs: tf.Tensor[]) => tf.Tensor;
}

function cases(n: number): Case[] {
  const [B, H, S, D] = [8, 12, n / 4, 64];
  const rows = 2 * n;
  return [
    {
      name: `matMul ${n}`,
      flops: 2 * n ** 3,
      shapes: [
        [n, n],
        [n, n],
      ],
      run: ([a, b]) => tf.matMul(a, b),
    },
    {
      name: `matMul ${n} transposeA`,
      flops: 2 * n ** 3,
      shapes: [
        [n, n],
        [n, n],
      ],
      run: ([a, b]) => tf.matMul(a, b, true),
    },
    {
      name: `matMul ${n} transposeB`,
      flops: 2 * n ** 3,
      shapes: [
        [n, n],
        [n, n],
      ],
      run: ([a, b]) => tf.matMul(a, b, false, true),
    },
    {
      name: `[4,${n / 2},${n}] x [1,${n},${n}] (weight)`,
      flops: 2 * 4 * (n / 2) * n * n,
      shapes: [
        [4, n / 2, n],
        [1, n, n],
      ],
      run: ([a, b]) => tf.matMul(a, b),
    },
    {
      name: `batched QK^T [${B},${H},${S},${D}]`,
      flops: 2 * B * H * S * S * D,
      shapes: [
        [B, H, S, D],
        [B, H, S, D],
      ],
      run: ([q, k]) => tf.matMul(q, k, false, true),
    },
    {
      name: `linear [${rows},${n}]x[${n},${n}] fwd+bwd`,
      flops: 3 * 2 * rows * n * n,
      shapes: [
        [rows, n],
        [n, n],
        [rows, n],
      ],
      run: ([x, w, dy]) => {
        const y = tf.matMul(x, w);
        const dx = tf.matMul(dy, w, false, true);
        const dw = tf.matMul(x, dy, true, false);
        return tf.addN([tf.sum(y), tf.sum(dx), tf.sum(dw)]);
      },
    },
  ];
}

/** Mean ms per call after one warm-up; repeats until ~1 s has passed (at least once). */
async function timeMs(f: () => tf.Tensor): Promise<number> {
  const once = async () => {
    const t = tf.tidy(f);
    await t.data();
    t.dispose();
  };
  await once();
  let reps = 0;
  const t0 = performance.now();
  while (reps === 0 || (performance.now() - t0 < 1000 && reps < 20)) {
    await once();
    reps++;
  }
  return (performance.now() - t0) / reps;
}

const fmt = (ms: number, flops: number) => `${ms.toFixed(1)} ms | ${(flops / ms / 1e6).toFixed(1)}`;

async function benchBackend(name: BackendName): Promise<void> {
  const info = await initBackend({ backend: name, log: () => {} });
  const n = name === 'cpu' ? 256 : 1024;
  const withStock = name === 'wasm';
  console.log(`\n### ${name}: ${info.reason}\n`);
  console.log(
    `| case | ${withStock ? 'patched ms | GFLOP/s | stock ms | GFLOP/s | speed-up' : 'ms | GFLOP/s'} |`,
  );
  console.log(`|---|${withStock ? '---|---|---|---|---' : '---|---'}|`);
  for (const c of cases(n)) {
    const xs = c.shapes.map((s) => tf.randomNormal(s));
    const fast = await timeMs(() => c.run(xs));
    let row = `| ${c.name} | ${fmt(fast, c.flops)}`;
    if (withStock) {
      removeWasmPatches();
      const slow = await timeMs(() => c.run(xs));
      installWasmPatches();
      row += ` | ${fmt(slow, c.flops)} | x${(slow / fast).toFixed(1)}`;
    }
    console.log(`${row} |`);
    tf.dispose(xs);
  }
}

const arg = process.argv[2] ?? 'wasm';
const list: BackendName[] = arg === 'all' ? ['cpu', 'wasm', 'webgpu'] : [arg as BackendName];
for (const b of list) {
  if (!['cpu', 'wasm', 'webgpu', 'tensorflow'].includes(b))
    throw new Error(`unknown backend '${b}': use cpu, wasm, webgpu, tensorflow or all`);
  await benchBackend(b);
}
process.exit(0);

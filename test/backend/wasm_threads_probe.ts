// Child-process probe for wasm_threads.test.ts: `node --import tsx test/backend/wasm_threads_probe.ts <threads>`
// prints {"threads", "out"}: the live thread count and every 97th value of softmax(a·b) for fixed a, b.

import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { enableWasmThreads } from '../../src/backend/wasm_threads.js';

const threads = Number(process.argv[2] ?? 1);
if (threads > 1) enableWasmThreads(threads);
await initBackend({ backend: 'wasm', log: () => {} });
const a = tf.tensor2d(
  Float32Array.from({ length: 256 * 300 }, (_, i) => Math.sin(i) * 0.1),
  [256, 300],
);
const b = tf.tensor2d(
  Float32Array.from({ length: 300 * 128 }, (_, i) => Math.cos(i) * 0.1),
  [300, 128],
);
const y = tf.softmax(tf.matMul(a, b));
const out = Array.from(await y.data()).filter((_, i) => i % 97 === 0);
console.log(JSON.stringify({ threads: getThreadsCount(), out }));
process.exit(0);

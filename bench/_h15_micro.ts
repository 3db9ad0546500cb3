import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
await initBackend({ backend: 'wasm', log: () => {} });
const V = 151936, n = 127, D = 512;
const time = (name: string, f: () => tf.Tensor | void) => { const t = performance.now(); const r = f(); const ms = performance.now() - t; if (r) r.dispose(); console.log(name, ms.toFixed(0)); };
const w = tf.randomNormal([V, D]); const pT = tf.randomNormal([V, n]);
time('dh unblocked', () => tf.matMul(pT, w, true, false));
for (const Kc of [1024, 4096, 16384]) {
  const ws: tf.Tensor[] = [], ps: tf.Tensor[] = [];
  for (let s = 0; s < V; s += Kc) { const k = Math.min(Kc, V - s); ws.push(tf.slice(w, [s, 0], [k, D])); ps.push(tf.slice(pT, [s, 0], [k, n])); }
  time(`dh blocked Kc=${Kc} (${ws.length})`, () => tf.tidy(() => tf.addN(ws.map((wb, i) => tf.matMul(ps[i], wb, true, false)))));
  time(`dh blocked Kc=${Kc} (${ws.length}) again`, () => tf.tidy(() => tf.addN(ws.map((wb, i) => tf.matMul(ps[i], wb, true, false)))));
  tf.dispose([...ws, ...ps]);
}
time('slice W rows 8192 (stock)', () => tf.slice(w, [8192, 0], [8192, D]));

// Op cases for the coverage suite: every op the model and trainers use (research doc §1.1), each as
// seeded host inputs + a function. The suite runs forward outputs and gradients of a weighted sum on
// each backend and compares them with the cpu backend.
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../src/util/rng.js';

export interface OpCase {
  name: string;
  /** Build the inputs on the active backend; `diff` are differentiated, `fn` closes over constants. */
  make: (r: Rng) => { diff: tf.Tensor[]; fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
  /** false: forward only (integer ops, or tfjs-core has no gradient for this form). */
  grad?: boolean;
}

/** Seeded normal tensor (host-generated, identical on every backend). */
export function randn(r: Rng, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = r.normal() * scale;
  return tf.tensor(v, shape);
}

/** Seeded int32 tensor with values in [0, max). */
export function randInt(r: Rng, shape: number[], max: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Int32Array(n);
  for (let i = 0; i < n; i++) v[i] = r.int(max);
  return tf.tensor(v, shape, 'int32');
}

/** Weighted sum so gradients are not all ones; weights are host constants (tf.linspace(a,b,1) is NaN on webgpu). */
export function wsum(ys: tf.Tensor | tf.Tensor[]): tf.Scalar {
  const list = Array.isArray(ys) ? ys : [ys];
  const parts = list.map((y) => {
    const w = Float32Array.from({ length: y.size }, (_, i) => 0.5 + ((i * 37) % 101) / 101);
    return tf.sum(tf.mul(y, tf.tensor(w, y.shape)));
  });
  return parts.reduce((a, b) => tf.add(a, b)) as tf.Scalar;
}

const one = (
  name: string,
  shapes: number[][],
  fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  scale = 1,
): OpCase => ({
  name,
  make: (r) => ({ diff: shapes.map((s) => randn(r, s, scale)), fn }),
});
const fwd = (c: OpCase): OpCase => ({ ...c, grad: false });

const rmsNorm = (x: tf.Tensor, w: tf.Tensor) =>
  tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))), w);
const geluErf = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.div(x, Math.SQRT2)), 1));

const MATMUL: OpCase[] = [
  one(
    'matMul 2-D',
    [
      [16, 32],
      [32, 8],
    ],
    (a, b) => tf.matMul(a, b),
  ),
  one(
    'matMul transposeA',
    [
      [32, 16],
      [32, 8],
    ],
    (a, b) => tf.matMul(a, b, true, false),
  ),
  one(
    'matMul transposeB',
    [
      [16, 32],
      [8, 32],
    ],
    (a, b) => tf.matMul(a, b, false, true),
  ),
  one(
    'matMul both transposed',
    [
      [32, 16],
      [8, 32],
    ],
    (a, b) => tf.matMul(a, b, true, true),
  ),
  one(
    'matMul 3-D batched',
    [
      [3, 5, 16],
      [3, 16, 7],
    ],
    (a, b) => tf.matMul(a, b),
  ),
  one(
    'matMul 4-D QK^T',
    [
      [2, 3, 8, 16],
      [2, 3, 8, 16],
    ],
    (a, b) => tf.matMul(a, b, false, true),
  ),
  one(
    'matMul 4-D PV',
    [
      [2, 3, 8, 8],
      [2, 3, 8, 16],
    ],
    (a, b) => tf.matMul(a, b),
  ),
  one(
    'matMul 4-D transposeA',
    [
      [2, 3, 8, 5],
      [2, 3, 8, 16],
    ],
    (a, b) => tf.matMul(a, b, true, false),
  ),
  // Broadcast batch: tfjs-core's matMul gradient throws for these on every backend (reshape to 2-D instead).
  fwd(
    one(
      'matMul 3-D x batch-1 weight',
      [
        [3, 5, 16],
        [1, 16, 7],
      ],
      (a, b) => tf.matMul(a, b),
    ),
  ),
  fwd(
    one(
      'matMul 3-D x weight^T',
      [
        [3, 5, 16],
        [1, 7, 16],
      ],
      (a, b) => tf.matMul(a, b, false, true),
    ),
  ),
  one('fused matMul+bias', [[16, 32], [32, 8], [8]], (a, b, bias) => tf.fused.matMul({ a, b, bias })),
  one('fused matMul^T+bias+relu', [[16, 32], [8, 32], [8]], (a, b, bias) =>
    tf.fused.matMul({ a, b, bias, transposeB: true, activation: 'relu' }),
  ),
];

const NORM_ACT: OpCase[] = [
  one('softmax', [[4, 10]], (x) => tf.softmax(x), 3),
  one('logSoftmax', [[4, 10]], (x) => tf.logSoftmax(x), 3),
  one('logSumExp', [[4, 10]], (x) => tf.logSumExp(x, -1), 3),
  one('rmsNorm (mean/rsqrt/square)', [[3, 5, 16], [16]], rmsNorm),
  one('sigmoid', [[4, 16]], (x) => tf.sigmoid(x), 4),
  one('silu (x*sigmoid)', [[4, 16]], (x) => tf.mul(x, tf.sigmoid(x)), 4),
  one('erf-GELU', [[4, 16]], geluErf, 3),
  one('exp/log', [[4, 8]], (x) => tf.log(tf.add(tf.exp(x), 1))),
  one('pow/sqrt/div', [[4, 8]], (x) => tf.div(tf.pow(tf.abs(x), 1.5), tf.sqrt(tf.add(tf.square(x), 1)))),
  one('sum/neg/abs', [[4, 8]], (x) => tf.sum(tf.neg(tf.abs(x)), -1)),
  one(
    'sub/mul',
    [
      [4, 8],
      [4, 8],
    ],
    (a, b) => tf.mul(tf.sub(a, b), b),
  ),
  one('max (+grad)', [[4, 8]], (x) => tf.max(x, -1)),
  one(
    'maximum/minimum',
    [
      [4, 8],
      [4, 8],
    ],
    (a, b) => tf.add(tf.maximum(a, b), tf.mul(tf.minimum(a, b), 2)),
  ),
  one('clipByValue', [[4, 8]], (x) => tf.clipByValue(x, -0.5, 0.5)),
  one('sin/cos', [[4, 8]], (x) => tf.add(tf.sin(x), tf.cos(x))),
];

const SHAPE: OpCase[] = [
  one(
    'concat',
    [
      [2, 3, 4],
      [2, 3, 5],
    ],
    (a, b) => tf.concat([a, b], -1),
  ),
  one('slice', [[2, 4, 6]], (x) => tf.slice(x, [0, 1, 2], [2, 2, 3])),
  one('split', [[2, 6, 3]], (x) => tf.split(x, [2, 4], 1)[1]),
  one('stack/unstack', [[3, 4, 2]], (x) => tf.stack(tf.unstack(x).reverse(), 1)),
  one('transpose', [[2, 3, 4, 5]], (x) => tf.transpose(x, [0, 2, 1, 3])),
  one('reshape', [[2, 3, 4, 5]], (x) => tf.reshape(x, [6, 20])),
  one('tile rank 4 (GQA repeat_kv)', [[1, 2, 4, 8]], (x) =>
    tf.reshape(tf.tile(tf.reshape(x, [2, 1, 4, 8]), [1, 3, 1, 1]), [1, 6, 4, 8]),
  ),
  one('cumsum', [[3, 6]], (x) => tf.cumsum(x, 1)),
];

const INDEX: OpCase[] = [
  {
    name: 'gather embedding (+grad)',
    make: (r) => {
      const ids = tf.tensor2d([3, 1, 3, 0, 49, 3, 7], [1, 7], 'int32'); // duplicates exercise the segment sum
      return { diff: [randn(r, [50, 16])], fn: (e) => tf.gather(e, ids) };
    },
  },
  {
    name: 'gather axis 1 (+grad)',
    make: (r) => ({
      diff: [randn(r, [4, 9, 3])],
      fn: (e) => tf.gather(e, tf.tensor1d([8, 0, 2, 2], 'int32'), 1),
    }),
  },
  {
    name: 'cross-entropy oneHot',
    make: (r) => {
      const onehot = tf.oneHot(randInt(r, [6], 11), 11);
      return {
        diff: [randn(r, [6, 11], 3)],
        fn: (l) => tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(l)), -1))),
      };
    },
  },
  {
    name: 'where (+grad)',
    make: (r) => {
      const c = tf.greater(randn(r, [4, 6]), 0);
      return { diff: [randn(r, [4, 6]), randn(r, [4, 6])], fn: (a, b) => tf.where(c, a, b) };
    },
  },
  {
    name: 'addN 10 inputs',
    make: (r) => ({ diff: Array.from({ length: 10 }, () => randn(r, [3, 5])), fn: (...xs) => tf.addN(xs) }),
  },
  fwd({ name: 'oneHot', make: (r) => ({ diff: [], fn: () => tf.oneHot(randInt(r, [7], 10), 10) }) }),
  fwd({ name: 'argMax', make: (r) => ({ diff: [randn(r, [4, 8])], fn: (x) => tf.argMax(x, -1) }) }),
  fwd({
    name: 'topk',
    make: (r) => ({ diff: [randn(r, [3, 20])], fn: (x) => Object.values(tf.topk(x, 5)) }),
  }),
  fwd({
    name: 'cast',
    make: (r) => ({
      diff: [randn(r, [4, 8], 10)],
      fn: (x) => [tf.cast(x, 'int32'), tf.cast(tf.greater(x, 0), 'float32')],
    }),
  }),
  fwd({
    name: 'range',
    make: () => ({ diff: [], fn: () => [tf.range(0, 16, 1, 'float32'), tf.range(3, 11, 2, 'int32')] }),
  }),
  fwd({
    name: 'scatterND',
    make: (r) => ({
      diff: [randn(r, [3, 4])],
      fn: (u) => tf.scatterND(tf.tensor2d([[0], [2], [0]], [3, 1], 'int32'), u, [4, 4]),
    }),
  }),
  fwd({
    name: 'unsortedSegmentSum',
    make: (r) => ({
      diff: [randn(r, [6, 4])],
      fn: (x) => tf.unsortedSegmentSum(x, tf.tensor1d([0, 2, 2, 1, 0, 3], 'int32'), 4),
    }),
  }),
  fwd({ name: 'cumsum int32', make: (r) => ({ diff: [], fn: () => tf.cumsum(randInt(r, [2, 8], 3), 1) }) }),
  fwd({
    name: 'isNaN/isFinite',
    make: () => {
      const x = tf.tensor1d([0, Number.NaN, 1, Number.POSITIVE_INFINITY, -2]);
      return { diff: [], fn: () => [tf.cast(tf.isNaN(x), 'float32'), tf.cast(tf.isFinite(x), 'float32')] };
    },
  }),
];

export const OP_CASES: readonly OpCase[] = [...MATMUL, ...NORM_ACT, ...SHAPE, ...INDEX];

/** The wasm kernel patches the library installs, in install order (written out here, not read from src). */
export const WASM_PATCH_NAMES = [
  'wasm.UnsortedSegmentSum',
  'wasm.BatchMatMul',
  'wasm._FusedMatMul',
  'wasm.Slice',
  'wasm.Identity',
  'wasm.Cast',
];

// Kernel patches for @tensorflow/tfjs-backend-wasm 4.22 (see docs/backends.md for the measurements):
//  - UnsortedSegmentSum is missing (tfjs#8082), so gather has no gradient on wasm: added via ScatterNd.
//  - BatchMatMul / _FusedMatMul reach XNNPACK only with no transpose flags and batch 1 on both sides
//    (tfjs batch_mat_mul_impl.cc); everything else runs a ~2 GFLOP/s scalar loop, including both
//    matMul gradients. The wrappers transpose explicitly and fold a's batch into rows when b is a weight;
//    truly batched BatchMatMuls (attention) run one XNNPACK product per batch entry.
//  - Slice reads its input with backend.readSync, which copies the WHOLE tensor out of the heap for every slice
//    (176 ms to take 8192 rows of a [151936, 512] weight): the patch copies only the slice, from a heap view.
//  - Identity and same-dtype Cast copy the whole buffer; the engine clones EVERY tensor it saves for backward
//    through Identity, so each saved weight / activation existed twice (a [151936, 512] weight: +311 MB, 29 ms).
//    The patches share the buffer by reference count instead, as the cpu backend and wasm's own Reshape do.

import type { KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { applyPatch, callKernel, isPatched, type KernelPatch, removePatch, sizeOf } from './kernels.js';

const WASM = 'wasm';

/** Minimal view of the wasm backend internals the patches read. */
interface WasmData {
  memoryOffset: number | null;
  shape: number[];
  dtype: tf.DataType;
}
interface WasmBackendLike {
  dataIdMap: { get(id: object): WasmData | undefined; has(id: object): boolean };
  readSync(dataId: object): tf.backend_util.BackendValues;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  refCount(dataId: object): number;
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): tf.TypedArray;
}

const kernel = (
  name: string,
  backend: object,
  inputs: Record<string, TensorInfo>,
  attrs: NamedAttrMap = {},
) => callKernel(name, backend, inputs, attrs, WASM);
const release = (backend: object, infos: TensorInfo[]): void => {
  for (const t of infos) (backend as WasmBackendLike).disposeData(t.dataId);
};

/** Throws when a segment id is outside [0, numSegments): ScatterNd would write outside the output. */
function checkSegmentIds(backend: WasmBackendLike, ids: TensorInfo, numSegments: number): void {
  const vals = backend.readSync(ids.dataId) as Int32Array;
  for (let i = 0; i < vals.length; i++) {
    if (vals[i] < 0 || vals[i] >= numSegments) {
      throw new Error(
        `UnsortedSegmentSum (wasm patch): segment id ${vals[i]} at position ${i} is outside [0, ${numSegments}); ` +
          'check the indices passed to tf.gather / tf.unsortedSegmentSum.',
      );
    }
  }
}

/**
 * unsortedSegmentSum(x, ids, n) == scatterNd(ids[:, None], x, [n, ...]) because ScatterNd sums duplicates.
 * Shapes: x [N, ...inner], ids [N] (int32) -> out [numSegments, ...inner].
 */
const segmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  checkSegmentIds(backend as WasmBackendLike, segmentIds, numSegments);
  const n = sizeOf(segmentIds.shape);
  const inner = x.shape.slice(segmentIds.shape.length);
  const idx = kernel('Reshape', backend, { x: segmentIds }, { shape: [n, 1] });
  const upd = kernel('Reshape', backend, { x }, { shape: [n, ...inner] });
  try {
    return kernel('ScatterNd', backend, { indices: idx, updates: upd }, { shape: [numSegments, ...inner] });
  } finally {
    release(backend, [idx, upd]);
  }
};

/** Swap the last two axes with the Transpose kernel (a real copy, then XNNPACK sees no flag). */
function transposeLast2(backend: object, x: TensorInfo): TensorInfo {
  const r = x.shape.length;
  const perm = [...Array(r - 2).keys(), r - 1, r - 2];
  return kernel('Transpose', backend, { x }, { perm });
}

interface MatMulPlan {
  a: TensorInfo;
  b: TensorInfo;
  tmp: TensorInfo[];
  outShape: number[];
}

/**
 * Rewrite a matmul whose b has batch 1 as one [1, batchA*M, K] x [1, K, N] product.
 * Returns null when the fast path does not apply (true batched, non-float, mismatched K).
 */
function planFolded(backend: object, a0: TensorInfo, b0: TensorInfo, attrs: NamedAttrMap): MatMulPlan | null {
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const batchA = sizeOf(a0.shape.slice(0, -2));
  const batchB = sizeOf(b0.shape.slice(0, -2));
  if (batchB !== 1 || a0.dtype !== 'float32' || b0.dtype !== 'float32') return null;
  if (!transposeA && !transposeB && batchA === 1) return null; // already XNNPACK's fast path
  const kA = a0.shape.at(transposeA ? -2 : -1);
  const kB = b0.shape.at(transposeB ? -1 : -2);
  if (kA !== kB) return null; // let the stock kernel raise its usual shape error
  const a1 = transposeA ? transposeLast2(backend, a0) : a0;
  const b1 = transposeB ? transposeLast2(backend, b0) : b0;
  const tmp = [a1, b1].filter((t, i) => t !== [a0, b0][i]);
  const [m, k] = a1.shape.slice(-2);
  const n = b1.shape.at(-1) as number;
  const a = kernel('Reshape', backend, { x: a1 }, { shape: [1, batchA * m, k] });
  const b = kernel('Reshape', backend, { x: b1 }, { shape: [1, k, n] });
  tmp.push(a, b);
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(a0.shape.slice(0, -2), b0.shape.slice(0, -2));
  return { a, b, tmp, outShape: [...batch, m, n] };
}

/** Run `original` on the folded plan and reshape its [1, batchA*M, N] output back. */
function runFolded(
  original: KernelFunc,
  backend: object,
  plan: MatMulPlan,
  extra: Record<string, TensorInfo>,
  attrs: NamedAttrMap,
) {
  try {
    const inputs = { ...extra, a: plan.a, b: plan.b };
    const flat = original({
      inputs,
      backend,
      attrs: { ...attrs, transposeA: false, transposeB: false },
    }) as TensorInfo;
    const out = kernel('Reshape', backend, { x: flat }, { shape: plan.outShape });
    release(backend, [flat]);
    return out;
  } finally {
    release(backend, plan.tmp);
  }
}

/**
 * True batched product (both operands batched with the same batch dims, e.g. attention's `[B·H, T, Dh]`), one
 * XNNPACK product per batch entry: transpose flags applied once to the whole operand, each entry sliced (the
 * Slice patch copies only the slice), its `[1, M, N]` result copied into the output. null when not applicable.
 * The stock kernel runs these at ~2 GFLOP/s.
 */
function runPerBatch(
  original: KernelFunc,
  backend: object,
  a0: TensorInfo,
  b0: TensorInfo,
  attrs: NamedAttrMap,
): TensorInfo | null {
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const [batchDimsA, batchDimsB] = [a0.shape.slice(0, -2), b0.shape.slice(0, -2)];
  const batch = sizeOf(batchDimsA);
  if (batch <= 1 || a0.dtype !== 'float32' || b0.dtype !== 'float32') return null;
  if (batchDimsA.length !== batchDimsB.length || batchDimsA.some((d, i) => d !== batchDimsB[i])) return null;
  const be = backend as WasmBackendLike;
  const tmp: TensorInfo[] = [];
  const three = (x: TensorInfo, t: boolean) => {
    const [r, c] = x.shape.slice(-2);
    const x3 = kernel('Reshape', backend, { x }, { shape: [batch, r, c] });
    tmp.push(x3);
    if (!t) return x3;
    const xt = transposeLast2(backend, x3);
    tmp.push(xt);
    return xt;
  };
  try {
    const [a, b] = [three(a0, transposeA), three(b0, transposeB)];
    const [m, k] = a.shape.slice(1);
    const n = b.shape[2];
    if (b.shape[1] !== k) return null; // let the stock kernel raise its usual shape error
    const out = be.makeOutput([...batchDimsA, m, n], 'float32');
    for (let i = 0; i < batch; i++) {
      const ai = kernel('Slice', backend, { x: a }, { begin: [i, 0, 0], size: [1, m, k] });
      const bi = kernel('Slice', backend, { x: b }, { begin: [i, 0, 0], size: [1, k, n] });
      const yi = original({
        inputs: { a: ai, b: bi },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      }) as TensorInfo;
      // Views after every allocation above (a heap growth detaches older views).
      be.typedArrayFromHeap(out).set(be.typedArrayFromHeap(yi), i * m * n);
      release(backend, [ai, bi, yi]);
    }
    return out;
  } finally {
    release(backend, tmp);
  }
}

/** BatchMatMul: weight-style products go to XNNPACK folded; true batched (attention) products per batch entry. */
function fastBatchMatMul(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('wasm BatchMatMul kernel missing: is @tensorflow/tfjs-backend-wasm 4.22.0 installed?');
  return (params) => {
    const { a, b } = params.inputs as { a: TensorInfo; b: TensorInfo };
    const attrs = params.attrs ?? {};
    const plan = planFolded(params.backend, a, b, attrs);
    if (plan) return runFolded(original, params.backend, plan, {}, attrs);
    return runPerBatch(original, params.backend, a, b, attrs) ?? original(params);
  };
}

/** _FusedMatMul (+bias, activation): same rewrite when the bias is rank 1 and prelu weights are not batched. */
function fastFusedMatMul(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('wasm _FusedMatMul kernel missing: is @tensorflow/tfjs-backend-wasm 4.22.0 installed?');
  return (params) => {
    const {
      a,
      b,
      bias,
      preluActivationWeights: prelu,
    } = params.inputs as Record<string, TensorInfo | undefined>;
    if (!a || !b || (prelu && prelu.shape.length > 1)) return original(params);
    const plan = planFolded(params.backend, a, b, params.attrs ?? {});
    if (!plan) return original(params);
    const extra: Record<string, TensorInfo> = {};
    if (bias) extra.bias = bias;
    if (prelu) extra.preluActivationWeights = prelu;
    return runFolded(original, params.backend, plan, extra, params.attrs ?? {});
  };
}

/**
 * Copy the box `begin`/`size` of row-major `src` (shape `shape`, rank <= 4) into `dst`, one contiguous innermost
 * run at a time. Shapes are padded on the left to rank 4.
 */
function copyBox(
  src: tf.TypedArray,
  shape: number[],
  begin: number[],
  size: number[],
  dst: tf.TypedArray,
): void {
  const left = (a: number[], fill: number) => [...Array(4 - a.length).fill(fill), ...a];
  const [s, b, z] = [left(shape, 1), left(begin, 0), left(size, 1)];
  const [, s1, s2, s3] = s;
  let o = 0;
  for (let i = b[0]; i < b[0] + z[0]; i++)
    for (let j = b[1]; j < b[1] + z[1]; j++)
      for (let k = b[2]; k < b[2] + z[2]; k++) {
        const from = ((i * s1 + j) * s2 + k) * s3 + b[3];
        dst.set(src.subarray(from, from + z[3]), o);
        o += z[3];
      }
}

/** Slice that copies only the sliced elements (stock wasm copies the whole input first); rank <= 4, numeric. */
function fastSlice(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('wasm Slice kernel missing: is @tensorflow/tfjs-backend-wasm 4.22.0 installed?');
  return (params) => {
    const { x } = params.inputs as { x: TensorInfo };
    const { begin, size } = params.attrs as { begin: number | number[]; size?: number | number[] };
    const [b, z] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, begin, size);
    if (x.dtype === 'string' || x.shape.length > 4 || sizeOf(z) === 0) return original(params);
    const backend = params.backend as WasmBackendLike;
    const out = backend.makeOutput(z, x.dtype);
    // Views are taken after makeOutput: its malloc may grow (and so detach) the heap buffer.
    const [src, dst] = [backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out)];
    if (tf.slice_util.isSliceContinous(x.shape, b, z)) {
      const from = tf.slice_util.computeFlatOffset(b, tf.util.computeStrides(x.shape));
      dst.set(src.subarray(from, from + dst.length));
    } else copyBox(src, x.shape, b, z, dst);
    return out;
  };
}

/** A new TensorInfo on `x`'s buffer (reference counted, like wasm Reshape): no copy. */
function share(backend: object, x: TensorInfo, dtype: tf.DataType = x.dtype): TensorInfo {
  (backend as WasmBackendLike).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype };
}

/** Identity that shares the input buffer (stock wasm copies it; strings keep the stock path). */
function sharedIdentity(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('wasm Identity kernel missing: is @tensorflow/tfjs-backend-wasm 4.22.0 installed?');
  return (params) => {
    const { x } = params.inputs as { x: TensorInfo };
    return x.dtype === 'string' ? original(params) : share(params.backend, x);
  };
}

/** Cast to the dtype the input already has shares the buffer; real conversions keep the stock kernel. */
function sharedCast(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('wasm Cast kernel missing: is @tensorflow/tfjs-backend-wasm 4.22.0 installed?');
  return (params) => {
    const { x } = params.inputs as { x: TensorInfo };
    const { dtype } = params.attrs as { dtype: tf.DataType };
    return dtype === x.dtype && dtype !== 'string' ? share(params.backend, x) : original(params);
  };
}

/** The wasm kernel patches, in install order. */
export const WASM_PATCHES: readonly KernelPatch[] = [
  {
    id: 'wasm.UnsortedSegmentSum',
    kernelName: 'UnsortedSegmentSum',
    backendName: WASM,
    make: () => segmentSum,
  },
  { id: 'wasm.BatchMatMul', kernelName: 'BatchMatMul', backendName: WASM, make: fastBatchMatMul },
  { id: 'wasm._FusedMatMul', kernelName: '_FusedMatMul', backendName: WASM, make: fastFusedMatMul },
  { id: 'wasm.Slice', kernelName: 'Slice', backendName: WASM, make: fastSlice },
  { id: 'wasm.Identity', kernelName: 'Identity', backendName: WASM, make: sharedIdentity },
  { id: 'wasm.Cast', kernelName: 'Cast', backendName: WASM, make: sharedCast },
];

/**
 * Install the wasm kernel patches (idempotent). Returns the ids installed by this call.
 * UnsortedSegmentSum is only added when the backend has none (a future tfjs may ship it).
 * @example installWasmPatches() // ['wasm.UnsortedSegmentSum', 'wasm.BatchMatMul', …, 'wasm.Identity', 'wasm.Cast']
 */
export function installWasmPatches(): string[] {
  const done: string[] = [];
  for (const p of WASM_PATCHES) {
    const stock = tf.getKernel(p.kernelName, WASM);
    if (p.kernelName === 'UnsortedSegmentSum' && stock && !isPatched(p)) continue;
    if (applyPatch(p)) done.push(p.id);
  }
  return done;
}

/**
 * Restore the stock wasm kernels (benchmarks compare both). Returns the ids removed.
 * @example removeWasmPatches(); runStock(); installWasmPatches();
 */
export function removeWasmPatches(): string[] {
  return WASM_PATCHES.filter((p) => removePatch(p)).map((p) => p.id);
}

/** Ids of the wasm patches currently active. */
export function activeWasmPatches(): string[] {
  return WASM_PATCHES.filter((p) => isPatched(p)).map((p) => p.id);
}

/**
 * A new float32 tensor on the wasm heap with UNINITIALISED contents (the caller fills it through
 * {@link ownedWasmView} before any other allocation), or null on another backend. Use it instead of an in-place
 * write for tensors that may be matMul weights: XNNPACK caches packed weights by tensor id, so a weight written in
 * place would keep being multiplied with its old values; a new buffer gets a new id.
 * @example const out = newWasmTensor([V, D]); const o = out && ownedWasmView(out); // fill o, then p.assign(out)
 */
export function newWasmTensor(shape: number[]): tf.Tensor | null {
  if (tf.getBackend() !== WASM) return null;
  const info = (tf.backend() as unknown as WasmBackendLike).makeOutput(shape, 'float32');
  const eng = tf.engine() as unknown as { makeTensorFromTensorInfo(i: TensorInfo): tf.Tensor };
  return eng.makeTensorFromTensorInfo(info);
}

/**
 * A Float32Array view of `t`'s buffer on the wasm heap, for in-place updates of tensors the caller alone owns,
 * or null when that is not safe or possible: another backend, not float32, or the buffer is shared by another
 * tensor (reshape / clone / saved for backward share buffers, and all of them would see the write).
 * The view detaches when the heap grows: use it before allocating any tensor. Never write a tensor in place that
 * a matMul may use as its weight operand (XNNPACK caches packed weights by id): see {@link newWasmTensor}.
 * @example const v = ownedWasmView(acc); if (v) v[0] += 1; else acc = tf.add(acc, oneHot);
 */
export function ownedWasmView(t: tf.Tensor): Float32Array | null {
  if (tf.getBackend() !== WASM || t.dtype !== 'float32' || t.isDisposed) return null;
  const be = tf.backend() as unknown as WasmBackendLike;
  if (!be.dataIdMap.has(t.dataId) || be.refCount(t.dataId) !== 1) return null;
  return be.typedArrayFromHeap(t) as Float32Array;
}

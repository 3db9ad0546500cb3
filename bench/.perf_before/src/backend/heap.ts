// Live-bytes guard for the wasm backend. The wasm32 heap tops out at 4 GiB (getHeapMax() = 4294901760,
// ~3.84 GiB usable); past it `_malloc` returns 0, tfjs does not check, and new tensors alias offset 0:
// values of other tensors are silently overwritten (measured: 3 of 17 tensors corrupted).
// Every JS-side heap allocation of the backend goes through `move` (write() and makeOutput() call it),
// so wrapping `move`, `makeOutput` (C++-allocated outputs) and `disposeData` on the backend instance
// counts exactly the bytes held by tensor buffers, and throws BEFORE an allocation that would pass the limit.
// A second check catches `_malloc` returning 0 (heap used by XNNPACK caches is not counted above).
import * as tf from '@tensorflow/tfjs-core';

/** wasm32 hard maximum (tfjs-backend-wasm 4.22, `wasm.getHeapMax()`). */
export const WASM_HEAP_MAX = 4294901760;
/** Default limit for live tensor bytes on wasm: 3.5 GiB leaves room for XNNPACK caches and the runtime. */
export const DEFAULT_WASM_MAX_BYTES = 3.5 * 2 ** 30;

interface WasmData {
  memoryOffset: number | null;
  shape: number[];
  dtype: tf.DataType;
}
interface GuardedBackend {
  dataIdMap: { get(id: object): WasmData | undefined; has(id: object): boolean };
  move(dataId: object, values: unknown, shape: number[], dtype: tf.DataType, refCount: number): void;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: unknown): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** Guard state per backend instance. */
export interface WasmHeapGuard {
  /** Throw when live tensor bytes would exceed this. */
  limit: number;
  /** Bytes currently held by wasm tensor buffers (tracked since the guard was installed). */
  live: number;
}

const guards = new WeakMap<object, WasmHeapGuard>();

const bytesOf = (shape: number[], dtype: tf.DataType): number =>
  dtype === 'string' ? 0 : tf.util.sizeFromShape(shape) * tf.util.bytesPerElement(dtype);
const gib = (n: number): string =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(2)} MiB`;

/** Validate a user-supplied limit; the message says what is allowed. */
export function checkWasmMaxBytes(limit: number): number {
  if (!Number.isFinite(limit) || limit <= 0 || limit > WASM_HEAP_MAX) {
    throw new Error(
      `wasmMaxBytes must be a number of bytes in (0, ${WASM_HEAP_MAX}] (the wasm32 heap maximum), got ${limit}; ` +
        `the default is ${DEFAULT_WASM_MAX_BYTES} (3.5 GiB).`,
    );
  }
  return limit;
}

function overLimitError(g: WasmHeapGuard, bytes: number, shape: number[], dtype: tf.DataType): Error {
  return new Error(
    `wasm heap guard: allocating ${bytes} bytes for a [${shape.join(',')}] ${dtype} tensor would bring live tensor ` +
      `memory to ${gib(g.live + bytes)}, above the limit of ${gib(g.limit)}. The wasm32 heap is 4 GiB and tfjs ` +
      'silently corrupts tensors past it. Dispose tensors you no longer need (tf.tidy / tf.dispose), shrink the ' +
      'model, batch or sequence length, use another backend, or change the limit with initBackend({ wasmMaxBytes }).',
  );
}

function wrapMove(be: GuardedBackend, g: WasmHeapGuard): void {
  const move = be.move.bind(be);
  const dispose = be.disposeData.bind(be);
  be.move = (dataId, values, shape, dtype, refCount) => {
    const bytes = bytesOf(shape, dtype);
    if (g.live + bytes > g.limit) throw overLimitError(g, bytes, shape, dtype);
    move(dataId, values, shape, dtype, refCount);
    if (bytes > 0 && be.dataIdMap.get(dataId)?.memoryOffset === 0) {
      dispose(dataId, true);
      throw new Error(
        `wasm heap exhausted: malloc of ${bytes} bytes returned 0 with ${gib(g.live)} of tensors live ` +
          '(the rest is held by XNNPACK caches / fragmentation). Lower initBackend({ wasmMaxBytes }) or free tensors.',
      );
    }
    g.live += bytes;
  };
}

function wrapOutputAndDispose(be: GuardedBackend, g: WasmHeapGuard): void {
  const makeOutput = be.makeOutput.bind(be);
  const dispose = be.disposeData.bind(be);
  be.makeOutput = (shape, dtype, memoryOffset, values) => {
    const out = makeOutput(shape, dtype, memoryOffset, values);
    if (memoryOffset != null) g.live += bytesOf(shape, dtype); // allocated in C++, not via move
    return out;
  };
  be.disposeData = (dataId, force) => {
    const d = be.dataIdMap.get(dataId);
    const freed = dispose(dataId, force);
    if (d && d.memoryOffset != null && !be.dataIdMap.has(dataId))
      g.live = Math.max(0, g.live - bytesOf(d.shape, d.dtype));
    return freed;
  };
}

/**
 * Install (or re-limit) the guard on a wasm backend instance. Idempotent: a second call only updates the limit.
 * Tensors created before the first call are estimated with tf.memory().numBytes.
 * @example installWasmHeapGuard(tf.findBackend('wasm'), 64 * 2 ** 20) // throw beyond 64 MiB of tensors
 */
export function installWasmHeapGuard(backend: object, limit = DEFAULT_WASM_MAX_BYTES): WasmHeapGuard {
  checkWasmMaxBytes(limit);
  const existing = guards.get(backend);
  if (existing) {
    existing.limit = limit;
    return existing;
  }
  const g: WasmHeapGuard = { limit, live: tf.getBackend() === 'wasm' ? tf.memory().numBytes : 0 };
  const be = backend as GuardedBackend;
  wrapMove(be, g);
  wrapOutputAndDispose(be, g);
  guards.set(backend, g);
  return g;
}

/**
 * The guard of a backend instance, or null when none is installed.
 * @example wasmHeapGuard(tf.backend())?.live // bytes held by wasm tensors
 */
export function wasmHeapGuard(backend: object): WasmHeapGuard | null {
  return guards.get(backend) ?? null;
}

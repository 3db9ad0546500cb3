// Kernel patch registry: replace or add a tfjs kernel for one backend, remember the original,
// and undo it. Used by the wasm and webgpu patches (tfjs 4.22 is in maintenance mode, so its
// kernel bugs are ours to work around). Registering is idempotent.

import type {
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';

/** A replacement kernel: `make(original)` builds it from the stock kernel (null when the backend has none). */
export interface KernelPatch {
  /** Short id used in logs and docs, e.g. `wasm.BatchMatMul`. */
  id: string;
  kernelName: string;
  backendName: string;
  make: (original: KernelFunc | null) => KernelFunc;
}

interface Installed {
  original: KernelConfig | null;
  patched: KernelFunc;
}

const installed = new Map<string, Installed>();
const key = (kernelName: string, backendName: string): string => `${backendName}/${kernelName}`;

/** The kernel currently registered for (kernelName, backendName), or null. */
export function findKernel(kernelName: string, backendName: string): KernelConfig | null {
  return tf.getKernel(kernelName, backendName) ?? null;
}

/**
 * Install a patch unless it is already active. Returns true when it was installed now.
 * @example applyPatch(segmentSumPatch) // true the first time, false afterwards
 */
export function applyPatch(patch: KernelPatch): boolean {
  const k = key(patch.kernelName, patch.backendName);
  const current = findKernel(patch.kernelName, patch.backendName);
  const done = installed.get(k);
  if (done && current?.kernelFunc === done.patched) return false;
  const original = current ? { ...current } : null;
  const patched = patch.make(original?.kernelFunc ?? null);
  if (current) tf.unregisterKernel(patch.kernelName, patch.backendName);
  // Keep the stock setup/dispose functions: they initialise wasm cwraps if the backend is re-created.
  tf.registerKernel({
    ...(original ?? {}),
    kernelName: patch.kernelName,
    backendName: patch.backendName,
    kernelFunc: patched,
  });
  installed.set(k, { original, patched });
  return true;
}

/** Restore the stock kernel (or remove an added one). Returns true when something was undone. */
export function removePatch(patch: Pick<KernelPatch, 'kernelName' | 'backendName'>): boolean {
  const k = key(patch.kernelName, patch.backendName);
  const done = installed.get(k);
  if (!done) return false;
  tf.unregisterKernel(patch.kernelName, patch.backendName);
  if (done.original) tf.registerKernel(done.original);
  installed.delete(k);
  return true;
}

/** True when `patch` is the active kernel. */
export function isPatched(patch: Pick<KernelPatch, 'kernelName' | 'backendName'>): boolean {
  const done = installed.get(key(patch.kernelName, patch.backendName));
  return done !== undefined && findKernel(patch.kernelName, patch.backendName)?.kernelFunc === done.patched;
}

/** Call a registered kernel directly (inside another kernel); its output belongs to the caller. */
export function callKernel(
  kernelName: string,
  backend: object,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap = {},
  backendName = tf.getBackend(),
): TensorInfo {
  const k = findKernel(kernelName, backendName);
  if (!k) throw new Error(`kernel ${kernelName} is not registered for backend ${backendName}`);
  return k.kernelFunc({ inputs, backend, attrs }) as TensorInfo;
}

/** Product of a shape's dims (1 for a scalar / empty batch). */
export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

// WebGPU in Node through Dawn (`webgpu` npm package) for @tensorflow/tfjs-backend-webgpu 4.22.
// - Real GPUs: Dawn's default instance (Vulkan on Linux) in core mode.
// - No GPU (CI, this box): Mesa's lavapipe is rejected by Dawn, so we use Dawn's OpenGL ES backend over
//   EGL surfaceless on llvmpipe, which needs WebGPU "compatibility" mode; tfjs does not ask for it, so
//   navigator.gpu.requestAdapter is wrapped. tfjs registers the backend only if navigator.gpu exists at
//   import time, hence the dynamic import after the globals are set.
// - tfjs creates the device with default maxStorageBuffersPerShaderStage (8); AddN binds n+1 storage
//   buffers without chunking, so addN of >7 tensors builds an invalid pipeline and returns zeros while
//   Dawn only logs. We request the adapter's limits, chunk AddN, and turn `uncapturederror` into a throw.

import type { KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { applyPatch, type KernelPatch } from './kernels.js';

type Dawn = { create(flags: string[]): GPU; globals: object };

/** An adapter found by {@link findWebgpuAdapter}, with how to request it again. */
export interface WebgpuChoice {
  gpu: GPU;
  options: GPURequestAdapterOptions;
  description: string;
  software: boolean;
  /** 'core' (Dawn default, Vulkan on Linux) or 'compat' (OpenGL ES via EGL surfaceless). */
  mode: 'core' | 'compat';
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe|software|null-backend|basic render/i;
/** Debian packages Dawn's OpenGL ES path loads (libEGL.so is in libegl-dev; swrast_dri.so in libgl1-mesa-dri). */
export const GL_APT_PACKAGES = 'libegl1 libegl-dev libegl-mesa0 libgl1-mesa-dri libgbm1';

/** Human-readable adapter name, e.g. `llvmpipe-llvm-15-0-6-256-bits- (OpenGL version OpenGL ES 3.2 Mesa 22.3.6)`. */
export function describeAdapter(info: GPUAdapterInfo): string {
  const name = info.device || info.vendor || info.architecture || 'unknown adapter';
  return info.description ? `${name} (${info.description})` : name;
}

/**
 * True for CPU rasterisers (llvmpipe, lavapipe, SwiftShader) and Dawn's null backend.
 * @example isSoftwareAdapter(adapter.info) // true on Mesa llvmpipe
 */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return fallback || SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
}

let dawnCreated = false;
/** True once a Dawn instance was created in this process (its GL path loads Mesa's libLLVM; see index.ts). */
export const dawnStarted = (): boolean => dawnCreated;

async function loadDawn(): Promise<Dawn | string> {
  try {
    return (await import('webgpu')) as unknown as Dawn;
  } catch (e) {
    return `the 'webgpu' package (Dawn) failed to load: ${(e as Error).message.split('\n')[0]}`;
  }
}

async function tryAdapter(
  dawn: Dawn,
  flags: string[],
  options: GPURequestAdapterOptions,
  mode: WebgpuChoice['mode'],
) {
  dawnCreated = true;
  const gpu = dawn.create(flags);
  const adapter = await gpu.requestAdapter(options);
  if (!adapter) return null;
  const choice: WebgpuChoice = {
    gpu,
    options,
    mode,
    description: describeAdapter(adapter.info),
    software: isSoftwareAdapter(adapter.info),
  };
  return choice;
}

/**
 * Find a WebGPU adapter. Without `allowSoftware` only a real GPU in core mode counts; with it, a software
 * core adapter or, failing that, OpenGL ES in compatibility mode (sets EGL_PLATFORM=surfaceless if unset).
 * Returns the choice, or a sentence saying why there is none.
 * @example const c = await findWebgpuAdapter(false); if (typeof c === 'string') console.log('skip:', c);
 */
export async function findWebgpuAdapter(allowSoftware: boolean): Promise<WebgpuChoice | string> {
  const dawn = await loadDawn();
  if (typeof dawn === 'string') return dawn;
  const core = await tryAdapter(dawn, [], { powerPreference: 'high-performance' }, 'core');
  if (core && !core.software) return core;
  if (!allowSoftware) {
    return core
      ? `only a software adapter: ${core.description} (force it with backend 'webgpu')`
      : "no GPU adapter (Dawn found no Vulkan device); force backend 'webgpu' to use OpenGL ES on llvmpipe";
  }
  if (core) return core;
  process.env.EGL_PLATFORM ??= 'surfaceless'; // Dawn's EGL display needs no X/Wayland server this way
  const gl = await tryAdapter(dawn, ['backend=opengles'], { featureLevel: 'compatibility' }, 'compat');
  return (
    gl ?? `no adapter: no Vulkan device and Dawn's OpenGL ES backend failed (install ${GL_APT_PACKAGES})`
  );
}

/** Ask for the adapter maxima tfjs leaves at defaults (128 MiB bindings, 8 storage buffers per stage). */
function withAdapterLimits(adapter: GPUAdapter): GPUAdapter {
  const requestDevice = adapter.requestDevice.bind(adapter);
  const L = adapter.limits;
  adapter.requestDevice = (desc?: GPUDeviceDescriptor) =>
    requestDevice({
      ...desc,
      requiredLimits: {
        ...desc?.requiredLimits,
        maxBufferSize: L.maxBufferSize,
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      },
    });
  return adapter;
}

/** navigator.gpu for tfjs: every requestAdapter re-requests the chosen adapter with our options and limits. */
function exposeGpu(dawn: Dawn, choice: WebgpuChoice): void {
  for (const [k, v] of Object.entries(dawn.globals))
    if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
  const shim = {
    requestAdapter: async (o?: GPURequestAdapterOptions) => {
      const a = await choice.gpu.requestAdapter({ ...o, ...choice.options });
      return a && withAdapterLimits(a);
    },
    getPreferredCanvasFormat: () => 'rgba8unorm',
    wgslLanguageFeatures: choice.gpu.wgslLanguageFeatures,
  };
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav && typeof nav === 'object')
    Object.defineProperty(nav, 'gpu', { value: shim, configurable: true, writable: true });
  else
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu: shim },
      configurable: true,
      writable: true,
    });
}

interface WebgpuBackendLike {
  device: GPUDevice;
  read(dataId: object): Promise<tf.backend_util.BackendValues>;
}

const pending = new WeakMap<object, string[]>();

/** Throw (once) the validation errors Dawn reported since the last check. */
function throwPending(backend: object): void {
  const errs = pending.get(backend);
  if (!errs || errs.length === 0) return;
  const all = errs.splice(0);
  throw new Error(
    `WebGPU error reported by Dawn (${all.length} message${all.length > 1 ? 's' : ''}); the results of the ` +
      `kernels since the previous read are invalid. First: ${all[0]}`,
  );
}

/**
 * Make Dawn's asynchronous validation errors fatal. Dawn only logs them and the kernel output is garbage;
 * the `uncapturederror` events arrive while a readback is awaited, so the wrapped `backend.read`
 * (behind `await tensor.data()`) throws after the read resolves. Idempotent per backend.
 */
export function surfaceWebgpuErrors(backend: object): void {
  if (pending.has(backend)) return;
  const be = backend as WebgpuBackendLike;
  const errs: string[] = [];
  pending.set(backend, errs);
  be.device.addEventListener('uncapturederror', (ev) => {
    errs.push(String((ev as GPUUncapturedErrorEvent).error.message).split('\n')[0]);
  });
  void be.device.lost.then((info) => {
    if (info.reason !== 'destroyed') errs.push(`device lost: ${info.message}`);
  });
  const read = be.read.bind(be);
  be.read = async (dataId) => {
    const values = await read(dataId);
    throwPending(backend);
    return values;
  };
}

/**
 * Wait for the GPU queue to drain, then throw if Dawn reported errors. Call at log steps on webgpu.
 * @example await checkWebgpuErrors(); // after an optimizer step
 */
export async function checkWebgpuErrors(): Promise<void> {
  const be = tf.backend() as Partial<WebgpuBackendLike>;
  if (tf.getBackend() !== 'webgpu' || !be.device) return;
  await be.device.queue.onSubmittedWorkDone();
  throwPending(be);
}

/** AddN in chunks of (maxStorageBuffersPerShaderStage - 1) inputs: one binding is the output. */
function chunkedAddN(original: KernelFunc | null): KernelFunc {
  if (!original)
    throw new Error('webgpu AddN kernel missing: is @tensorflow/tfjs-backend-webgpu 4.22.0 installed?');
  const addN = (inputs: TensorInfo[], backend: object): TensorInfo => {
    const maxIn = (backend as WebgpuBackendLike).device.limits.maxStorageBuffersPerShaderStage - 1;
    // NOTE: tfjs passes AddN's inputs as an array, not a name map.
    if (inputs.length <= maxIn)
      return original({ inputs: inputs as unknown as NamedTensorInfoMap, backend }) as TensorInfo;
    const partial: TensorInfo[] = [];
    for (let i = 0; i < inputs.length; i += maxIn) partial.push(addN(inputs.slice(i, i + maxIn), backend));
    const out = addN(partial, backend);
    for (const p of partial) (backend as tf.KernelBackend).disposeData(p.dataId);
    return out;
  };
  return ({ inputs, backend }) => addN(Object.values(inputs) as TensorInfo[], backend);
}

/** The webgpu kernel patches. */
export const WEBGPU_PATCHES: readonly KernelPatch[] = [
  { id: 'webgpu.AddN', kernelName: 'AddN', backendName: 'webgpu', make: chunkedAddN },
];

/**
 * Expose `choice` as navigator.gpu, import the tfjs webgpu backend, select it, and install the AddN patch
 * and error surfacing. Returns null on success or the reason it failed.
 */
export async function activateWebgpu(choice: WebgpuChoice): Promise<string | null> {
  const dawn = await loadDawn();
  if (typeof dawn === 'string') return dawn;
  exposeGpu(dawn, choice);
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) return `tfjs could not initialise webgpu on ${choice.description}`;
  await tf.ready();
  for (const p of WEBGPU_PATCHES) applyPatch(p);
  surfaceWebgpuErrors(tf.backend());
  return null;
}

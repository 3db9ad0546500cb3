// initBackend: choose and initialise the tfjs backend, install our kernel patches. This is the only
// global state of the library. Order for 'auto' (docs/backends.md): tfjs-node-gpu, tfjs-node (both built by
// `ovr-train native`), webgpu on a real GPU, wasm (XNNPACK + patches), cpu. Library code never reads the
// environment (the CLI passes ovrBackendFromEnv(process.env) in); the only writes are EGL_PLATFORM=surfaceless
// for Dawn's GL path and a TF_CPP_MIN_LOG_LEVEL default for TensorFlow's start-up log.
import '@tensorflow/tfjs-backend-cpu';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { ensureGradients } from './gradients.js';
import { checkWasmMaxBytes, DEFAULT_WASM_MAX_BYTES, installWasmHeapGuard } from './heap.js';
import { NATIVE_PACKAGES, nativeInfo, nativeNotInstalled, tryNativeBackend } from './native.js';
import { activeWasmPatches, installWasmPatches } from './wasm.js';
import { activateWebgpu, dawnStarted, findWebgpuAdapter, WEBGPU_PATCHES } from './webgpu.js';

export const BACKEND_NAMES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
/** What the caller asks for. */
export type BackendRequest = (typeof BACKEND_NAMES)[number];
/** The tfjs backend that ends up active. */
export type BackendName = Exclude<BackendRequest, 'auto'>;

export interface InitBackendOptions {
  /** 'auto' (default) or a backend to force; forcing one that cannot start throws. */
  backend?: BackendRequest;
  /** Receives the one line saying what was chosen and why others were skipped (default: console.error). */
  log?: (line: string) => void;
  /** Limit for live wasm tensor bytes (default 3.5 GiB; the wasm32 heap is 4 GiB). */
  wasmMaxBytes?: number;
}

export interface BackendInfo {
  name: BackendName;
  /** Why this backend: what it runs on. */
  reason: string;
  /** Candidates tried before it, with the reason each was passed over. */
  skipped: { name: string; why: string }[];
  /** Ids of our kernel patches active on it. */
  patches: string[];
}

type Attempt = { ok: true; reason: string; patches: string[] } | { ok: false; why: string };
type Candidate = {
  name: string;
  backend: BackendName;
  start: (forced: boolean, o: InitBackendOptions) => Promise<Attempt>;
};

const fail = (why: string): Attempt => ({ ok: false, why });

// NOTE: libtensorflow_cc 2.21 exports ~87k LLVM symbols (XLA/MLIR); loaded after Dawn's GL path has pulled in
// Mesa's libLLVM-15 (llvmpipe), its references bind to Mesa's LLVM and the process dies with SIGSEGV. Loaded
// first, both work. So once Dawn has started, a first load of TensorFlow is refused with a clear reason.
let nativeLoaded = false;

async function startNative(pkg: (typeof NATIVE_PACKAGES)[number]): Promise<Attempt> {
  // A package that is not there is named as such first: the Dawn order only matters for one that could load.
  const missing = nativeNotInstalled(pkg);
  if (missing) return fail(missing);
  if (dawnStarted() && !nativeLoaded)
    return fail(
      "not loaded after webgpu in one process (TensorFlow's LLVM symbols bind to Mesa's and crash): start 'tensorflow' before 'webgpu', or use separate processes",
    );
  const why = await tryNativeBackend(pkg);
  if (!why) nativeLoaded = true;
  if (why) return fail(why);
  const { tfVersion, devices } = nativeInfo();
  return { ok: true, reason: `${pkg}, TensorFlow ${tfVersion} on ${devices.join(' + ')}`, patches: [] };
}

async function startWebgpu(forced: boolean): Promise<Attempt> {
  const choice = await findWebgpuAdapter(forced);
  if (typeof choice === 'string') return fail(choice);
  const why = await activateWebgpu(choice);
  if (why) return fail(why);
  const kind = choice.software ? 'software adapter, a correctness path only' : 'GPU';
  return {
    ok: true,
    reason: `Dawn ${choice.mode} mode on ${choice.description} (${kind})`,
    patches: WEBGPU_PATCHES.map((p) => p.id),
  };
}

async function startWasm(o: InitBackendOptions): Promise<Attempt> {
  if (!(await tf.setBackend('wasm'))) return fail('tfjs could not initialise the wasm backend');
  installWasmPatches();
  const limit = o.wasmMaxBytes ?? DEFAULT_WASM_MAX_BYTES;
  installWasmHeapGuard(tf.findBackend('wasm'), limit);
  const gib = (limit / 2 ** 30).toFixed(2);
  return {
    ok: true,
    reason: `XNNPACK SIMD, ${getThreadsCount()} thread(s), heap guard ${gib} GiB`,
    patches: activeWasmPatches(),
  };
}

async function startCpu(): Promise<Attempt> {
  if (!(await tf.setBackend('cpu'))) return fail('tfjs could not initialise the cpu backend');
  return { ok: true, reason: 'pure-JS reference backend (~1 GFLOP/s)', patches: [] };
}

const CANDIDATES: readonly Candidate[] = [
  { name: NATIVE_PACKAGES[0], backend: 'tensorflow', start: () => startNative(NATIVE_PACKAGES[0]) },
  { name: NATIVE_PACKAGES[1], backend: 'tensorflow', start: () => startNative(NATIVE_PACKAGES[1]) },
  { name: 'webgpu', backend: 'webgpu', start: (forced) => startWebgpu(forced) },
  { name: 'wasm', backend: 'wasm', start: (_f, o) => startWasm(o) },
  { name: 'cpu', backend: 'cpu', start: () => startCpu() },
];

function checkRequest(backend: unknown): BackendRequest {
  if (typeof backend === 'string' && (BACKEND_NAMES as readonly string[]).includes(backend))
    return backend as BackendRequest;
  throw new Error(
    `unknown backend '${String(backend)}': use one of ${BACKEND_NAMES.join(', ')} (e.g. OVR_BACKEND=wasm).`,
  );
}

/** Try the candidates for `request` in order; the first that starts wins. */
async function choose(request: BackendRequest, o: InitBackendOptions): Promise<BackendInfo> {
  const forced = request !== 'auto';
  const skipped: BackendInfo['skipped'] = [];
  for (const c of CANDIDATES.filter((c) => !forced || c.backend === request)) {
    const r = await c.start(forced, o);
    if (r.ok)
      return {
        name: c.backend,
        reason: forced ? `forced; ${r.reason}` : r.reason,
        skipped,
        patches: r.patches,
      };
    skipped.push({ name: c.name, why: r.why });
  }
  const whys = skipped.map((s) => `${s.name}: ${s.why}`).join('; ');
  throw new Error(
    `backend '${request}' could not start (${whys}). Try another with initBackend({ backend }) or OVR_BACKEND.`,
  );
}

/**
 * One log line: what was chosen, why, and why the others were skipped.
 * @example formatBackendLine({ name: 'cpu', reason: 'forced', skipped: [], patches: [] }) // 'ovr backend: cpu (forced)'
 */
export function formatBackendLine(info: BackendInfo): string {
  const skips = info.skipped.map((s) => `${s.name}: ${s.why}`).join('; ');
  const patches = info.patches.length ? `; patches ${info.patches.join(', ')}` : '';
  return `ovr backend: ${info.name} (${info.reason}${patches})${skips ? ` | skipped ${skips}` : ''}`;
}

let current: { request: BackendRequest; info: BackendInfo } | null = null;
let queue: Promise<unknown> = Promise.resolve();

async function init(o: InitBackendOptions): Promise<BackendInfo> {
  const request = checkRequest(o.backend ?? 'auto');
  if (o.wasmMaxBytes !== undefined) checkWasmMaxBytes(o.wasmMaxBytes);
  if (current && current.request === request && tf.getBackend() === current.info.name) {
    if (o.wasmMaxBytes !== undefined && current.info.name === 'wasm')
      installWasmHeapGuard(tf.backend(), o.wasmMaxBytes);
    return current.info;
  }
  await ensureGradients();
  const info = await choose(request, o);
  current = { request, info };
  (o.log ?? ((line: string) => console.error(line)))(formatBackendLine(info));
  return info;
}

/**
 * Select and initialise the tfjs backend and our patches, and register tfjs-core's gradients (its node
 * bundle has none; see gradients.ts). Idempotent: a repeated call with the same
 * request returns the same info without logging (a new `wasmMaxBytes` still applies); a different request
 * switches backend. Calls are serialised.
 * @example
 * const be = await initBackend({ backend: ovrBackendFromEnv(process.env) });
 * // stderr: ovr backend: wasm (XNNPACK SIMD, 1 thread(s), …) | skipped @tensorflow/tfjs-node-gpu: not installed …
 */
export function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  const run = queue.then(() => init(options));
  queue = run.catch(() => undefined);
  return run;
}

/**
 * The active backend info, or null before initBackend (or after tf.setBackend elsewhere).
 * @example currentBackend()?.name // 'wasm'
 */
export function currentBackend(): BackendInfo | null {
  return current && tf.getBackend() === current.info.name ? current.info : null;
}

/**
 * Read OVR_BACKEND at the CLI boundary ('auto' when unset or empty).
 * @example ovrBackendFromEnv({ OVR_BACKEND: 'webgpu' }) // 'webgpu'
 */
export function ovrBackendFromEnv(env: Record<string, string | undefined>): BackendRequest {
  const raw = env.OVR_BACKEND?.trim().toLowerCase();
  if (!raw) return 'auto';
  if ((BACKEND_NAMES as readonly string[]).includes(raw)) return raw as BackendRequest;
  throw new Error(
    `OVR_BACKEND='${env.OVR_BACKEND}' is not a backend: use one of ${BACKEND_NAMES.join(', ')}.`,
  );
}

export { ensureGradients, gradientsRegistered } from './gradients.js';
export { DEFAULT_WASM_MAX_BYTES, WASM_HEAP_MAX, wasmHeapGuard } from './heap.js';
export { activeWasmPatches, installWasmPatches, removeWasmPatches } from './wasm.js';
export { checkWebgpuErrors, describeAdapter, GL_APT_PACKAGES, isSoftwareAdapter } from './webgpu.js';

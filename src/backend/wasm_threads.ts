// EXPERIMENTAL, opt-in: run tfjs-backend-wasm's threaded-SIMD build under Node (docs/performance.md, and
// research/tfjs_backends.md §1.4). tfjs 4.22 disables wasm threads in Node (tfjs#3830) because its loader hands
// `blob:` URLs to worker_threads.Worker, which Node rejects (ERR_WORKER_PATH). This shim makes the loader's Blobs
// remember their text, writes each script to a temp file and returns that file's path instead of a blob URL.
// It depends on the internals of @tensorflow/tfjs-backend-wasm 4.22.0 (the Node CJS bundle's `require$$N`
// names); it is never enabled by default. Call it BEFORE the wasm backend is first initialised.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';

/** What the rollup'd Node bundle of tfjs-backend-wasm 4.22 expects in scope when its factory runs alone. */
const PRELUDE =
  "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks')," +
  "require$$4=require('os'),commonjsGlobal=globalThis;\n";

let enabled: number | null = null;

/**
 * Threads the wasm backend was enabled with in this process (null: not enabled). Its worker pool keeps Node's event
 * loop alive, so a program that enabled threads must call process.exit() when done (bin/ovr-train.js does).
 */
export const wasmThreadsEnabled = (): number | null => enabled;

/**
 * Switch the wasm backend to its threaded-SIMD build with `threads` pthreads (2..8). Must run before
 * `initBackend({ backend: 'wasm' })`; throws if the wasm backend is already initialised, naming the fix.
 * Returns the temp folder holding the worker scripts.
 * @example enableWasmThreads(2); await initBackend({ backend: 'wasm' }); // getThreadsCount() === 2
 */
export function enableWasmThreads(threads: number): string {
  if (!(Number.isInteger(threads) && threads >= 2 && threads <= 8))
    throw new Error(`enableWasmThreads: threads must be an integer in [2, 8], got ${threads}`);
  if (enabled !== null && enabled !== threads)
    throw new Error(`enableWasmThreads: already enabled with ${enabled} threads in this process`);
  const eng = tf.engine() as unknown as { registry: Record<string, unknown> };
  if (eng.registry.wasm)
    throw new Error('enableWasmThreads: the wasm backend is already initialised; call it before initBackend');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ovr-wasm-mt-'));
  patchBlobUrls(dir);
  // tfjs caps the pool at os.cpus().length / 2 (it assumes hyperthreads): report enough cpus for `threads`.
  const cpus = os.cpus;
  os.cpus = () => {
    const c = cpus();
    while (c.length < 2 * threads) c.push(c[0]);
    return c;
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  enabled = threads;
  return dir;
}

/** Blobs of plain strings keep their text; createObjectURL of such a Blob writes it to `dir` and returns the path. */
function patchBlobUrls(dir: string): void {
  let n = 0;
  let mainScript = '';
  const NativeBlob = globalThis.Blob;
  class TextBlob extends NativeBlob {
    readonly text_: string | null;
    constructor(parts?: ConstructorParameters<typeof Blob>[0], opts?: ConstructorParameters<typeof Blob>[1]) {
      super(parts ?? [], opts);
      this.text_ = parts?.every((p) => typeof p === 'string') ? (parts as string[]).join('') : null;
      if (this.text_?.startsWith('var WasmBackendModuleThreadedSimd')) {
        mainScript = path.join(dir, 'main.js');
        writeFileSync(mainScript, PRELUDE + this.text_);
      }
    }
  }
  globalThis.Blob = TextBlob as typeof Blob;
  const native = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (b: Blob): string => {
    const text = (b as TextBlob).text_;
    if (text == null) return native(b);
    // The pthread worker loads the main script through another blob URL: point it at the file.
    const body = text.includes('nodeWorkerThreads')
      ? `URL.createObjectURL = () => ${JSON.stringify(mainScript)}; URL.revokeObjectURL = () => {};\n${text}`
      : text;
    const file = path.join(dir, `blob${n++}.js`);
    writeFileSync(file, body);
    return file;
  };
  URL.revokeObjectURL = () => {};
}

// How tests pick a backend from the environment (one place): OVR_TEST_BACKEND, else OVR_BACKEND (unless 'auto'),
// else the test's own default. `OVR_BACKEND=tensorflow npm test` runs the model, trainer and generation tests on
// the native backend; the op suite always adds 'tensorflow' once `ovr-train native` has built it (nativeBuilt).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BACKEND_NAMES, type BackendName, initBackend } from '../../src/backend/index.js';

/**
 * The backend a test should run on: OVR_TEST_BACKEND, else OVR_BACKEND (not 'auto'), else `fallback`.
 * @example testBackendName('cpu') // 'tensorflow' under OVR_BACKEND=tensorflow
 */
export function testBackendName(fallback: BackendName): BackendName {
  const raw = (process.env.OVR_TEST_BACKEND || process.env.OVR_BACKEND || '').trim().toLowerCase();
  if (!raw || raw === 'auto') return fallback;
  if (!(BACKEND_NAMES as readonly string[]).includes(raw))
    throw new Error(`OVR_TEST_BACKEND/OVR_BACKEND='${raw}' is not a backend (${BACKEND_NAMES.join(', ')})`);
  return raw as BackendName;
}

/** Starts the test backend (initBackend: patches + gradients) and returns its name. */
export async function useTestBackend(fallback: BackendName): Promise<BackendName> {
  const name = testBackendName(fallback);
  await initBackend({ backend: name, log: () => {} });
  if (tf.getBackend() !== name) throw new Error(`test backend ${name} did not become active`);
  return name;
}

/** True when `ovr-train native` has built @tensorflow/tfjs-node into this project (package + compiled binding). */
export const nativeBuilt: boolean = (() => {
  try {
    const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return existsSync(path.join(path.dirname(entry), '..', 'lib', 'napi-v8', 'tfjs_binding.node'));
  } catch {
    return false;
  }
})();

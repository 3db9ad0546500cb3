// Optional native backends: @tensorflow/tfjs-node-gpu and @tensorflow/tfjs-node, built against TensorFlow's
// PyPI wheel by `ovr-train native` (native_build.ts). They are optional peer dependencies, not installed by
// default: loading them is a dynamic import in try/catch, because a missing package rejects and an installed
// package without its native addon throws from require() ("The Node.js native addon module (tfjs_binding.node)
// can not be found"). TF's C++ start-up logging is quietened to warnings (TF_CPP_MIN_LOG_LEVEL=2) unless set.
import { createRequire } from 'node:module';
import util from 'node:util';
import * as tf from '@tensorflow/tfjs-core';

/** The native packages, in the order `auto` tries them. Both register the backend 'tensorflow'. */
export const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
export type NativePackage = (typeof NATIVE_PACKAGES)[number];

const firstLine = (e: unknown): string => String((e as Error)?.message ?? e).split('\n')[0];

function isNotInstalled(e: unknown, pkg: string): boolean {
  // Node: ERR_MODULE_NOT_FOUND "Cannot find package"; vite (tests): "Could not resolve … Is it installed?"
  const msg = firstLine(e);
  return msg.includes(pkg) && /Cannot find (package|module)|Could not resolve/.test(msg);
}

const notInstalledWhy = (pkg: NativePackage): string =>
  `not installed (build it: npx ovr-train native${pkg.endsWith('-gpu') ? ' --gpu' : ''})`;

/**
 * Why `pkg` cannot be loaded because it is not installed (resolved without loading it), or null when it is there.
 * @example nativeNotInstalled('@tensorflow/tfjs-node'); // null after `npx ovr-train native`
 */
export function nativeNotInstalled(pkg: NativePackage): string | null {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return null;
  } catch (e) {
    if (isNotInstalled(e, pkg)) return notInstalledWhy(pkg);
    return null; // resolvable in some other way: the import below says what is wrong
  }
}

/**
 * tfjs-node 4.22 calls `util.isNullOrUndefined` in every kernel with a type attribute (reshape, gather, …); Node 23
 * removed it (DEP0051), so on Node 24 those kernels throw "isNullOrUndefined is not a function". Put it back, with
 * its documented meaning, before the package loads (its compiled code reads the function from the module at call time).
 */
function restoreNodeUtil(): void {
  const u = util as unknown as Record<string, unknown>;
  if (typeof u.isNullOrUndefined !== 'function')
    u.isNullOrUndefined = (x: unknown) => x === null || x === undefined;
}

/**
 * Import `pkg` and select its 'tensorflow' backend. Returns null on success, else why it was skipped.
 * @example const why = await tryNativeBackend('@tensorflow/tfjs-node-gpu'); // '… not installed (optional peer …)'
 */
export async function tryNativeBackend(pkg: NativePackage): Promise<string | null> {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  restoreNodeUtil();
  try {
    // The specifier is a variable so TypeScript and bundlers do not require the optional peer.
    await import(/* @vite-ignore */ pkg);
  } catch (e) {
    if (isNotInstalled(e, pkg)) return notInstalledWhy(pkg);
    return `failed to load: ${firstLine(e)} (rebuild it: npx ovr-train native)`;
  }
  try {
    if (await tf.setBackend('tensorflow')) return null;
    return `loaded but tfjs could not initialise its 'tensorflow' backend`;
  } catch (e) {
    // A second copy of tfjs-core registers backends into a different engine (tfjs#708).
    return `loaded but 'tensorflow' is not in this @tensorflow/tfjs-core's registry (${firstLine(e)}); dedupe to exactly 4.22.0`;
  }
}

/** What the native backend runs on, read from its binding. */
export interface NativeInfo {
  /** `TF_Version()` of the loaded libtensorflow, e.g. '2.21.0'. */
  tfVersion: string;
  /** 'CPU', plus 'GPU' when the binding placed ops on a GPU. */
  devices: string[];
}

/**
 * TF version and devices of the active 'tensorflow' backend (call after tryNativeBackend succeeded).
 * @example nativeInfo() // { tfVersion: '2.21.0', devices: ['CPU'] }
 */
export function nativeInfo(): NativeInfo {
  const be = tf.findBackend('tensorflow') as unknown as {
    binding?: { TF_Version?: string };
    isUsingGpuDevice?: boolean;
  } | null;
  const tfVersion = be?.binding?.TF_Version ?? 'unknown';
  return { tfVersion, devices: be?.isUsingGpuDevice ? ['CPU', 'GPU'] : ['CPU'] };
}

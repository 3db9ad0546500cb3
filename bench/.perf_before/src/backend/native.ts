// Optional native backends: @tensorflow/tfjs-node-gpu and @tensorflow/tfjs-node (libtensorflow 2.9.1).
// They are optional peer dependencies, not installed by default: loading them is a dynamic import in
// try/catch, because a missing package rejects and an installed package without its native addon
// throws from require() ("The Node.js native addon module (tfjs_binding.node) can not be found").
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

/**
 * Import `pkg` and select its 'tensorflow' backend. Returns null on success, else why it was skipped.
 * @example const why = await tryNativeBackend('@tensorflow/tfjs-node-gpu'); // '… not installed (optional peer …)'
 */
export async function tryNativeBackend(pkg: NativePackage): Promise<string | null> {
  try {
    // The specifier is a variable so TypeScript and bundlers do not require the optional peer.
    await import(/* @vite-ignore */ pkg);
  } catch (e) {
    if (isNotInstalled(e, pkg)) return `not installed (optional peer: npm i ${pkg}@4.22.0)`;
    return `failed to load: ${firstLine(e)}`;
  }
  try {
    if (await tf.setBackend('tensorflow')) return null;
    return `loaded but tfjs could not initialise its 'tensorflow' backend`;
  } catch (e) {
    // A second copy of tfjs-core registers backends into a different engine (tfjs#708).
    return `loaded but 'tensorflow' is not in this @tensorflow/tfjs-core's registry (${firstLine(e)}); dedupe to exactly 4.22.0`;
  }
}

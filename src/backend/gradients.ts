// Gradient registration. @tensorflow/tfjs-core's node bundle (its package "main") registers NO gradient
// functions: the umbrella @tensorflow/tfjs does it by importing core's ESM file
// `dist/register_all_gradients.js`, which plain Node cannot load because its relative imports have no
// extension. Without it, tf.grads fails with "gradient function not found for Sum".
// We load that file with a tiny resolve hook (node:module register, Node >= 20.6) that retries relative
// specifiers inside tfjs-core/dist with '.js'. The kernel/gradient registries and the engine are global
// (tfjs `getGlobal`), so this second ESM copy of core registers into the same registry the CJS copy reads.
import { register } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

const HOOK = `export async function resolve(spec, ctx, next) {
  try { return await next(spec, ctx); } catch (e) {
    if (spec.startsWith('.') && !spec.endsWith('.js') && ctx.parentURL?.includes('/@tensorflow/tfjs-core/dist/')) {
      return next(spec + '.js', ctx);
    }
    throw e;
  }
}`;

let loading: Promise<void> | null = null;

/** True when tfjs-core's gradients are registered (by us, @tensorflow/tfjs, tfjs-node, or a test import). */
export const gradientsRegistered = (): boolean =>
  tf.getGradient('Sum') != null && tf.getGradient('BatchMatMul') != null;

async function load(): Promise<void> {
  if (typeof register !== 'function') {
    throw new Error('registering tfjs gradients needs node:module register (Node >= 20.6); upgrade Node.');
  }
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
  const spec = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
  await import(/* @vite-ignore */ spec);
  if (!gradientsRegistered()) {
    throw new Error(
      `${spec} loaded but registered no gradients: is @tensorflow/tfjs-core deduplicated (4.22.0)?`,
    );
  }
}

/**
 * Make sure tf.grads works: registers tfjs-core's gradient functions once (about 0.5-2.5 s in plain Node).
 * @example await ensureGradients(); tf.grad((x) => tf.sum(x))(tf.ones([2]));
 */
export function ensureGradients(): Promise<void> {
  if (gradientsRegistered()) return Promise.resolve();
  loading ??= load().catch((e) => {
    loading = null;
    throw e;
  });
  return loading;
}

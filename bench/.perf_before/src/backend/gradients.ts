// Gradient registration. @tensorflow/tfjs-core's node bundle (its package "main") registers NO gradient
// functions: the umbrella @tensorflow/tfjs does it by importing core's ESM file
// `dist/register_all_gradients.js`, which plain Node cannot load because its relative imports have no
// extension. Without it, tf.grads fails with "gradient function not found for Sum".
// We load that file with a tiny resolve hook that retries relative specifiers inside tfjs-core/dist with
// '.js': `module.register` (Node >= 20.6; doc-deprecated since Node 25, DEP0205), else the synchronous
// `module.registerHooks` (deregistered after the import) on Node versions that drop `register`. The kernel/gradient registries and the engine are global
// (tfjs `getGlobal`), so this second ESM copy of core registers into the same registry the CJS copy reads.
import * as nodeModule from 'node:module';
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

type Resolve = (spec: string, ctx: { parentURL?: string }, next: Resolve) => unknown;
interface ModuleHooksApi {
  register?: (url: string) => void;
  registerHooks?: (hooks: { resolve: Resolve }) => { deregister?: () => void };
}

const needsJs = (spec: string, parent?: string) =>
  spec.startsWith('.') && !spec.endsWith('.js') && (parent ?? '').includes('/@tensorflow/tfjs-core/dist/');

/** Install the hook; returns how to remove it (a no-op for module.register, which cannot be removed). */
function installHook(): () => void {
  const api = nodeModule as unknown as ModuleHooksApi;
  if (typeof api.register === 'function') {
    api.register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
    return () => {};
  }
  if (typeof api.registerHooks === 'function') {
    const h = api.registerHooks({
      resolve: (spec, ctx, next) => {
        try {
          return next(spec, ctx, next);
        } catch (e) {
          if (needsJs(spec, ctx.parentURL)) return next(`${spec}.js`, ctx, next);
          throw e;
        }
      },
    });
    return () => h.deregister?.();
  }
  throw new Error('registering tfjs gradients needs node:module register or registerHooks (Node >= 20.6).');
}

async function load(): Promise<void> {
  const remove = installHook();
  const spec = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
  try {
    await import(/* @vite-ignore */ spec);
  } finally {
    remove();
  }
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

// `ovr-train native [--gpu] [--tensorflow-wheel FILE | --python PY] [--cache DIR]`: builds the 'tensorflow' backend
// (tfjs-node 4.22's binding against TensorFlow's PyPI wheel; src/backend/native_build.ts), then starts it through
// initBackend and prints what it runs on. Failures name the step and what to install.
import { z } from 'zod';
import { initBackend } from '../backend/index.js';
import { buildNative, NativeBuildError } from '../backend/native_build.js';
import { parseCommand } from './common.js';

/** Flags of `ovr-train native`. */
export const NativeArgs = z
  .object({
    gpu: z
      .boolean()
      .default(false)
      .describe(
        'Build @tensorflow/tfjs-node-gpu against tensorflow[and-cuda]==2.21.* (CUDA 12; Linux + NVIDIA)',
      ),
    tensorflowWheel: z
      .string()
      .min(1)
      .optional()
      .describe('Take the libraries from this tensorflow*.whl (TF >= 2.12) instead of pip'),
    python: z
      .string()
      .min(1)
      .optional()
      .describe("Take the libraries from this Python's installed tensorflow (TF >= 2.12) instead of pip"),
    cache: z
      .string()
      .min(1)
      .optional()
      .describe('Cache folder for wheels, libraries, builds (default ~/.cache/ovr/native)'),
    project: z
      .string()
      .min(1)
      .optional()
      .describe('Project folder to install into (default: the current folder)'),
    save: z
      .boolean()
      .optional()
      .describe(
        "Add the package to the project's package.json (default: yes, except in ovr's own repository)",
      ),
    nodedir: z
      .string()
      .min(1)
      .optional()
      .describe('Node headers folder with include/node (default: beside the running node, or /usr)'),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.tensorflowWheel && a.python)
      ctx.addIssue({ code: 'custom', message: 'give --tensorflow-wheel or --python, not both' });
  });
export type NativeArgs = z.output<typeof NativeArgs>;

const SUMMARY = `Builds the 'tensorflow' backend without Google's storage host: TensorFlow's C libraries from its PyPI
wheel, @tensorflow/tfjs-node(-gpu)@4.22.0 installed with its install script skipped, its binding compiled against
them, then started. Cached and idempotent; run it again after \`npm ci\`. Use it with OVR_BACKEND=tensorflow.`;

/** `ovr-train native`: exit code 0 when the backend starts, 1 when a step fails (the message names it). */
export async function nativeCommand(argv: string[]): Promise<number> {
  const p = parseCommand(NativeArgs, argv, 'ovr-train native', SUMMARY);
  if ('exit' in p) return p.exit;
  const a = p.config;
  try {
    const r = await buildNative({
      gpu: a.gpu,
      wheel: a.tensorflowWheel,
      python: a.python,
      cache: a.cache,
      project: a.project,
      save: a.save,
      nodedir: a.nodedir,
    });
    if (r.cached.length) console.error(`native: cached steps: ${r.cached.join(', ')}`);
    if (a.project === undefined) await initBackend({ backend: 'tensorflow' });
    console.log(
      JSON.stringify({ package: r.pkg, tensorflow: r.tfVersion, devices: r.devices, libs: r.libs.dir }),
    );
    return 0;
  } catch (e) {
    if (!(e instanceof NativeBuildError)) throw e;
    console.error(e.message);
    return 1;
  }
}

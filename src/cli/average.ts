// `ovr-train average --out DIR [--weights 1,2,1] [--dtype f32|bf16] CKPT CKPT...`
// Uniform or weighted average of checkpoint folders (HF layout) or PEFT adapter folders (src/io/average.ts); the OVR
// paper's final model is the uniform average of several intermediate RL checkpoints.
import { z } from 'zod';
import { averageCheckpoints } from '../io/average.js';
import { ArgsError, helpText, parseArgs } from './args.js';

/** Flags of `ovr-train average` (the checkpoint folders are positional). */
export const AverageArgs = z
  .object({
    out: z
      .string()
      .min(1)
      .describe('output folder (created; weight files of another layout in it are replaced)'),
    weights: z
      .array(z.number().nonnegative())
      .optional()
      .describe('one weight per checkpoint, comma-separated, normalised by their sum (default: uniform)'),
    dtype: z.enum(['f32', 'bf16']).default('f32').describe('output float dtype (f32 keeps the mean exact)'),
    maxShardGb: z
      .number()
      .positive()
      .optional()
      .describe('split a checkpoint into shards of at most this many GB (default: one file)'),
  })
  .strict();

const PROG = 'ovr-train average --out DIR CKPT CKPT...';
const USAGE =
  'Average checkpoints (model.safetensors or shards + index, e.g. run/checkpoint-*) or PEFT adapters\n' +
  '(adapter_config.json + adapter_model.safetensors) elementwise; all inputs need the same tensor names and shapes.';
/** Flags that take a value (so the next token is not a checkpoint). */
const VALUED = new Set(['--out', '--weights', '--dtype', '--max-shard-gb', '--config']);

/** Splits argv into flags (with their values) and positional checkpoint folders. */
export function splitPositionals(argv: readonly string[]): { flags: string[]; inputs: string[] } {
  const flags: string[] = [];
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('-')) {
      flags.push(a);
      if (VALUED.has(a) && i + 1 < argv.length) flags.push(argv[++i]);
    } else inputs.push(a);
  }
  return { flags, inputs };
}

/** CLI entry: returns the exit code. */
export async function averageCommand(argv: string[]): Promise<number> {
  const { flags, inputs } = splitPositionals(argv);
  let cfg: z.output<typeof AverageArgs>;
  try {
    const r = parseArgs(AverageArgs, flags, PROG);
    if (r.kind === 'help') {
      console.log(`${USAGE}\n\n${r.text}`);
      return 0;
    }
    cfg = r.config;
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`ovr-train average: ${e.message}\n(run 'ovr-train average --help' for every flag)`);
    return 2;
  }
  if (inputs.length < 2) {
    console.error(
      `ovr-train average: give at least two checkpoint folders after the flags\n\n${helpText(AverageArgs, PROG)}`,
    );
    return 2;
  }
  const t0 = Date.now();
  const rep = await averageCheckpoints(inputs, cfg.out, {
    weights: cfg.weights,
    dtype: cfg.dtype === 'bf16' ? 'BF16' : 'F32',
    maxShardBytes: cfg.maxShardGb === undefined ? undefined : cfg.maxShardGb * 1e9,
  });
  const w = rep.weights.map((x) => x.toFixed(4)).join(', ');
  console.log(
    `averaged ${inputs.length} ${rep.kind}s (weights ${w}): ${rep.tensors} tensors, ${rep.params} values -> ${rep.out} ` +
      `[${rep.files.join(', ')}] in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}

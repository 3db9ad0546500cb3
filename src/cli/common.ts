// The one boundary every `ovr-train` command goes through: parse argv against the command's zod schema once
// (defaults < --config file < flags), print help or a fix-it error, then (for commands that run a model) start the
// tfjs backend: an explicit --backend wins, else OVR_BACKEND, else auto; initBackend prints one line saying what was
// chosen, tagged with where the request came from. OVR_BACKEND is read here and nowhere in the library: library
// functions (trainSft, trainGrpo, runDemo, ...) never choose a backend.
import { z } from 'zod';
import { type BackendInfo, type BackendRequest, initBackend, ovrBackendFromEnv } from '../backend/index.js';
import { ArgsError, parseArgs } from './args.js';

/** Parsed config, or the exit code to return (help printed: 0, bad arguments: 2). */
/** The model flags of the commands that load one model (generate, eval): --model and an optional --adapter. */
export const modelFlags = {
  model: z
    .string()
    .min(1)
    .describe(
      "Model folder (config.json + safetensors, e.g. a checkpoint-<step> dir; its tokenizer.json if present, else the bundled Qwen2.5 one), or 'tiny' (random)",
    ),
  adapter: z
    .string()
    .min(1)
    .optional()
    .describe('PEFT LoRA adapter folder on top of --model (e.g. a LoRA run checkpoint-<step> dir)'),
};

export type Parsed<T> = { config: Readonly<T> } | { exit: number };

/**
 * Parses `argv` for command `prog`; on `--help` prints the usage + generated flag list, on a bad flag prints the
 * error (naming the flag) and the hint to use --help.
 * @example
 * const p = parseCommand(SftConfig, argv, 'ovr-train sft', 'Supervised fine-tuning.');
 * if ('exit' in p) return p.exit;
 */
export function parseCommand<S extends z.ZodType>(
  schema: S,
  argv: string[],
  prog: string,
  summary: string,
): Parsed<z.output<S>> {
  try {
    const r = parseArgs(schema, argv, prog);
    if (r.kind === 'help') {
      console.log(`${summary}\n\n${r.text}`);
      return { exit: 0 };
    }
    return { config: r.config };
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`${prog}: ${e.message}\n(run '${prog} --help' for every flag)`);
    return { exit: 2 };
  }
}

/**
 * Starts the backend for a command: an explicit flag (not 'auto') wins, else OVR_BACKEND, else auto. Prints one
 * line (initBackend's, naming the backend and why) tagged with the source of the request.
 * @example const info = await startBackend(cfg.backend, process.env); // stderr: ovr backend: wasm (...) [OVR_BACKEND]
 */
export async function startBackend(
  flag: BackendRequest | undefined,
  env: Record<string, string | undefined>,
): Promise<BackendInfo> {
  const explicit = flag !== undefined && flag !== 'auto';
  const request = explicit ? flag : ovrBackendFromEnv(env);
  const source = explicit ? '--backend' : env.OVR_BACKEND?.trim() ? 'OVR_BACKEND' : 'default';
  return initBackend({ backend: request, log: (line) => console.error(`${line} [${source}]`) });
}

/**
 * The boundary in one call: parse, then start the backend named by `backendOf(config)` (flag or OVR_BACKEND).
 * @example
 * const p = await startCommand(GrpoConfig, argv, 'ovr-train grpo', ABOUT, (c) => c.backend);
 * if ('exit' in p) return p.exit;
 */
export async function startCommand<S extends z.ZodType>(
  schema: S,
  argv: string[],
  prog: string,
  summary: string,
  backendOf: (config: z.output<S>) => BackendRequest | undefined,
  env: Record<string, string | undefined> = process.env,
): Promise<{ config: Readonly<z.output<S>>; backend: BackendInfo } | { exit: number }> {
  const p = parseCommand(schema, argv, prog, summary);
  if ('exit' in p) return p;
  let backend: BackendInfo;
  try {
    backend = await startBackend(backendOf(p.config as z.output<S>), env);
  } catch (e) {
    console.error(`${prog}: ${(e as Error).message}`);
    return { exit: 2 };
  }
  return { config: p.config, backend };
}

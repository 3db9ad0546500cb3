// Shared plumbing of the training CLIs (`ovr-train sft`, `ovr-train generate`, and the GRPO command): parse argv
// against a zod schema once (defaults < --config file < flags), print help or a fix-it error, and pick the tfjs
// backend. OVR_BACKEND is read here, at the CLI boundary, and nowhere in the library.
import type { z } from 'zod';
import { type BackendRequest, initBackend, ovrBackendFromEnv } from '../backend/index.js';
import { ArgsError, parseArgs } from './args.js';

/** Parsed config, or the exit code to return (help printed: 0, bad arguments: 2). */
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
 * Backend to start: an explicit flag wins; 'auto' defers to OVR_BACKEND (then initBackend's auto order).
 * @example await startBackend(cfg.backend, process.env);
 */
export async function startBackend(
  flag: BackendRequest,
  env: Record<string, string | undefined>,
): Promise<string> {
  const request = flag === 'auto' ? ovrBackendFromEnv(env) : flag;
  const info = await initBackend({ backend: request });
  return info.name;
}

// Shared helpers for CLI tests: run a command function in-process with console output captured, or run
// `ovr-train <args>` in a fresh Node process through tsx (src/cli/index.ts main()).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { vi } from 'vitest';
import { ROOT } from '../helpers.js';

/** What a command returned and printed. */
export type Captured = { code: number; out: string; err: string };

/**
 * Runs a command function, capturing console.log / console.error (joined by newlines); the spies are restored after.
 * @example const { code, err } = await capture(() => main(['grpo', '--bogus'])); expect(code).toBe(2);
 */
export async function capture(fn: () => Promise<number>): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  try {
    return { code: await fn(), out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

/** Source for `tsx -e`: imports the CLI entry and sets the exit code from main(argv). */
const CLI_MAIN =
  "import('./src/cli/index.ts').then(async ({ main }) => { process.exitCode = await main(process.argv.slice(1)); });";

/**
 * `ovr-train <args>` in a fresh Node process through tsx, from the project root; rejects on a non-zero exit.
 * @example const { stdout } = await runCli(['generate', '--model', dir, '--prompt', 'Hi'], 60_000);
 */
export async function runCli(
  args: string[],
  timeout = 120_000,
  env: Record<string, string | undefined> = process.env,
): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)('npx', ['tsx', '-e', CLI_MAIN, ...args], { cwd: ROOT, timeout, env });
}

// Real server processes for the rollout tests: `ovr-train serve` (through tsx, in its own process group so a kill
// takes tsx's child too) and a fault injector (test/rollout/fault_server.mjs) standing in for a broken network peer.
// Every process listens on loopback only and is killed by the test that started it.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// not from ../helpers.js, which loads vitest: bench/rollout_throughput.ts uses this file outside vitest
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A started server process. */
export interface Proc {
  url: string;
  port: number;
  child: ChildProcess;
  /** stderr so far (request log, errors). */
  stderr(): string;
  /** SIGKILL to the whole process group; resolves when it exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const CLI_MAIN =
  "import('./src/cli/index.ts').then(async ({ main }) => { process.exitCode = await main(process.argv.slice(1)); });";

/** Spawns `cmd args` and waits for a stdout line matching `ready` (its first group is the URL). */
function startProc(cmd: string, args: string[], ready: RegExp, timeoutMs: number): Promise<Proc> {
  const child = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-(child.pid as number), signal);
      } catch {
        // already gone
      }
      await exited;
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`${cmd} ${args.join(' ')}: not ready after ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    child.stdout?.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        const url = m[1];
        resolve({ url, port: Number(new URL(url).port), child, stderr: () => err, kill });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code} before it was ready\n${out}\n${err}`));
    });
  });
}

/**
 * `ovr-train serve --model <model> --port <port> --backend <backend, default cpu>` in a new process; resolves when it listens.
 * @example const s = await startServe(dir); ...; await s.kill();
 */
export function startServe(
  model: string,
  opts: { port?: number; extra?: string[]; backend?: string } = {},
): Promise<Proc> {
  const args = [
    '-e',
    CLI_MAIN,
    'serve',
    '--model',
    model,
    '--port',
    String(opts.port ?? 0),
    '--backend',
    opts.backend ?? 'cpu',
  ];
  return startProc(
    path.join(ROOT, 'node_modules', '.bin', 'tsx'),
    [...args, ...(opts.extra ?? [])],
    /listening on (http:\/\/\S+)/,
    120_000,
  );
}

/** The fault injector in `mode` ('garbage' | 'badshape' | 'hang' | 'error500'); GET /count = requests seen. */
export function startFaultServer(mode: string): Promise<Proc> {
  return startProc(
    process.execPath,
    [path.join(ROOT, 'test', 'rollout', 'fault_server.mjs'), mode],
    /listening on (http:\/\/\S+)/,
    20_000,
  );
}

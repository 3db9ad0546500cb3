// Starts the judge test server (judge_server.mjs) as its own process on loopback, for the judge client and CLI tests.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../helpers.js';

/** Starts judge_server.mjs and resolves with its base URL. */
export async function startJudgeServer(delayMs: number): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(
    process.execPath,
    [path.join(ROOT, 'test/analysis/judge_server.mjs'), '--delay', String(delayMs)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('error', reject);
    proc.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
  });
  return { proc, url: `http://127.0.0.1:${port}` };
}

// StopSignal in a real child process: the first SIGINT/SIGTERM lets the current step finish and the loop save and exit
// with 130/143 and a message; a second signal exits at once without saving.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

const MODULE = path.join(ROOT, 'src', 'util', 'interrupt.ts');

/** A child whose "steps" take 300 ms; it prints 'step N' after each and 'saved at N' when stopped. */
function loop() {
  const code = `import(${JSON.stringify(MODULE)}).then(async ({ StopSignal }) => {
    const stop = StopSignal.install((l) => console.log(l));
    for (let n = 1; n <= 100; n++) {
      await new Promise((r) => setTimeout(r, 300));
      console.log('step ' + n);
      if (stop.requested) { await new Promise((r) => setTimeout(r, 300)); console.log('saved at ' + n); stop.dispose(); process.exit(stop.exitCode); }
    }
  });`;
  const p = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: ROOT });
  let out = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  const started = new Promise<void>((resolve) =>
    p.stdout.on('data', () => out.includes('step 1') && resolve()),
  );
  const done = new Promise<{ code: number | null; out: string }>((resolve) =>
    p.on('exit', (c) => resolve({ code: c, out })),
  );
  return { p, started, done };
}

describe('StopSignal', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    '%s: finishes the step, saves, exits %d with a message',
    async (sig, code) => {
      const c = loop();
      await c.started;
      c.p.kill(sig);
      const r = await c.done;
      expect(r.code).toBe(code);
      expect(r.out).toContain(`${sig} received: stopping after the current step and saving a checkpoint`);
      expect(r.out).toMatch(/saved at \d+/);
    },
    30_000,
  );

  it('a second signal exits at once without saving', async () => {
    const c = loop();
    await c.started;
    c.p.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 50));
    c.p.kill('SIGINT');
    const r = await c.done;
    expect(r.code).toBe(130);
    expect(r.out).toContain('SIGINT again: exiting now without saving');
    expect(r.out).not.toContain('saved at');
  }, 30_000);
});

// The worker must also start from compiled JavaScript (dist/ after tsc), in plain Node with no TypeScript loader.
// We compile src/reward alone (fast, no type check) into node_modules/.ovr-test-dist and drive it from a child
// process.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workerSource } from '../../src/reward/worker_source.js';
import { ROOT } from '../helpers.js';

describe('worker file resolution', () => {
  it('uses the .ts source through tsx when running from src/', () => {
    const s = workerSource();
    expect(s.eval).toBe(true);
    expect(String(s.src)).toContain('worker.ts');
  });

  it('runs from compiled .js in plain node', () => {
    const out = path.join(ROOT, 'node_modules', '.ovr-test-dist', 'reward');
    fs.rmSync(out, { recursive: true, force: true });
    const files = fs
      .readdirSync(path.join(ROOT, 'src', 'reward'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => path.join('src', 'reward', f));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--outDir', out, '--rootDir', 'src/reward', '--module', 'nodenext', '--target', 'es2022'];
    execFileSync(process.execPath, [tsc, ...flags, '--moduleResolution', 'nodenext', '--noCheck', ...files], {
      cwd: ROOT,
    });
    expect(fs.existsSync(path.join(out, 'worker.js'))).toBe(true);
    const script = `
      import { VerifierPool } from ${JSON.stringify(path.join(out, 'pool.js'))};
      import { workerSource } from ${JSON.stringify(path.join(out, 'worker_source.js'))};
      const pool = new VerifierPool({ threads: 1, budgetMs: 2000 });
      const a = await pool.verify('\\\\frac12', 'so $\\\\boxed{0.5}$');
      const b = await pool.verify('1', '\\\\boxed{\\\\sum_{k=1}^{999}\\\\sum_{j=1}^{999} \\\\sin(jk)}');
      await pool.close();
      const { verify } = await import(${JSON.stringify(path.join(out, 'verify.js'))});
      const c = verify('\\\\frac12', '\\\\boxed{0.5}').equal;
      const d = verify('1', '\\\\boxed{\\\\sum_{k=1}^{999}\\\\sum_{j=1}^{999} \\\\sin(jk)}', { timeLimitMs: 500 }).timedOut === true;
      console.log(JSON.stringify({ src: String(workerSource().src), a: a.equal, b: b.timedOut === true, c, d }));`;
    const env = { ...process.env, NODE_OPTIONS: '' };
    const res = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      env,
      timeout: 60_000,
    });
    const got = JSON.parse(res.toString().trim().split('\n').pop()!);
    expect(got.src).toMatch(/worker\.js$/);
    expect(got.a).toBe(true);
    expect(got.b).toBe(true); // the time limit works from dist too, and the process exits after close()
    expect(got.c).toBe(true); // the synchronous runner behind verify() starts from dist
    expect(got.d).toBe(true); // and enforces its limit there (the unref'd worker does not keep node alive)
  });
});

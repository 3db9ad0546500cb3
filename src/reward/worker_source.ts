// How a verifier worker thread starts: the compiled worker.js beside this file (dist/), or from sources (vitest, tsx)
// worker.ts behind tsx's ESM loader. Used by the synchronous bounded runner (bounded.ts) and the pool (pool.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** tsx's ESM API, resolved from this file (not from the cwd) when the runtime allows it. */
function tsxApi(): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return 'tsx/esm/api';
  }
}

/** How to start a worker: the compiled .js when present, else the .ts source through tsx. Exported for tests. */
export function workerSource(): { src: string | URL; eval: boolean } {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { src: js, eval: false };
  const ts = new URL('./worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(ts))) {
    throw new Error(
      `VerifierPool: no worker file next to ${fileURLToPath(import.meta.url)}; run \`npm run build\``,
    );
  }
  const boot = `import(${JSON.stringify(tsxApi())}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })`;
  return {
    src: `${boot}.catch((e) => { console.error('reward worker failed to start:', e); process.exit(1); });`,
    eval: true,
  };
}

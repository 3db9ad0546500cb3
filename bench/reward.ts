// `npx tsx bench/reward.ts`: math-verifier throughput on the 232 dev cases (../shared/data/reward_cases/dev.jsonl)
// through the worker pool (default 2 threads, the machine's 2 cores), plus the in-process single-thread baseline
// and the fuzz corpus. Prints one JSON line per measurement. Not part of `npm test`.
//
// Env: OVR_BENCH_THREADS=2  OVR_BENCH_REPEATS=5  OVR_BENCH_FUZZ=2000 (adversarial pairs, 0 to skip)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rowOptions } from '../src/cli/grade.js';
import { VerifierPool } from '../src/reward/pool.js';
import { verify } from '../src/reward/verify.js';
import { fuzzPairs } from '../test/reward/fuzz.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const THREADS = Number(process.env.OVR_BENCH_THREADS ?? 2);
const REPEATS = Number(process.env.OVR_BENCH_REPEATS ?? 5);
const FUZZ = Number(process.env.OVR_BENCH_FUZZ ?? 2000);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function main(): Promise<void> {
  const file = path.join(ROOT, '..', 'shared', 'data', 'reward_cases', 'dev.jsonl');
  const rows = fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const cases = rows.map((r) => ({ gold: r.gold, prediction: r.prediction, opts: rowOptions(r.config) }));

  // In-process baseline: verify() through its synchronous worker (same time limit). First pass warms the CAS.
  for (const c of cases) verify(c.gold, c.prediction, c.opts);
  const t0 = performance.now();
  for (let k = 0; k < REPEATS; k++) for (const c of cases) verify(c.gold, c.prediction, c.opts);
  const inproc = (REPEATS * cases.length) / ((performance.now() - t0) / 1000);
  console.log(
    JSON.stringify({ bench: 'reward/dev/in-process', threads: 1, casesPerSec: Math.round(inproc) }),
  );

  const tStart = performance.now();
  const pool = new VerifierPool({ threads: THREADS });
  await pool.ready();
  const startMs = performance.now() - tStart;
  try {
    await pool.verifyMany(cases); // warm-up pass
    const lat: number[] = [];
    const t1 = performance.now();
    for (let k = 0; k < REPEATS; k++) {
      const vs = await pool.verifyMany(cases);
      for (const v of vs) lat.push(v.ms ?? 0);
    }
    const rate = (REPEATS * cases.length) / ((performance.now() - t1) / 1000);
    console.log(
      JSON.stringify({
        bench: 'reward/dev/pool',
        threads: THREADS,
        casesPerSec: Math.round(rate),
        p50Ms: +percentile(lat, 0.5).toFixed(2),
        p99Ms: +percentile(lat, 0.99).toFixed(1),
        maxMs: +Math.max(...lat).toFixed(1),
        poolStartMs: Math.round(startMs),
        timeouts: pool.stats.timeouts,
      }),
    );
    if (FUZZ > 0) {
      const t2 = performance.now();
      const vs = await pool.verifyMany(fuzzPairs(FUZZ, 1));
      const s = (performance.now() - t2) / 1000;
      const maxMs = Math.max(...vs.map((v) => v.ms ?? 0));
      const timeouts = vs.filter((v) => v.timedOut).length;
      console.log(
        JSON.stringify({
          bench: 'reward/fuzz/pool',
          threads: THREADS,
          n: FUZZ,
          casesPerSec: Math.round(FUZZ / s),
          maxMs: Math.round(maxMs),
          timeouts,
        }),
      );
    }
  } finally {
    await pool.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

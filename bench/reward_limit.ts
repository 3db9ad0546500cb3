// `npx tsx bench/reward_limit.ts`: worst-case time per call of every reward entry point on an adversarial set
// (issue #19 item 3), in-process (`verify`, through the synchronous worker) and through VerifierPool (2 threads).
// Each hostile case is followed by an ordinary one, so the restart after a timeout is measured too: the bound is
// `limit + restart`. Prints one JSON line per case and a summary line.
//
// Env: OVR_BENCH_LIMIT_MS=2000

import { VerifierPool } from '../src/reward/pool.js';
import { verify } from '../src/reward/verify.js';

const LIMIT = Number(process.env.OVR_BENCH_LIMIT_MS ?? 2000);
const pm = (n: number) => `x = ${Array.from({ length: n }, (_, i) => `\\pm ${i + 2}`).join(' ')}`;

/** Inputs that blocked the CAS for seconds to minutes, or that stress extraction (issue #19, research notes). */
export const ADVERSARIAL: [name: string, gold: string, prediction: string][] = [
  ['ten \\pm', '1', pm(10)],
  ['twelve \\pm', '1', pm(12)],
  ['binom 10^6', '1', '\\boxed{\\binom{1000000}{500000}}'],
  ['double sine sum', '1', '\\boxed{\\sum_{k=1}^{999}\\sum_{j=1}^{999} \\sin(jk)}'],
  ['power tower', '9^{9^9}', '\\boxed{9^{9^9}+1}'],
  ['10^{10^{10^{10}}}', '10^{10^{10^{10}}}', '\\boxed{10^{10^{10^{10}}}+1}'],
  ['sum to 10^9', '\\frac{n}{2}', '\\boxed{\\sum_{k=1}^{10^9}k}'],
  ['100000!', '1', '\\boxed{100000!}'],
  ['1 MB digits', '1', `\\boxed{${'1'.repeat(1_000_000)}}`],
  ['10,000 nested braces', '1', `\\boxed{${'{'.repeat(10_000)}1${'}'.repeat(10_000)}}`],
  ['unclosed 5,000 braces', '1', `\\boxed${'{'.repeat(5000)}1`],
  ['regex bomb', '2', `${'$'.repeat(300_000)}${'\\['.repeat(100_000)}${' 1,'.repeat(100_000)}`],
  ['1 MB a+a+…', 'a', `\\boxed{${'a+'.repeat(500_000)}a}`],
  ['(x+1)^{1000}', '(x+1)^{1000}', '\\boxed{(x+1)^{1000}+1}'],
  ['deep fractions', '1', `\\boxed{${'\\frac{1}{'.repeat(400)}1${'}{1}'.repeat(400)}}`],
];
const NORMAL: [string, string] = ['\\frac12', 'so the answer is $\\boxed{0.5}$'];

interface Row {
  mode: string;
  name: string;
  ms: number;
  reason: string;
  nextMs: number;
}

function inProcess(): Row[] {
  verify('1', '1', { timeLimitMs: LIMIT });
  return ADVERSARIAL.map(([name, gold, pred]) => {
    let t = performance.now();
    const v = verify(gold, pred, { timeLimitMs: LIMIT });
    const ms = performance.now() - t;
    t = performance.now();
    verify(NORMAL[0], NORMAL[1], { timeLimitMs: LIMIT });
    return { mode: 'in-process', name, ms, reason: v.reason, nextMs: performance.now() - t };
  });
}

async function pooled(): Promise<Row[]> {
  const pool = new VerifierPool({ threads: 2, budgetMs: LIMIT });
  await pool.ready();
  const rows: Row[] = [];
  for (const [name, gold, pred] of ADVERSARIAL) {
    let t = performance.now();
    const v = await pool.verify(gold, pred);
    const ms = performance.now() - t;
    t = performance.now();
    await pool.verify(NORMAL[0], NORMAL[1]);
    rows.push({ mode: 'pool', name, ms, reason: v.reason, nextMs: performance.now() - t });
  }
  await pool.close();
  return rows;
}

async function main(): Promise<void> {
  const rows = [...inProcess(), ...(await pooled())];
  for (const r of rows) {
    console.log(
      JSON.stringify({
        ...r,
        ms: Math.round(r.ms),
        nextMs: Math.round(r.nextMs),
        reason: r.reason.slice(0, 60),
      }),
    );
  }
  for (const mode of ['in-process', 'pool']) {
    const rs = rows.filter((r) => r.mode === mode);
    console.log(
      JSON.stringify({
        bench: `reward/limit/${mode}`,
        limitMs: LIMIT,
        worstMs: Math.round(Math.max(...rs.map((r) => r.ms))),
        worstNextMs: Math.round(Math.max(...rs.map((r) => r.nextMs))),
        timeouts: rs.filter((r) => /timeout/.test(r.reason)).length,
      }),
    );
  }
}

await main();

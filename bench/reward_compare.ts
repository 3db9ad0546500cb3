// `npx tsx bench/reward_compare.ts`: our verifier and Math-Verify itself (pinned, bench/setup_math_verify.sh) on the
// same cases — dev.jsonl (232, expected verdicts from the graders' test suites) and the generated corpus
// (test/reward/corpus.ts, ~6,400). Prints, per set and per category: both right, only ours, only theirs, both wrong,
// plus accuracy/FP of each, agreement %, and cases/s (ours through the worker pool on 2 threads and in-process
// through the synchronous worker; Math-Verify single process as TRL calls it). Writes every disagreement to
// bench/results/reward_disagreements.jsonl and the table to bench/results/reward_compare.md.
//
// Env: OVR_MATH_VERIFY_VENV (default ~/.cache/ovr/venv-math-verify), OVR_BENCH_THREADS=2

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rowOptions } from '../src/cli/grade.js';
import { VerifierPool } from '../src/reward/pool.js';
import { type Verdict, verify } from '../src/reward/verify.js';
import { buildCorpus } from '../test/reward/corpus.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VENV = process.env.OVR_MATH_VERIFY_VENV ?? path.join(os.homedir(), '.cache', 'ovr', 'venv-math-verify');
const THREADS = Number(process.env.OVR_BENCH_THREADS ?? 2);

interface Case {
  id: string;
  gold: string;
  prediction: string;
  expected: boolean;
  category: string;
  config?: Record<string, unknown>;
}

function devCases(): Case[] {
  const file = path.join(ROOT, '..', 'shared', 'data', 'reward_cases', 'dev.jsonl');
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((r) => ({ ...r, category: r.category as string }));
}

function corpusCases(): Case[] {
  return buildCorpus().map((c) => ({
    ...c,
    category: c.rule.split('/').slice(0, 2).join('/'),
    wrap_gold: true,
  }));
}

/** Math-Verify's verdicts through the venv's python; throws with the setup command when the venv is missing. */
function mathVerify(cases: Case[], name: string): { equal: boolean[]; casesPerSec: number; worstMs: number } {
  const py = path.join(VENV, 'bin', 'python');
  if (!fs.existsSync(py))
    throw new Error(`no Math-Verify venv at ${VENV}: run bash bench/setup_math_verify.sh`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ovr-mv-'));
  const inp = path.join(dir, `${name}.jsonl`);
  const out = path.join(dir, `${name}.out.jsonl`);
  fs.writeFileSync(inp, cases.map((c) => JSON.stringify(c)).join('\n'));
  execFileSync(py, [path.join(ROOT, 'bench', 'math_verify_run.py'), inp, out], { stdio: 'inherit' });
  const rows = fs
    .readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const summary = rows.pop().summary;
  fs.rmSync(dir, { recursive: true, force: true });
  return { equal: rows.map((r) => r.equal), casesPerSec: summary.casesPerSec, worstMs: summary.worstMs };
}

async function ours(cases: Case[]): Promise<{ verdicts: Verdict[]; poolCps: number; inprocCps: number }> {
  const pool = new VerifierPool({ threads: THREADS });
  await pool.ready();
  const t0 = performance.now();
  const verdicts = await Promise.all(
    cases.map((c) => pool.verify(c.gold, c.prediction, rowOptions(c.config))),
  );
  const poolCps = cases.length / ((performance.now() - t0) / 1000);
  await pool.close();
  verify('1', '1'); // warm the synchronous worker
  const t1 = performance.now();
  for (const c of cases) verify(c.gold, c.prediction, rowOptions(c.config));
  const inprocCps = cases.length / ((performance.now() - t1) / 1000);
  return { verdicts, poolCps, inprocCps };
}

interface Tally {
  n: number;
  both: number;
  onlyOurs: number;
  onlyTheirs: number;
  neither: number;
  oursFp: number;
  theirsFp: number;
  agree: number;
}

function tally(cases: Case[], o: boolean[], t: boolean[]): Tally {
  const r: Tally = {
    n: 0,
    both: 0,
    onlyOurs: 0,
    onlyTheirs: 0,
    neither: 0,
    oursFp: 0,
    theirsFp: 0,
    agree: 0,
  };
  cases.forEach((c, i) => {
    const a = o[i] === c.expected;
    const b = t[i] === c.expected;
    r.n++;
    if (a && b) r.both++;
    else if (a) r.onlyOurs++;
    else if (b) r.onlyTheirs++;
    else r.neither++;
    if (o[i] && !c.expected) r.oursFp++;
    if (t[i] && !c.expected) r.theirsFp++;
    if (o[i] === t[i]) r.agree++;
  });
  return r;
}

const pct = (a: number, n: number) => `${((100 * a) / n).toFixed(1)}%`;

function table(name: string, cases: Case[], o: boolean[], t: boolean[]): string[] {
  const head = `| ${name} category | n | both right | only ours | only Math-Verify | both wrong | ours acc (FP) | MV acc (FP) | agree |`;
  const lines = [head, `|${'---|'.repeat(9)}`];
  const row = (label: string, x: Tally) =>
    `| ${label} | ${x.n} | ${x.both} | ${x.onlyOurs} | ${x.onlyTheirs} | ${x.neither} | ${pct(x.both + x.onlyOurs, x.n)} (${x.oursFp}) | ${pct(x.both + x.onlyTheirs, x.n)} (${x.theirsFp}) | ${pct(x.agree, x.n)} |`;
  const cats = [...new Set(cases.map((c) => c.category))].sort();
  for (const cat of cats) {
    const idx = cases.map((c, i) => (c.category === cat ? i : -1)).filter((i) => i >= 0);
    lines.push(
      row(
        cat,
        tally(
          idx.map((i) => cases[i]),
          idx.map((i) => o[i]),
          idx.map((i) => t[i]),
        ),
      ),
    );
  }
  lines.push(row('**all**', tally(cases, o, t)));
  return lines;
}

async function main(): Promise<void> {
  const sets: [string, Case[]][] = [
    ['dev', devCases()],
    ['corpus', corpusCases()],
  ];
  const md: string[] = [
    `# Ours vs Math-Verify (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores)`,
    '',
  ];
  const disagreements: unknown[] = [];
  for (const [name, cases] of sets) {
    const o = await ours(cases);
    const mv = mathVerify(cases, name);
    const oEq = o.verdicts.map((v) => v.equal);
    md.push(...table(name, cases, oEq, mv.equal), '');
    const worst = Math.max(...o.verdicts.map((v) => v.ms ?? 0));
    md.push(
      `${name}: ours ${o.poolCps.toFixed(0)} cases/s (pool, ${THREADS} threads), ${o.inprocCps.toFixed(0)} cases/s (in-process, synchronous worker); Math-Verify ${mv.casesPerSec.toFixed(0)} cases/s (1 process). Worst case: ours ${worst.toFixed(0)} ms, Math-Verify ${mv.worstMs.toFixed(0)} ms.`,
      '',
    );
    cases.forEach((c, i) => {
      if (oEq[i] !== mv.equal[i])
        disagreements.push({
          set: name,
          ...c,
          ours: oEq[i],
          mathVerify: mv.equal[i],
          reason: o.verdicts[i].reason,
        });
    });
  }
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  const mdFile = path.join(ROOT, 'bench', 'results', 'reward_compare.md');
  fs.writeFileSync(mdFile, `${md.join('\n')}\n`);
  // Aligned columns, as the repo's formatter wants them (bench/ is linted).
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'biome'), ['format', '--write', mdFile], {
    stdio: 'ignore',
  });
  fs.writeFileSync(
    path.join(ROOT, 'bench', 'results', 'reward_disagreements.jsonl'),
    `${disagreements.map((d) => JSON.stringify(d)).join('\n')}\n`,
  );
  console.log(md.join('\n'));
}

await main();

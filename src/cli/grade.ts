// `ovr-train grade FILE.jsonl`: grade predictions against gold answers with the math verifier (worker pool, hard
// per-case time limit). Writes one verdict per line and prints a one-line summary; when rows carry `expected`,
// also accuracy, false positives and false negatives (and a per-category table when rows carry `category`).

import fs from 'node:fs';
import { VerifierPool } from '../reward/pool.js';
import type { Verdict, VerifyOptions } from '../reward/verify.js';

const HELP = `Usage: ovr-train grade FILE.jsonl [flags]

Grades each JSONL row's prediction against its gold answer (1 = mathematically equal).

Flags:
  --pred-field NAME   field holding the model output (default: prediction)
  --gold-field NAME   field holding the gold answer (default: gold)
  --out FILE          write one verdict per line: {id?, verdict, extracted, reason, ms, timedOut?}
                      (ms: wall time of the case in its worker, 0.01 ms resolution)
  --threads N         worker threads (default 2)
  --budget-ms MS      per-case time limit; a timeout counts as not equal (default 2000)
  --help              this text

Rows may carry: id, expected (true/false: adds accuracy / false positives / false negatives), category
(adds a per-category table), config (Math-Verify knobs: targets, float_rounding, strict,
allow_set_relation_comp, choices).`;

interface GradeFlags {
  file: string;
  predField: string;
  goldField: string;
  out?: string;
  threads: number;
  budgetMs: number;
}

/** Parses argv; throws with a message naming the bad flag. */
export function parseGradeArgs(argv: string[]): GradeFlags | 'help' {
  const f: Partial<GradeFlags> = { predField: 'prediction', goldField: 'gold', threads: 2, budgetMs: 2000 };
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') return 'help';
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    const [key, inline] = a.split('=', 2);
    const val = inline ?? argv[++i];
    if (val === undefined) throw new Error(`grade: ${key} needs a value`);
    if (key === '--pred-field') f.predField = val;
    else if (key === '--gold-field') f.goldField = val;
    else if (key === '--out') f.out = val;
    else if (key === '--threads' || key === '--budget-ms') {
      const n = Number(val);
      if (!(Number.isInteger(n) && n > 0))
        throw new Error(`grade: ${key} must be a positive integer, got '${val}'`);
      if (key === '--threads') f.threads = n;
      else f.budgetMs = n;
    } else throw new Error(`grade: unknown flag ${key} (see ovr-train grade --help)`);
  }
  if (pos.length !== 1) throw new Error(`grade: expected one FILE.jsonl, got ${pos.length} (see --help)`);
  return { ...(f as GradeFlags), file: pos[0] };
}

/** Math-Verify-style `config` of a row → VerifyOptions. */
export function rowOptions(config: unknown): VerifyOptions {
  if (config === undefined || config === null) return {};
  const c = config as Record<string, any>;
  return {
    targets: c.targets,
    floatRounding: c.float_rounding,
    strict: c.strict,
    allowSetRelationComp: c.allow_set_relation_comp,
    choices: c.choices,
  };
}

interface Row {
  id?: string;
  pred: string;
  gold: string;
  expected?: boolean;
  category?: string;
  opts: VerifyOptions;
}

function readRows(file: string, flags: GradeFlags): Row[] {
  if (!fs.existsSync(file)) throw new Error(`grade: no such file '${file}'`);
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const rows: Row[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let r: any;
    try {
      r = JSON.parse(line);
    } catch {
      throw new Error(`grade: ${file}:${i + 1} is not valid JSON`);
    }
    const pred = r[flags.predField];
    const gold = r[flags.goldField];
    if (typeof pred !== 'string' || typeof gold !== 'string') {
      throw new Error(
        `grade: ${file}:${i + 1} needs string fields '${flags.predField}' and '${flags.goldField}' (use --pred-field/--gold-field)`,
      );
    }
    rows.push({
      id: r.id,
      pred,
      gold,
      expected: r.expected,
      category: r.category,
      opts: rowOptions(r.config),
    });
  });
  return rows;
}

function summary(rows: Row[], verdicts: Verdict[], seconds: number): string[] {
  const eq = verdicts.filter((v) => v.equal).length;
  const timeouts = verdicts.filter((v) => v.timedOut).length;
  const out = [
    `graded ${rows.length}: ${eq} equal, ${rows.length - eq} not equal, ${timeouts} timeouts, ${seconds.toFixed(2)} s (${(rows.length / seconds).toFixed(0)} cases/s)`,
  ];
  const labelled = rows
    .map((r, i) => [r, verdicts[i]] as const)
    .filter(([r]) => typeof r.expected === 'boolean');
  if (labelled.length === 0) return out;
  const tally = (xs: typeof labelled) => {
    const fp = xs.filter(([r, v]) => v.equal && !r.expected).length;
    const fn = xs.filter(([r, v]) => !v.equal && r.expected).length;
    return { n: xs.length, ok: xs.length - fp - fn, fp, fn };
  };
  const all = tally(labelled);
  out.push(
    `accuracy ${((100 * all.ok) / all.n).toFixed(1)}% (${all.ok}/${all.n}), false positives ${all.fp}, false negatives ${all.fn}`,
  );
  const cats = [
    ...new Set(labelled.map(([r]) => r.category).filter((c): c is string => typeof c === 'string')),
  ].sort();
  if (cats.length > 0) {
    out.push(
      `${'category'.padEnd(22)} ${'n'.padStart(4)} ${'acc'.padStart(7)} ${'FP'.padStart(3)} ${'FN'.padStart(3)}`,
    );
    for (const c of cats) {
      const t = tally(labelled.filter(([r]) => r.category === c));
      out.push(
        `${c.padEnd(22)} ${String(t.n).padStart(4)} ${((100 * t.ok) / t.n).toFixed(1).padStart(6)}% ${String(t.fp).padStart(3)} ${String(t.fn).padStart(3)}`,
      );
    }
  }
  return out;
}

/** `ovr-train grade`: returns the exit code (0 ok, 2 bad usage or input). */
export async function gradeCommand(argv: string[]): Promise<number> {
  let flags: GradeFlags | 'help';
  let rows: Row[];
  try {
    flags = parseGradeArgs(argv);
    if (flags === 'help') {
      console.log(HELP);
      return 0;
    }
    rows = readRows(flags.file, flags);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 2;
  }
  const pool = new VerifierPool({ threads: flags.threads, budgetMs: flags.budgetMs });
  try {
    await pool.ready(); // time the grading, not the workers' start (~0.5 s each)
    const t0 = performance.now();
    const verdicts = await Promise.all(rows.map((r) => pool.verify(r.gold, r.pred, r.opts)));
    const seconds = (performance.now() - t0) / 1000;
    if (flags.out) {
      const lines = rows.map((r, i) => {
        const v = verdicts[i];
        const rec = {
          ...(r.id !== undefined ? { id: r.id } : {}),
          verdict: v.equal,
          extracted: v.extracted,
          reason: v.reason,
          ms: Math.round((v.ms ?? 0) * 100) / 100,
        };
        return JSON.stringify(v.timedOut ? { ...rec, timedOut: true } : rec);
      });
      fs.writeFileSync(flags.out, `${lines.join('\n')}\n`);
    }
    for (const line of summary(rows, verdicts, seconds)) console.log(line);
    return 0;
  } finally {
    await pool.close();
  }
}

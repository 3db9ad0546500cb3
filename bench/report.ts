// Markdown for docs/performance.md from a bench result file: machine and versions, per-backend numbers,
// our/PyTorch ratios, FLOP rates against the native sgemm peak, and the per-kernel SFT profile.
// Pure functions of the result JSON; run.ts splices their output between the doc's marker comments.
import type { KernelSummary } from './profile.js';

/** One measured (or skipped) process: an ovr backend or the PyTorch reference, for one config. */
export interface RunResult {
  impl: 'ovr' | 'pytorch';
  backend: string;
  config: string;
  threads?: number;
  skipped?: string;
  error?: string;
  params?: number;
  matmul1024Gflops?: number;
  sgemm?: { n: number; ms: number; gflops: number; threads: number }[];
  sft?: { ms?: number; tokensPerS?: number; modelGflops?: number; loss0?: number; skipped?: string };
  forward?: { ms: number; tokensPerS: number };
  generate?: Record<string, { ms: number; tokensPerS: number; prompt: number; newTokens: number }>;
  vision?: { image: number; patches: number; forwardMs: number; fwdBwdMs: number };
  /** peakLiveBytes: wasm buffers live at once (shared buffers once); wasmHeapBytes: the grown wasm heap. */
  memory?: { peakTensorBytes?: number; peakRssBytes: number; peakLiveBytes?: number; wasmHeapBytes?: number };
  peakTensorBytesSource?: string;
  profile?: { wallMs: number; rows: KernelSummary[] } | { error: string };
  wallS?: number;
  /** 1-minute load average when the process started. */
  loadavg?: number;
}

export interface BenchResults {
  date: string;
  machine: Record<string, string | number>;
  versions: Record<string, string>;
  settings: Record<string, string | number>;
  configs: Record<string, string>;
  runs: RunResult[];
}

const f = (x: number | undefined, digits = 1): string =>
  x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
const mb = (x: number | undefined): string => (x ? (x / 2 ** 20).toFixed(0) : '–');
const ratio = (ours: number | undefined, ref: number | undefined): string =>
  ours && ref ? `${(ours / ref).toFixed(3)}×` : '–';

/** Table row cells for one run. */
function numbers(r: RunResult): string[] {
  const g = r.generate ?? {};
  return [
    r.sft?.ms ? f(r.sft.ms, 0) : (r.sft?.skipped ?? '–'),
    f(r.sft?.tokensPerS),
    f(r.forward?.tokensPerS),
    f(g['1']?.tokensPerS),
    f(g['8']?.tokensPerS),
    f(r.vision?.forwardMs),
    f(r.vision?.fwdBwdMs),
    mb(r.memory?.peakLiveBytes ?? r.memory?.peakTensorBytes),
    mb(r.memory?.wasmHeapBytes),
    mb(r.memory?.peakRssBytes),
    f(r.loadavg, 2),
  ];
}

const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;

const label = (r: RunResult): string =>
  r.impl === 'pytorch'
    ? `PyTorch ${(r as { versions?: { torch?: string } }).versions?.torch ?? ''} CPU (${r.threads} threads)`
    : `ovr ${r.backend}${r.threads ? ` (${r.threads} thread${r.threads > 1 ? 's' : ''})` : ''}`;

/**
 * Per-config table of raw numbers (one row per backend) followed by the our/PyTorch throughput ratios.
 * @example configTables(results, 'small') // '| backend | SFT step ms | ...'
 */
export function configTables(res: BenchResults, config: string): string {
  const runs = res.runs.filter((r) => r.config === config);
  const refs = runs.filter((r) => r.impl === 'pytorch' && !r.skipped && !r.error);
  // Each ratio is against the faster PyTorch for that measurement (Debian 1.13 + OpenBLAS, or PyPI's current).
  const most = (get: (r: RunResult) => number | undefined) => {
    const xs = refs.map(get).filter((x): x is number => x !== undefined);
    return xs.length ? Math.max(...xs) : undefined;
  };
  const least = (get: (r: RunResult) => number | undefined) => {
    const xs = refs.map(get).filter((x): x is number => x !== undefined);
    return xs.length ? Math.min(...xs) : undefined;
  };
  const out: string[] = [];
  out.push(
    row([
      'backend',
      'SFT step ms',
      'SFT tok/s',
      'fwd tok/s',
      'gen tok/s b=1',
      'gen tok/s b=8',
      'vision fwd ms',
      'vision fwd+bwd ms',
      'peak tensors MiB',
      'wasm heap MiB',
      'peak RSS MiB',
      'load',
    ]),
  );
  out.push(row(Array(12).fill('---')));
  for (const r of runs) {
    if (r.skipped || r.error)
      out.push(
        row([label(r), `${r.skipped ? 'skipped' : 'error'}: ${r.skipped ?? r.error}`, ...Array(9).fill('')]),
      );
    else out.push(row([label(r), ...numbers(r)]));
  }
  out.push('');
  out.push('**our / the faster PyTorch** (throughput ratio per column: > 1 means we are faster):');
  out.push('');
  out.push(
    row(['backend', 'SFT step', 'forward', 'generate b=1', 'generate b=8', 'vision fwd', 'vision fwd+bwd']),
  );
  out.push(row(Array(7).fill('---')));
  for (const r of runs.filter((x) => x.impl === 'ovr' && !x.skipped && !x.error)) {
    out.push(
      row([
        label(r),
        ratio(
          r.sft?.tokensPerS,
          most((x) => x.sft?.tokensPerS),
        ),
        ratio(
          r.forward?.tokensPerS,
          most((x) => x.forward?.tokensPerS),
        ),
        ratio(
          r.generate?.['1']?.tokensPerS,
          most((x) => x.generate?.['1']?.tokensPerS),
        ),
        ratio(
          r.generate?.['8']?.tokensPerS,
          most((x) => x.generate?.['8']?.tokensPerS),
        ),
        ratio(
          least((x) => x.vision?.forwardMs),
          r.vision?.forwardMs,
        ),
        ratio(
          least((x) => x.vision?.fwdBwdMs),
          r.vision?.fwdBwdMs,
        ),
      ]),
    );
  }
  return out.join('\n');
}

/** Native sgemm peak (per config: the torch.mm of that config's PyTorch process) and our FLOP rates as a fraction of it. */
export function flopTable(res: BenchResults): string {
  const peakOf = (config: string): number =>
    Math.max(
      0,
      ...res.runs
        .filter((r) => r.config === config && r.sgemm)
        .flatMap((r) => (r.sgemm ?? []).map((s) => s.gflops)),
    );
  const out = [
    'Peak = the best `torch.mm` (n = 1024 / 2048) GFLOP/s measured by the PyTorch process of the same config, in the',
    'same run (the load changed between processes, so each config has its own peak).',
    '',
    row([
      'config',
      'backend',
      'sgemm peak GFLOP/s',
      'matMul 1024 GFLOP/s',
      'of peak',
      'SFT model GFLOP/s',
      'of peak',
    ]),
    row(Array(7).fill('---')),
  ];
  for (const r of res.runs.filter((x) => !x.skipped && !x.error)) {
    const peak = peakOf(r.config);
    const mm = r.impl === 'pytorch' ? r.sgemm?.[0]?.gflops : r.matmul1024Gflops;
    const sft = r.sft?.modelGflops ?? (r.impl === 'pytorch' ? modelRate(res, r) : undefined);
    const pct = (x: number | undefined, d: number) => (peak && x ? `${((100 * x) / peak).toFixed(d)}%` : '–');
    out.push(row([r.config, label(r), f(peak), f(mm), pct(mm, 0), f(sft), pct(sft, 1)]));
  }
  return out.join('\n');
}

/** PyTorch's SFT model GFLOP/s from ours: same model FLOPs per step, so rate scales with 1 / step time. */
function modelRate(res: BenchResults, torch: RunResult): number | undefined {
  const ours = res.runs.find((r) => r.config === torch.config && r.sft?.modelGflops && r.sft.ms);
  return ours?.sft?.modelGflops && ours.sft.ms && torch.sft?.ms
    ? (ours.sft.modelGflops * ours.sft.ms) / torch.sft.ms
    : undefined;
}

type ProfileOk = { wallMs: number; rows: KernelSummary[] };
const okProfile = (p: RunResult['profile']): ProfileOk | undefined => (p && 'rows' in p ? p : undefined);
const kernelSum = (p: ProfileOk): number => p.rows.reduce((s, r) => s + r.ms, 0);
const costliest = (r: KernelSummary | undefined): string[] =>
  r
    ? [r.top.shapes ? `\`${r.top.shapes}\`` : '', r.top.calls ? `${f(r.top.ms, 0)} / ${r.top.calls}` : '']
    : ['', ''];

/**
 * Per-kernel profile of one SFT step. With both `before` (baseline result) and `after`: one row per kernel of
 * either, ordered by the larger time, calls / ms / share of each and the costliest call after. With one of them:
 * that profile alone.
 * @example profileTable(baseline.runs[i].profile, current.runs[i].profile)
 */
export function profileTable(before0: RunResult['profile'], after0?: RunResult['profile']): string {
  const [before, after] = [okProfile(before0), okProfile(after0)];
  if (!before && !after) {
    const err = [before0, after0].find((p) => p && 'error' in p) as { error: string } | undefined;
    return err
      ? `_the profiled step failed: ${err.error}_`
      : '_no profile recorded (run with the wasm backend)_';
  }
  const one = !before || !after ? (before ?? after) : undefined;
  if (one) {
    const out = [
      row(['kernel', 'calls', 'ms', 'share', 'costliest call (input shapes)', 'its ms / calls']),
      row(Array(6).fill('---')),
    ];
    for (const r of one.rows)
      out.push(
        row([
          `\`${r.name}\``,
          String(r.calls),
          f(r.ms, 0),
          `${(100 * r.share).toFixed(1)}%`,
          ...costliest(r),
        ]),
      );
    out.push(
      '',
      `Kernel time sum ${f(kernelSum(one) / 1e3, 2)} s of a ${f(one.wallMs / 1e3, 2)} s profiled step.`,
    );
    return out.join('\n');
  }
  const b = new Map((before as ProfileOk).rows.map((r) => [r.name, r]));
  const a = new Map((after as ProfileOk).rows.map((r) => [r.name, r]));
  const names = [...new Set([...b.keys(), ...a.keys()])].sort(
    (x, y) => Math.max(b.get(y)?.ms ?? 0, a.get(y)?.ms ?? 0) - Math.max(b.get(x)?.ms ?? 0, a.get(x)?.ms ?? 0),
  );
  const cells = (r: KernelSummary | undefined) =>
    r ? [String(r.calls), f(r.ms, 0), `${(100 * r.share).toFixed(1)}%`] : ['0', '0', '–'];
  const out = [
    row([
      'kernel',
      'before calls',
      'before ms',
      'before share',
      'after calls',
      'after ms',
      'after share',
      'after costliest call',
      'its ms / calls',
    ]),
    row(Array(9).fill('---')),
  ];
  for (const n of names)
    out.push(row([`\`${n}\``, ...cells(b.get(n)), ...cells(a.get(n)), ...costliest(a.get(n))]));
  const [bp, ap] = [before as ProfileOk, after as ProfileOk];
  out.push(
    '',
    `Kernel time sum: before ${f(kernelSum(bp) / 1e3, 2)} s of a ${f(bp.wallMs / 1e3, 2)} s profiled step; ` +
      `after ${f(kernelSum(ap) / 1e3, 2)} s of ${f(ap.wallMs / 1e3, 2)} s.`,
  );
  return out.join('\n');
}

/** Machine, versions and settings as a bullet list. */
export function headerList(res: BenchResults): string {
  const kv = (o: Record<string, string | number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ');
  return [
    `- Run: ${res.date}`,
    `- Machine: ${kv(res.machine)}`,
    `- Versions: ${kv(res.versions)}`,
    `- Settings: ${kv(res.settings)}`,
    ...Object.entries(res.configs).map(([k, v]) => `- Config \`${k}\`: ${v}`),
  ].join('\n');
}

/** Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->` (appends the block when absent). */
export function splice(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n${body}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) return `${doc.trimEnd()}\n\n${block}\n`;
  return doc.slice(0, i) + block + doc.slice(j + end.length);
}

// `npm run bench`: ours (cpu / wasm / webgpu, one child process each) and the PyTorch CPU reference
// (bench/torch_ref.py, same architecture, sizes and timing) for the tiny and the small config, one after the
// other in one run; writes bench/results/<date>.json and regenerates the tables in docs/performance.md.
// Not part of `npm test`.
//
// Env: OVR_BENCH_ONLY=tiny/wasm,small/torch  limit the runs (config/backend pairs)
//      OVR_BENCH_REPEATS=3  OVR_BENCH_WARMUP=1  OVR_BENCH_TORCH_THREADS=2  OVR_BENCH_PYTHON=/usr/bin/python3
//      OVR_BENCH_BASELINE=bench/results/<earlier>.json  the "before" profile column (default: this run only)
//      OVR_BENCH_MERGE=1  replace only the re-run pairs in today's result file (keep the others)
//      OVR_BENCH_REPORT_ONLY=1  only regenerate docs/performance.md from today's result file
//      OVR_BENCH_CPU_SMALL=1  also run the pure-JS cpu backend on the small config (about 1 GFLOP/s: many minutes a step)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/model/config.js';
import { describeConfig } from '../src/model/params.js';
import {
  type BenchResults,
  configTables,
  flopTable,
  headerList,
  profileTable,
  type RunResult,
  splice,
} from './report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = process.env.OVR_BENCH_PYTHON ?? '/usr/bin/python3';
const REPEATS = Number(process.env.OVR_BENCH_REPEATS ?? 3);
const WARMUP = Number(process.env.OVR_BENCH_WARMUP ?? 1);
const TORCH_THREADS = Number(process.env.OVR_BENCH_TORCH_THREADS ?? 2);
const SETTINGS = { batch: 2, seq: 256, genPrompt: 32, genNew: 32, image: 112 };
const CONFIGS: Record<string, string> = {
  tiny: 'models/tiny/config.json',
  small: 'bench/configs/small.json',
  // The small model at T = 128: session 1's SFT comparison (T = 256 did not fit the wasm heap then); kept so the
  // per-kernel profile has a same-shape before/after.
  small_T128: 'bench/configs/small.json',
};
/** Sequence length per config (default SETTINGS.seq). */
const SEQ: Record<string, number> = { small_T128: 128 };
const seqOf = (config: string): number => SEQ[config] ?? SETTINGS.seq;

interface Plan {
  config: string;
  /** 'wasm-mt': wasm with the experimental 2-thread shim (opt-in row, never the default number). */
  backend: 'cpu' | 'wasm' | 'wasm-mt' | 'webgpu' | 'torch';
  /** Extra model.ts flags (fewer repeats on slow backends). */
  flags?: string[];
  /** Reason to skip instead of running. */
  skip?: string;
}

/** wasm flags for the small configs: one profiled B=2 step (the SFT step fits the heap since the memory pass). */
const WASM_SMALL = ['--profile', '--repeats', '2'];

/** The default plan: every backend on tiny, and on small all but the pure-JS cpu backend (unless asked). */
export function defaultPlan(cpuSmall: boolean): Plan[] {
  const slow = ['--warmup', '1', '--repeats', '1'];
  return [
    { config: 'tiny', backend: 'torch' },
    { config: 'tiny', backend: 'wasm', flags: ['--profile'] },
    { config: 'tiny', backend: 'cpu', flags: slow },
    { config: 'tiny', backend: 'webgpu', flags: slow },
    { config: 'small', backend: 'torch' },
    { config: 'small', backend: 'wasm', flags: WASM_SMALL },
    // Experimental, opt-in in the library: the same step on 2 wasm threads (reported as its own row).
    { config: 'small', backend: 'wasm-mt', flags: ['--repeats', '2', '--skip', 'generate,vision'] },
    cpuSmall
      ? { config: 'small', backend: 'cpu', flags: ['--warmup', '0', '--repeats', '1'] }
      : {
          config: 'small',
          backend: 'cpu',
          skip: 'pure-JS backend at ~1 GFLOP/s: one SFT step is ~350 GFLOP (minutes); OVR_BENCH_CPU_SMALL=1 runs it',
        },
    { config: 'small', backend: 'webgpu', flags: slow },
    { config: 'small_T128', backend: 'torch', flags: ['--skip', 'generate,vision'] },
    { config: 'small_T128', backend: 'wasm', flags: [...WASM_SMALL, '--skip', 'generate,vision'] },
  ];
}

/** Last stdout line parsed as JSON, or an error result naming the exit status and stderr tail. */
function lastJson(stdout: string, stderr: string, status: number | null): Record<string, unknown> {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    return { error: `exit ${status}: ${tail || 'no output'}` };
  }
}

/** The measurement settings both implementations take, so ours and PyTorch always time the same work. */
function settingsArgs(p: Plan): string[] {
  return [
    ...[
      '--batch',
      String(SETTINGS.batch),
      '--seq',
      String(seqOf(p.config)),
      '--image',
      String(SETTINGS.image),
    ],
    ...['--gen-prompt', String(SETTINGS.genPrompt), '--gen-new', String(SETTINGS.genNew)],
    ...['--warmup', String(WARMUP), '--repeats', String(REPEATS)],
    ...(p.flags ?? []),
  ];
}

function runOurs(p: Plan): RunResult {
  const args = [
    '--import',
    'tsx',
    'bench/model.ts',
    ...['--backend', p.backend === 'wasm-mt' ? 'wasm' : p.backend, '--config', CONFIGS[p.config]],
    ...['--name', p.config, ...(p.backend === 'wasm-mt' ? ['--wasm-threads', '2'] : [])],
    ...settingsArgs(p),
  ];
  const env = { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' };
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  process.stderr.write(
    r.stderr
      .split('\n')
      .filter((l) => l.startsWith('[bench') || l.startsWith('ovr backend'))
      .join('\n') + '\n',
  );
  return {
    impl: 'ovr',
    config: p.config,
    ...lastJson(r.stdout, r.stderr, r.status),
    backend: p.backend,
  } as RunResult;
}

/** True when Debian's python3 can import torch; otherwise tries bench/setup_torch.sh (apt) once. */
function ensureTorch(): string | null {
  const ok = () => spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (ok()) return null;
  console.error('bench: torch missing, running bench/setup_torch.sh (apt-get)');
  const r = spawnSync('bash', ['bench/setup_torch.sh'], { cwd: ROOT, stdio: 'inherit' });
  return r.status === 0 && ok() ? null : 'python3-torch not importable; run bench/setup_torch.sh as root';
}

function runTorch(p: Plan): RunResult {
  const why = ensureTorch();
  if (why) return { impl: 'pytorch', backend: 'torch-cpu', config: p.config, skipped: why };
  const args = [
    'bench/torch_ref.py',
    ...['--config', CONFIGS[p.config], '--name', p.config, '--threads', String(TORCH_THREADS)],
    ...settingsArgs(p),
  ];
  const env = {
    ...process.env,
    OMP_NUM_THREADS: String(TORCH_THREADS),
    OPENBLAS_NUM_THREADS: String(TORCH_THREADS),
  };
  const r = spawnSync(PYTHON, args, { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  return {
    impl: 'pytorch',
    backend: 'torch-cpu',
    config: p.config,
    ...lastJson(r.stdout, r.stderr, r.status),
  } as RunResult;
}

function pkgVersion(name: string): string {
  try {
    return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

function machine(): Record<string, string | number> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? '?',
    vcpus: cpus.length,
    memGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: `${os.type()} ${os.release()}`,
    loadavgStart: os.loadavg()[0].toFixed(2),
  };
}

/** Regenerates the marked blocks of docs/performance.md from `res` (and `baseline` for the profile's before column). */
export function updateDoc(doc: string, res: BenchResults, baseline: BenchResults | null): string {
  const prof = (r: BenchResults | null, config: string) =>
    r?.runs.find((x) => x.config === config && x.backend === 'wasm' && x.profile)?.profile;
  let out = splice(doc, 'bench:header', headerList(res));
  for (const c of Object.keys(res.configs)) out = splice(out, `bench:${c}`, configTables(res, c));
  out = splice(out, 'bench:flops', flopTable(res));
  for (const c of Object.keys(res.configs)) {
    const before = baseline ? prof(baseline, c) : prof(res, c);
    out = splice(out, `bench:profile-${c}`, profileTable(before, baseline ? prof(res, c) : undefined));
  }
  return out;
}

async function main(): Promise<void> {
  if (process.env.OVR_BENCH_REPORT_ONLY === '1') {
    const file = path.join(ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}.json`);
    writeReport(JSON.parse(readFileSync(file, 'utf8')) as BenchResults);
    return;
  }
  const only = (process.env.OVR_BENCH_ONLY ?? '').split(',').filter(Boolean);
  const plan = defaultPlan(process.env.OVR_BENCH_CPU_SMALL === '1').filter(
    (p) => only.length === 0 || only.includes(`${p.config}/${p.backend}`),
  );
  const started = new Date();
  const res: BenchResults = {
    date: started.toISOString(),
    machine: machine(),
    versions: {
      node: process.version,
      'tfjs-core': pkgVersion('@tensorflow/tfjs-core'),
      'tfjs-backend-wasm': pkgVersion('@tensorflow/tfjs-backend-wasm'),
      'tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu'),
      webgpu: pkgVersion('webgpu'),
    },
    settings: { ...SETTINGS, repeats: REPEATS, warmup: WARMUP, torchThreads: TORCH_THREADS, wasmThreads: 1 },
    configs: Object.fromEntries(
      Object.entries(CONFIGS).map(([k, f]) => [
        k,
        `${describeConfig(parseConfig(JSON.parse(readFileSync(path.join(ROOT, f), 'utf8')), f))} | B=${SETTINGS.batch} T=${seqOf(k)}`,
      ]),
    ),
    runs: [],
  };
  for (const p of plan) {
    const t0 = performance.now();
    const load = os.loadavg()[0];
    console.error(`bench: ${p.config} / ${p.backend} ...`);
    const r: RunResult = p.skip
      ? { impl: 'ovr', backend: p.backend, config: p.config, skipped: p.skip }
      : p.backend === 'torch'
        ? runTorch(p)
        : runOurs(p);
    r.wallS = Number(((performance.now() - t0) / 1e3).toFixed(1));
    r.loadavg = Number(load.toFixed(2));
    if (r.impl === 'pytorch' && !r.skipped && !r.error) {
      const t = r as RunResult & { versions?: Record<string, string>; blasLibs?: string[] };
      res.versions.torch = t.versions?.torch ?? '?';
      res.versions.blas = (t.blasLibs ?? []).map((l) => path.basename(l)).join(' ') || '?';
    }
    res.runs.push(r);
    console.error(
      `bench: ${p.config} / ${p.backend} done in ${r.wallS} s${r.error ? ` (error: ${r.error})` : ''}`,
    );
  }
  res.machine.loadavgEnd = os.loadavg()[0].toFixed(2);
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${started.toISOString().slice(0, 10)}.json`);
  if (process.env.OVR_BENCH_MERGE === '1' && existsSync(file))
    mergeInto(res, JSON.parse(readFileSync(file, 'utf8')));
  writeFileSync(file, `${JSON.stringify(res, null, 2)}\n`);
  writeReport(res);
  console.error(`bench: wrote ${path.relative(ROOT, file)} and docs/performance.md`);
  for (const c of Object.keys(res.configs)) console.log(`\n## ${c}\n\n${configTables(res, c)}`);
  checkSameModel(res);
}

/** Regenerates docs/performance.md from `res` (profile "before" from OVR_BENCH_BASELINE when set). */
function writeReport(res: BenchResults): void {
  const docPath = path.join(ROOT, 'docs', 'performance.md');
  const basePath = process.env.OVR_BENCH_BASELINE;
  const baseline = basePath ? (JSON.parse(readFileSync(basePath, 'utf8')) as BenchResults) : null;
  const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Performance\n';
  writeFileSync(docPath, updateDoc(doc, res, baseline));
}

/** Keeps the earlier runs of `old` that `res` did not redo (in their original order), and notes both dates. */
function mergeInto(res: BenchResults, old: BenchResults): void {
  const key = (r: RunResult) => `${r.config}/${r.backend}`;
  const redone = new Map(res.runs.map((r) => [key(r), r]));
  res.runs = old.runs.map((r) => redone.get(key(r)) ?? r);
  for (const r of redone.values()) if (!res.runs.includes(r)) res.runs.push(r);
  res.machine.loadavgStart = old.machine.loadavgStart;
  res.date = `${String(old.date).split(';')[0]}; last re-run (${[...redone.keys()].join(', ')}) ${res.date}`;
}

/** The PyTorch model must have exactly our parameter count per config, or the comparison is void. */
function checkSameModel(res: BenchResults): void {
  for (const c of Object.keys(res.configs)) {
    const counts = new Set(res.runs.filter((r) => r.config === c && r.params).map((r) => r.params));
    if (counts.size > 1) {
      throw new Error(
        `bench: parameter counts differ for ${c}: ${[...counts].join(' vs ')}; torch_ref.py is not the same model`,
      );
    }
  }
}

if (process.argv[1]?.endsWith('run.ts')) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}

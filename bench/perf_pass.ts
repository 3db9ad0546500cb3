// First performance pass: the small-config SFT step on wasm, BEFORE vs AFTER, measured side by side in one run.
// "before" is the library source at the pass's base commit, exported (not committed) with
//   mkdir -p bench/.perf_before && git archive <base> src | tar -x -C bench/.perf_before
// "after" is ./src. Each variant runs in its own child process (same flags), alternating before/after per
// round so both see the same machine load; every child times `repeats` steps after one warm-up and records
// one more step under tf.profile. The parent prints the timing ratio and a per-kernel table (markdown).
//
//   npx tsx bench/perf_pass.ts [--batch 1] [--seq 128] [--repeats 2] [--rounds 1] [--base bench/.perf_before/src]
//   OVR_PERF_OUT=bench/results/perf_pass.json also writes the raw result.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { aggregateKernels, type KernelRow, type KernelSummary } from './profile.js';

const run = promisify(execFile);
const CONFIG = 'bench/configs/small.json';

interface ChildResult {
  src: string;
  stepMs: number[];
  loss: number;
  profileMs: number;
  peakMiB: number;
  kernels: KernelRow[];
}

const flag = (argv: string[], name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};

/** One variant: build the small model from `srcDir`, time SFT steps, profile one. Prints a JSON line. */
async function child(srcDir: string, B: number, T: number, repeats: number): Promise<void> {
  const abs = new URL(`../${srcDir}/`, import.meta.url).href;
  const tf = await import('@tensorflow/tfjs-core');
  const { initBackend } = await import(`${abs}backend/index.js`);
  const { parseConfig } = await import(`${abs}model/config.js`);
  const { Qwen2_5_VL } = await import(`${abs}model/qwen2_5_vl.js`);
  const { AdamW, clipCoefficient, globalNorm } = await import(`${abs}train/optim.js`);
  const { Rng } = await import(`${abs}util/rng.js`);
  await initBackend({ backend: 'wasm', wasmMaxBytes: Math.floor(3.85 * 2 ** 30), log: () => {} });
  const cfg = parseConfig(JSON.parse(readFileSync(CONFIG, 'utf8')));
  const model = Qwen2_5_VL.init(cfg, 0);
  const rng = new Rng(1);
  const V = cfg.vocab_size;
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(V)));
  const labels = ids.map((r) => r.map((id, t) => (t < T / 4 ? -100 : id)));
  const vars = model.variables('lm') as import('@tensorflow/tfjs-core').Variable[];
  const named: Record<string, import('@tensorflow/tfjs-core').Variable> = {};
  const byVar = new Map<string, string>();
  for (const [k, t] of Object.entries(model.params as Record<string, unknown>)) {
    const v = t as import('@tensorflow/tfjs-core').Variable;
    if (vars.includes(v)) {
      named[k] = v;
      byVar.set(v.name, k);
    }
  }
  // AdamW's two moments (+712 MB) do not fit the 4 GiB wasm heap beside a full small-config step (the bench
  // runs it separately, `split` mode): the timed step is loss → grads → clip, where the pass's changes act.
  const opt = process.env.OVR_PERF_ADAMW === '1' ? new AdamW(named, { weightDecay: 0.01 }) : null;
  let loss = 0;
  const step = async (): Promise<void> => {
    const { value, grads } = tf.variableGrads(() => model.loss({ inputIds: ids }, labels), vars);
    loss = (await value.data())[0];
    const keyed: Record<string, import('@tensorflow/tfjs-core').Tensor> = {};
    for (const [n, g] of Object.entries(grads)) keyed[byVar.get(n) ?? n] = g;
    const norm = globalNorm(keyed);
    opt?.step(keyed, 1e-5, { gradScale: clipCoefficient((await norm.data())[0], 1.0) });
    tf.dispose([value, norm, ...Object.values(keyed)]);
  };
  await step(); // warm-up
  const stepMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await step();
    stepMs.push(performance.now() - t0);
  }
  const t0 = performance.now();
  const info = await tf.profile(step);
  const profileMs = performance.now() - t0;
  const kernels: KernelRow[] = info.kernels.map((k) => ({
    name: k.name,
    ms: Number(k.kernelTimeMs) || 0,
    inputShapes: k.inputShapes as (number[] | null)[],
  }));
  const out: ChildResult = {
    src: srcDir,
    stepMs,
    loss,
    profileMs,
    peakMiB: info.peakBytes / 2 ** 20,
    kernels,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Markdown: the costliest kernels before and after, side by side. */
function profileTable(before: KernelSummary[], after: KernelSummary[], limit: number): string {
  const names = [...new Set([...before.slice(0, limit), ...after.slice(0, limit)].map((k) => k.name))];
  const row = (k: KernelSummary | undefined) =>
    k
      ? [k.calls, k.ms.toFixed(0), `${(100 * k.share).toFixed(1)}%`, `\`${k.top.shapes}\``]
      : ['', '', '', ''];
  const lines = [
    '| kernel | before calls | before ms | before share | before costliest call | after calls | after ms | after share | after costliest call |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const n of names) {
    const b = before.find((k) => k.name === n);
    const a = after.find((k) => k.name === n);
    lines.push(`| \`${n}\` | ${[...row(b), ...row(a)].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Markdown: the costliest BatchMatMul input signatures (the LM head products), before and after. */
function matMulTable(before: KernelRow[], after: KernelRow[], limit: number): string {
  const bySig = (rows: KernelRow[]) => {
    const m = new Map<string, { ms: number; calls: number }>();
    for (const r of rows.filter((k) => k.name === 'BatchMatMul')) {
      const sig = r.inputShapes.map((s) => `[${s?.join(',')}]`).join('x');
      const e = m.get(sig) ?? { ms: 0, calls: 0 };
      e.ms += r.ms;
      e.calls += 1;
      m.set(sig, e);
    }
    return [...m.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, limit);
  };
  const lines = ['| variant | BatchMatMul input shapes | calls | ms |', '| --- | --- | --- | --- |'];
  for (const [n, rows] of [
    ['before', before],
    ['after', after],
  ] as const)
    for (const [sig, e] of bySig(rows)) lines.push(`| ${n} | \`${sig}\` | ${e.calls} | ${e.ms.toFixed(0)} |`);
  return lines.join('\n');
}

async function parent(argv: string[]): Promise<void> {
  const B = Number(flag(argv, '--batch', '1'));
  const T = Number(flag(argv, '--seq', '128'));
  const repeats = Number(flag(argv, '--repeats', '2'));
  const rounds = Number(flag(argv, '--rounds', '1'));
  const base = flag(argv, '--base', 'bench/.perf_before/src');
  const variants = { before: base, after: 'src' };
  const results: Record<'before' | 'after', ChildResult[]> = { before: [], after: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [name, src] of Object.entries(variants) as ['before' | 'after', string][]) {
      const args = ['tsx', 'bench/perf_pass.ts', '--child', src, '--batch', `${B}`, '--seq', `${T}`];
      const { stdout } = await run('npx', [...args, '--repeats', `${repeats}`], {
        maxBuffer: 1 << 28,
        env: process.env,
      }).catch((e: { stderr?: string }) => {
        const tail = (e.stderr ?? '').split('\n').filter((l) => l.length < 400);
        throw new Error(`${name} child failed: ${tail.slice(-8).join('\n')}`);
      });
      const res = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ChildResult;
      results[name].push(res);
      console.error(
        `${name} round ${r}: steps ${res.stepMs.map((m) => m.toFixed(0)).join(', ')} ms, loss ${res.loss}`,
      );
    }
  }
  const ms = (n: 'before' | 'after') => median(results[n].flatMap((x) => x.stepMs));
  const agg = (n: 'before' | 'after') => aggregateKernels(results[n][0].kernels, 40);
  const [bMs, aMs] = [ms('before'), ms('after')];
  const sum = (n: 'before' | 'after') => agg(n).reduce((s, k) => s + k.ms, 0) / 1000;
  const summary = [
    `Small config, wasm (1 thread), B=${B}, T=${T}, SFT step (grads of the text params, clip 1.0; AdamW only with OVR_PERF_ADAMW=1); ` +
      `median of ${repeats}×${rounds} steps per variant after one warm-up, variants alternating in one run.`,
    '',
    '| variant | SFT step ms | tok/s | loss | profiled kernel sum s | peak tensors MiB |',
    '| --- | --- | --- | --- | --- | --- |',
    ...(['before', 'after'] as const).map(
      (n) =>
        `| ${n} (\`${variants[n]}\`) | ${ms(n).toFixed(0)} | ${((B * T) / (ms(n) / 1000)).toFixed(1)} | ` +
        `${results[n][0].loss.toFixed(6)} | ${sum(n).toFixed(2)} | ${results[n][0].peakMiB.toFixed(0)} |`,
    ),
    '',
    `**after / before throughput: ${(bMs / aMs).toFixed(2)}×**`,
    '',
    profileTable(agg('before'), agg('after'), 14),
    '',
    matMulTable(results.before[0].kernels, results.after[0].kernels, 8),
  ].join('\n');
  console.log(summary);
  const outPath = process.env.OVR_PERF_OUT;
  if (outPath) writeFileSync(outPath, JSON.stringify({ B, T, repeats, rounds, variants, results }, null, 1));
}

const argv = process.argv.slice(2);
if (argv.includes('--child')) {
  await child(
    flag(argv, '--child', 'src'),
    Number(flag(argv, '--batch', '1')),
    Number(flag(argv, '--seq', '128')),
    Number(flag(argv, '--repeats', '2')),
  );
} else {
  await parent(argv);
}

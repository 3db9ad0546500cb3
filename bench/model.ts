// One benchmark process: one backend × one config. Measures an SFT step (forward + loss + backward + global-norm
// clip + AdamW), forward-only logits, greedy generation with the KV cache (batch 1 and 8), the vision tower on one
// image, a 2-D matMul peak and memory; optionally the per-kernel profile of one SFT step. Prints one JSON line.
// bench/run.ts starts one of these per backend so that each gets a clean heap and its own peak RSS.
//
// Usage: npx tsx bench/model.ts --backend wasm --config bench/configs/small.json --name small [--profile]
//   --micro-batches 2 (SFT batch as 2 accumulated micro-batches)  --wasm-max-gib 3.85
//   --repeats 3 --warmup 1 --batch 2 --seq 256 --gen-prompt 32 --gen-new 32 --image 112 --skip sft,generate
// Timing: warm-up runs excluded, median of the repeats; on webgpu each timed call ends with a read, so the
// queue has drained. Shape legend: B batch, T tokens, V vocab, N patches, P = 3·Tp·ps² patch width.
import { readFileSync } from 'node:fs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { type BackendName, checkWebgpuErrors, initBackend, wasmHeapGuard } from '../src/backend/index.js';
import { enableWasmThreads } from '../src/backend/wasm_threads.js';
import { parseConfig } from '../src/model/config.js';
import { generate } from '../src/model/generate.js';
import { Qwen2_5_VL } from '../src/model/qwen2_5_vl.js';
import { selectTrainable } from '../src/model/trainable.js';
import { visionForward } from '../src/model/vision.js';
import { accumulateGrads } from '../src/train/accumulate.js';
import { AdamW, globalNorm, type TensorMap } from '../src/train/optim.js';
import { lossTokens } from '../src/train/sft.js';
import { Trainer, type TrainerConfig } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { forwardFlops, trainStepFlops } from './flops.js';
import { aggregateKernels, type KernelRow } from './profile.js';

export interface ModelBenchArgs {
  backend: BackendName;
  configPath: string;
  name: string;
  batch: number;
  seq: number;
  warmup: number;
  repeats: number;
  genPrompt: number;
  genNew: number;
  genBatches: number[];
  image: number;
  skip: string[];
  profile: boolean;
  seed: number;
  /** wasm live-tensor limit in GiB (initBackend's wasmMaxBytes; default the library's 3.5). */
  wasmMaxGib?: number;
  /** 'full': one timed step; 'split': grads + clip timed without an optimizer alive, then AdamW.step timed alone. */
  sftMode: 'trainer' | 'full' | 'split';
  /** Split each SFT batch into this many micro-batches with summed gradients (same tokens per step). */
  microBatches: number;
  /** wasm pthreads (default 1; >= 2 enables the experimental threads shim, src/backend/wasm_threads.ts). */
  wasmThreads: number;
}

const DEFAULTS: Omit<
  ModelBenchArgs,
  'backend' | 'configPath' | 'microBatches' | 'wasmMaxGib' | 'sftMode' | 'wasmThreads'
> = {
  name: 'small',
  batch: 2,
  seq: 256,
  warmup: 1,
  repeats: 3,
  genPrompt: 32,
  genNew: 32,
  genBatches: [1, 8],
  image: 112,
  skip: [],
  profile: false,
  seed: 0,
};

/** --sft-mode: 'trainer' (default: Trainer.trainStep, what `ovr-train sft` runs), 'full' or 'split' (hand-built). */
function sftModeOf(v: string): ModelBenchArgs['sftMode'] {
  if (v === 'trainer' || v === 'full' || v === 'split') return v;
  throw new Error(`--sft-mode must be trainer, full or split, got '${v}'`);
}

/** Parses `--key value` flags (and bare `--profile`); unknown flags throw, naming the flag. */
export function parseArgs(argv: string[]): ModelBenchArgs {
  const raw = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith('--'))
      throw new Error(`bench/model: unexpected argument '${k}'; flags look like --repeats 3`);
    if (k === '--profile') raw.set('profile', 'true');
    else raw.set(k.slice(2), argv[++i] ?? '');
  }
  const num = (k: string, d: number): number => {
    const v = raw.get(k);
    raw.delete(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`bench/model: --${k} must be an integer >= 0, got '${v}'`);
    return n;
  };
  const str = (k: string, d: string): string => {
    const v = raw.get(k);
    raw.delete(k);
    return v ?? d;
  };
  const out: ModelBenchArgs = {
    backend: str('backend', 'wasm') as BackendName,
    configPath: str('config', 'bench/configs/small.json'),
    name: str('name', DEFAULTS.name),
    batch: num('batch', DEFAULTS.batch),
    seq: num('seq', DEFAULTS.seq),
    warmup: num('warmup', DEFAULTS.warmup),
    repeats: Math.max(1, num('repeats', DEFAULTS.repeats)),
    genPrompt: num('gen-prompt', DEFAULTS.genPrompt),
    genNew: num('gen-new', DEFAULTS.genNew),
    genBatches: str('gen-batches', '1,8').split(',').map(Number),
    image: num('image', DEFAULTS.image),
    skip: str('skip', '').split(',').filter(Boolean),
    profile: str('profile', 'false') === 'true',
    seed: num('seed', DEFAULTS.seed),
    microBatches: Math.max(1, num('micro-batches', 1)),
    wasmThreads: Math.max(1, num('wasm-threads', Number(process.env.OVR_WASM_THREADS ?? 1))),
    sftMode: sftModeOf(str('sft-mode', 'trainer')),
    wasmMaxGib: raw.has('wasm-max-gib') ? Number(str('wasm-max-gib', '3.5')) : undefined,
  };
  if (raw.size > 0)
    throw new Error(`bench/model: unknown flag(s) ${[...raw.keys()].map((k) => `--${k}`).join(', ')}`);
  return out;
}

/** Median of a non-empty list. @example median([3, 1, 2]) // 2 */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs `fn` warmup + repeats times; returns the median and all timed ms. */
async function timeIt(
  fn: () => Promise<void>,
  warmup: number,
  repeats: number,
): Promise<{ ms: number; allMs: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const allMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await fn();
    allMs.push(performance.now() - t);
  }
  return { ms: median(allMs), allMs };
}

/** Waits until `t` is computed: a 1-element read on webgpu (async queue); cpu/wasm kernels are synchronous. */
async function settle(t: tf.Tensor): Promise<void> {
  if (tf.getBackend() !== 'webgpu') return;
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), 0, 1));
  await one.data();
  one.dispose();
}

/** Peak resident set (VmHWM) of this process in bytes, from /proc/self/status (0 when unavailable). */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Random token rows `[B][T]` from a seeded stream. */
function randomIds(rng: Rng, B: number, T: number, V: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(V)));
}

/** SFT labels: the first quarter of each row is the prompt (-100), the rest are targets. */
function sftLabels(ids: number[][]): number[][] {
  return ids.map((r) => r.map((id, t) => (t < r.length / 4 ? -100 : id)));
}

/**
 * Peak of the wasm heap guard's live tensor bytes (each buffer once, shared buffers are not double counted),
 * sampled after every allocation; null on other backends.
 */
function trackWasmLivePeak(): { peak: () => number } | null {
  const be = tf.backend() as unknown as {
    move: (...a: unknown[]) => unknown;
    makeOutput: (...a: unknown[]) => unknown;
  };
  const g = tf.getBackend() === 'wasm' ? wasmHeapGuard(be) : null;
  if (!g) return null;
  let peak = g.live;
  for (const k of ['move', 'makeOutput'] as const) {
    const f = be[k].bind(be);
    be[k] = (...a: unknown[]) => {
      const r = f(...a);
      peak = Math.max(peak, g.live);
      return r;
    };
  }
  return { peak: () => peak };
}

/** Size of the wasm heap (it only grows: the high-water mark of everything malloc'd), or undefined. */
function wasmHeapBytes(): number | undefined {
  const be = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return tf.getBackend() === 'wasm' ? be.wasm?.HEAPU8?.length : undefined;
}

/**
 * One SFT step, as `ovr-train sft` runs it: `Trainer.trainStep` over micro-batch closures of the trainer's loss
 * (`model.loss`, the fused LM loss) with the whole step's label tokens as normaliser, clip 1.0, AdamW (text params).
 * `withOptimizer` false (the `split` mode, when AdamW's moments do not fit beside the step): the same
 * `accumulateGrads` + global norm the trainer runs, without the AdamW update.
 */
function makeSftStep(
  model: Qwen2_5_VL,
  ids: number[][],
  labels: number[][],
  micro: number,
  withOptimizer = true,
) {
  if (ids.length % micro !== 0)
    throw new Error(`--micro-batches ${micro} must divide the batch ${ids.length}`);
  const named = selectTrainable(model.params, 'lm');
  const vars = Object.values(named);
  const trainer = withOptimizer
    ? new Trainer({ model, config: { ...BENCH_TRAIN, outDir: 'runs/bench' }, totalSteps: 1e9 })
    : null;
  const last = vars[vars.length - 1];
  const losses: number[] = [];
  // Micro-batches: rows split into `micro` groups whose gradients are summed; each loss divides by the kept
  // tokens of the WHOLE batch (numItemsInBatch), so the summed gradient equals the full-batch one.
  const kept = lossTokens(labels);
  const rows = ids.length / micro;
  const closures = Array.from({ length: micro }, (_, m) => () => {
    const part = { inputIds: ids.slice(m * rows, (m + 1) * rows) };
    return model.loss(part, labels.slice(m * rows, (m + 1) * rows), { numItemsInBatch: kept });
  });
  const step = async (): Promise<void> => {
    if (trainer) {
      losses.push((await trainer.trainStep(closures, { tokens: ids.flat().length })).loss);
      await settle(last);
      return;
    }
    const { loss, grads } = accumulateGrads(closures, named);
    const norm = globalNorm(grads);
    losses.push((await loss.data())[0]);
    await settle(norm);
    tf.dispose([loss, norm, ...Object.values(grads)]);
  };
  return { step, losses, named, dispose: () => trainer?.dispose() };
}

/** The trainer settings of the bench step (no weight decay on norms/embedding, as AdamW's default rule). */
const BENCH_TRAIN: Omit<TrainerConfig, 'outDir'> = {
  lr: 1e-5,
  minLrRatio: 1,
  warmupSteps: 0,
  weightDecay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  maxGradNorm: 1,
  trainable: 'lm',
  keepLast: 1,
  logEvery: 1e9,
  maxConsecutiveNonFinite: 1e9,
};

/** 2-D matMul GFLOP/s at n (plain, no transposes), median of 5 after 2 warm-ups. */
async function matmulGflops(n: number): Promise<number> {
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  const { ms } = await timeIt(
    async () => {
      const c = tf.matMul(a, b);
      await settle(c);
      c.dispose();
    },
    2,
    5,
  );
  tf.dispose([a, b]);
  return (2 * n ** 3) / ms / 1e6;
}

/** Runs one measurement; an error (e.g. a webgpu buffer limit) is recorded as `{ error }` instead of ending the run. */
async function phase<T>(
  name: string,
  fn: () => Promise<T>,
  log: (s: string) => void,
): Promise<T | { error: string }> {
  try {
    const r = await fn();
    await checkWebgpuErrors();
    return r;
  } catch (e) {
    const error = String((e as Error)?.message ?? e).split('\n')[0];
    log(`${name} failed: ${error}`);
    return { error };
  }
}

export async function runModelBench(a: ModelBenchArgs): Promise<Record<string, unknown>> {
  const wasmMaxBytes = a.wasmMaxGib ? Math.floor(a.wasmMaxGib * 2 ** 30) : undefined;
  if (a.backend === 'wasm' && a.wasmThreads > 1) enableWasmThreads(a.wasmThreads);
  const info = await initBackend({ backend: a.backend, wasmMaxBytes, log: (l) => console.error(l) });
  const cfg = parseConfig(JSON.parse(readFileSync(a.configPath, 'utf8')), a.configPath);
  const out: Record<string, unknown> = {
    impl: 'ovr',
    backend: info.name,
    backendReason: info.reason,
    patches: info.patches,
    config: a.name,
    threads: info.name === 'wasm' ? getThreadsCount() : undefined,
    wasmMaxGib: info.name === 'wasm' ? (a.wasmMaxGib ?? 3.5) : undefined,
  };
  const log = (s: string) => console.error(`[bench ${a.name}/${info.name}] ${s}`);
  let peakBytes = 0;
  const live = trackWasmLivePeak();
  const sample = () => {
    peakBytes = Math.max(peakBytes, tf.memory().numBytes);
  };
  out.matmul1024Gflops = await phase('matMul', () => matmulGflops(1024), log);
  log(`matMul 1024: ${JSON.stringify(out.matmul1024Gflops)} GFLOP/s`);
  const model = Qwen2_5_VL.init(cfg, a.seed);
  out.params = Object.values(model.params).reduce((s, t) => s + t.size, 0);
  const rng = new Rng(a.seed);
  const B = a.batch;
  const T = a.seq;
  const V = cfg.vocab_size;
  const ids = randomIds(rng.split('ids'), B, T, V);
  // tf.profile times every kernel synchronously (on webgpu it would need dataSync, unusable in Node), so the
  // exact peak comes from one extra profiled step on cpu/wasm; webgpu reports tf.memory() sampled after each call.
  const profiled = info.name !== 'webgpu' && (a.profile || info.name === 'wasm');
  out.peakTensorBytesSource = profiled
    ? 'tf.profile peakBytes of one SFT step, max with samples'
    : 'tf.memory() sampled';

  if (a.skip.includes('sft')) out.sft = { skipped: 'skipped by --skip' };
  else
    out.sft = await phase(
      'SFT',
      async () => {
        const split = a.sftMode === 'split';
        // split: AdamW first, on a fresh heap, then gradients + clip with no optimizer state alive.
        const adamw = split ? await adamwBench(textParams(model), a) : null;
        const sft = makeSftStep(model, ids, sftLabels(ids), a.microBatches, !split);
        const r = await timeIt(sft.step, a.warmup, a.repeats);
        sample();
        log(`SFT step ${r.ms.toFixed(0)} ms (${r.allMs.map((x) => x.toFixed(0)).join(', ')})`);
        if (profiled) {
          const prof = await phase('profile', () => profileStep(sft.step), log);
          if ('error' in prof) out.profile = prof;
          else {
            peakBytes = Math.max(peakBytes, prof.peakBytes);
            if (a.profile) out.profile = { wallMs: prof.wallMs, rows: prof.rows };
          }
        }
        sft.dispose();
        if (adamw) {
          log(`AdamW.step alone ${adamw.ms.toFixed(0)} ms; grads + clip ${r.ms.toFixed(0)} ms`);
          r.ms += adamw.ms;
        }
        return {
          ...r,
          mode: split
            ? 'split: median(grads + clip) + AdamW.step time scaled from the non-embedding params by element count'
            : a.sftMode === 'trainer'
              ? 'trainer: Trainer.trainStep + model.loss (what ovr-train sft runs)'
              : 'full',
          adamw,
          tokensPerS: (B * T * 1e3) / r.ms,
          modelGflops: trainStepFlops(cfg, B, T) / r.ms / 1e6,
          microBatches: a.microBatches,
          loss0: sft.losses[0],
          lossLast: sft.losses[sft.losses.length - 1],
        };
      },
      log,
    );

  if (!a.skip.includes('forward'))
    out.forward = await phase(
      'forward',
      async () => {
        const r = await timeIt(
          async () => {
            const { logits } = model.forward({ inputIds: ids });
            sample();
            await settle(logits);
            logits.dispose();
          },
          a.warmup,
          a.repeats,
        );
        log(`forward ${r.ms.toFixed(0)} ms`);
        return { ...r, tokensPerS: (B * T * 1e3) / r.ms, modelGflops: forwardFlops(cfg, B, T) / r.ms / 1e6 };
      },
      log,
    );

  if (!a.skip.includes('generate')) {
    const gen: Record<string, unknown> = {};
    for (const gb of a.genBatches) {
      const prompt = randomIds(rng.split(`gen${gb}`), gb, a.genPrompt, V);
      gen[String(gb)] = await phase(
        `generate b=${gb}`,
        async () => {
          const r = await timeIt(
            async () => {
              const res = await generate(
                model,
                { inputIds: prompt },
                { maxNewTokens: a.genNew, greedy: true, eosIds: [] },
              );
              sample();
              if (res.tokens[0].length !== a.genNew)
                throw new Error(`generate stopped after ${res.tokens[0].length} of ${a.genNew} tokens`);
            },
            a.warmup,
            a.repeats,
          );
          log(`generate b=${gb}: ${r.ms.toFixed(0)} ms`);
          return { ...r, tokensPerS: (gb * a.genNew * 1e3) / r.ms, prompt: a.genPrompt, newTokens: a.genNew };
        },
        log,
      );
    }
    out.generate = gen;
  }

  if (!a.skip.includes('vision'))
    out.vision = await phase('vision', () => visionBench(model, a, sample, log), log);
  sample();
  out.memory = {
    peakTensorBytes: peakBytes,
    peakRssBytes: peakRss(),
    peakLiveBytes: live?.peak(),
    wasmHeapBytes: wasmHeapBytes(),
  };
  model.dispose();
  return out;
}

/** The model's trainable text parameters by name. */
function textParams(model: Qwen2_5_VL): Record<string, tf.Variable> {
  const vars = new Set(model.variables('lm'));
  return Object.fromEntries(
    Object.entries(model.params).filter(([, t]) => vars.has(t as tf.Variable)),
  ) as Record<string, tf.Variable>;
}

/** One step under tf.profile: peak bytes and per-kernel times (CHECK_COMPUTATION_FOR_ERRORS would read every output). */
async function profileStep(step: () => Promise<void>) {
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const t0 = performance.now();
  const prof = await tf.profile(step);
  const wallMs = performance.now() - t0;
  const rows = prof.kernels.map((k) => ({
    name: k.name,
    ms: Number(k.kernelTimeMs) || 0,
    inputShapes: k.inputShapes,
  }));
  return { wallMs, peakBytes: prof.peakBytes, rows: aggregateKernels(rows as KernelRow[], 25) };
}

/**
 * AdamW.step time over `named`, for the split SFT mode. AdamW.step on the `[V, D]` embedding alone needs more than
 * the wasm heap (docs/performance.md), so the step is timed over every other parameter (synthetic gradients 1e-3)
 * and scaled by element count: AdamW is elementwise, so its time is linear in the elements it updates.
 */
async function adamwBench(named: Record<string, tf.Variable>, a: ModelBenchArgs) {
  const total = Object.values(named).reduce((n, v) => n + v.size, 0);
  const biggest = Object.entries(named).sort((x, y) => y[1].size - x[1].size)[0][0];
  const part = Object.fromEntries(Object.entries(named).filter(([k]) => k !== biggest));
  const timedElems = Object.values(part).reduce((n, v) => n + v.size, 0);
  const opt = new AdamW(part, { weightDecay: 0.01 });
  const grads: TensorMap = {};
  for (const [k, v] of Object.entries(part)) grads[k] = tf.fill(v.shape, 1e-3);
  const vars = Object.values(part);
  const r = await timeIt(
    async () => {
      opt.step(grads, 1e-5);
      await settle(vars[vars.length - 1]);
    },
    a.warmup,
    a.repeats,
  );
  tf.dispose(Object.values(grads));
  opt.dispose();
  return { ms: (r.ms * total) / timedElems, timedMs: r.ms, timedElems, totalElems: total, left: biggest };
}

/** Vision tower forward, and forward + backward into the vision params, on one `a.image`² image. */
async function visionBench(
  model: Qwen2_5_VL,
  a: ModelBenchArgs,
  sample: () => void,
  log: (s: string) => void,
) {
  const v = model.config.vision_config;
  const side = a.image / v.patch_size;
  const grid = [[1, side, side]];
  const N = side * side;
  const P = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  const pixels = tf.randomNormal([N, P], 0, 1, 'float32', a.seed) as tf.Tensor2D;
  const fwd = await timeIt(
    async () => {
      const f = visionForward(model.params, v, pixels, grid);
      await settle(f);
      f.dispose();
    },
    a.warmup,
    a.repeats,
  );
  const vvars = model.variables('vision');
  const bwd = await timeIt(
    async () => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(visionForward(model.params, v, pixels, grid))) as tf.Scalar,
        vvars,
      );
      sample();
      const gs = Object.values(grads);
      await settle(gs[gs.length - 1]);
      tf.dispose([value, ...gs]);
    },
    a.warmup,
    a.repeats,
  );
  pixels.dispose();
  log(`vision fwd ${fwd.ms.toFixed(1)} ms, fwd+bwd ${bwd.ms.toFixed(1)} ms`);
  return { image: a.image, patches: N, forwardMs: fwd.ms, fwdBwdMs: bwd.ms };
}

const isMain = process.argv[1]?.endsWith('model.ts');
if (isMain) {
  runModelBench(parseArgs(process.argv.slice(2)))
    .then((r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    })
    .catch((e: unknown) => {
      console.error(e);
      console.log(JSON.stringify({ error: String((e as Error)?.message ?? e) }));
      process.exit(1);
    });
}

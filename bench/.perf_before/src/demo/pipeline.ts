// The OVR pipeline in miniature (`ovr-train demo`): stage 1 linguistic cold start = SFT of a tiny random-init
// Qwen2.5-VL on TEXT-ONLY renderings of the synthetic shapes task (think/answer chains with reflection); stage 2 =
// GRPO on the IMAGE version with the verifiable reward (gradeDemo); held-out image eval of both models; a run
// folder with checkpoints, JSONL logs, PNG charts and an HTML report (report in demo/report.ts style via
// report/html.ts).
//
// Follows the paper's recipe (Open Vision Reasoner, arXiv 2507.05255) at toy scale. The SFT and GRPO loops here
// are deliberately small (one visible loop each, nanoGPT style) and reuse the library's pieces: model.loss /
// model.tokenLogprobs, generate, AdamW, clipByGlobalNorm, warmupCosine, groupAdvantages, clippedPolicyLoss with
// mu = 1 (ratio == 1, old log-probs = stopGradient of the current ones, i.e. the on-policy policy gradient).
// NOTE: the library trainers (train/sft.ts, train/grpo.ts) were not available when this was written and they take
// the full Qwen vocabulary; the demo needs its compact vocabulary (demo/eval.ts), so it drives the loop itself.
//
// Shapes: B prompts per step, G samples per prompt, R = B x G rows, T tokens.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { BEHAVIORS, type Behavior, behaviorRates } from '../analysis/behaviors.js';
import { defaultTokenizer, type QwenTokenizer } from '../data/tokenizer.js';
import { saveWeights } from '../io/checkpoint.js';
import { loadConfig, parseConfig, type Qwen2_5_VLConfig } from '../model/config.js';
import { generate } from '../model/generate.js';
import { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { lineChart } from '../report/charts.js';
import { writeReport } from '../report/html.js';
import { clippedPolicyLoss, groupAdvantages, stopGradient } from '../train/grpo_math.js';
import { AdamW, clipByGlobalNorm } from '../train/optim.js';
import { warmupCosine } from '../train/schedule.js';
import { JsonlLogger, type StepRecord } from '../util/log.js';
import { Rng } from '../util/rng.js';
import {
  DEMO_EOS,
  DEMO_PAD,
  type DemoBatch,
  type DemoEvalResult,
  DemoVocab,
  evalDemo,
  promptBatch,
  sftBatch,
} from './eval.js';
import { renderProblems, type VisualProblem } from './render.js';
import { gradeDemo, makeProblems, type Problem, TASK_KINDS, type TaskKind } from './tasks.js';

export interface StageContext {
  model: Qwen2_5_VL;
  vocab: DemoVocab;
  tok: QwenTokenizer;
  /** Receives one record per step (JSONL logger, progress, ...); may add fields (e.g. an eval accuracy). */
  onStep?: (r: StepRecord) => void | Promise<void>;
}

export interface SftStageOptions {
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  maxGradNorm: number;
  seed: number;
}

export interface GrpoStageOptions {
  steps: number;
  /** Prompts per step (B). */
  batchSize: number;
  /** Samples per prompt (G). */
  groupSize: number;
  lr: number;
  warmupSteps: number;
  maxGradNorm: number;
  temperature: number;
  maxNewTokens: number;
  seed: number;
  /** 'all' trains the vision tower too (the default: the model must learn to see). */
  trainable: 'all' | 'text';
}

/** Maps tfjs variable names (auto-generated) back to param keys, for AdamW and gradient records. */
function keyedVariables(
  model: Qwen2_5_VL,
  which: 'all' | 'text',
): { vars: tf.Variable[]; key: Map<string, string> } {
  const key = new Map<string, string>();
  const vars: tf.Variable[] = [];
  for (const [k, t] of Object.entries(model.params)) {
    if (!(t instanceof tf.Variable) || (which === 'text' && k.startsWith('visual.'))) continue;
    key.set(t.name, k);
    vars.push(t);
  }
  return { vars, key };
}

type Update = { loss: number; gradNorm: number };

/** One optimizer step from a scalar loss closure: grads -> clip -> AdamW. Disposes everything it creates. */
async function optimStep(
  lossFn: () => tf.Scalar,
  vk: { vars: tf.Variable[]; key: Map<string, string> },
  opt: AdamW,
  lr: number,
  maxGradNorm: number,
): Promise<Update> {
  const { value, grads } = tf.variableGrads(lossFn, vk.vars);
  const named: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(grads)) named[vk.key.get(name) as string] = g;
  const { grads: clipped, norm } = clipByGlobalNorm(named, maxGradNorm);
  opt.step(clipped, lr);
  const [loss, gradNorm] = [(await value.data())[0], (await norm.data())[0]];
  tf.dispose([value, norm, ...Object.values(grads), ...Object.values(clipped)]);
  return { loss, gradNorm };
}

/**
 * AdamW whose construction is wrapped in a tidy. NOTE: AdamW's constructor makes `tf.variable(tf.zeros(...))` and
 * leaves the zeros tensors alive (two per parameter, freed by no one); the tidy frees them, variables survive.
 */
function newAdamW(params: Record<string, tf.Variable>, weightDecay: number): AdamW {
  let opt: AdamW | undefined;
  tf.tidy(() => {
    opt = new AdamW(params, { weightDecay });
  });
  return opt as AdamW;
}

function paramsOf(vk: { vars: tf.Variable[]; key: Map<string, string> }): Record<string, tf.Variable> {
  return Object.fromEntries(vk.vars.map((v) => [vk.key.get(v.name) as string, v]));
}

/** Endless seeded epochs over `items`: each epoch a fresh shuffle. */
function* epochs<T>(items: readonly T[], rng: Rng): Generator<T> {
  for (;;) for (const x of rng.shuffle([...items])) yield x;
}

function take<T>(it: Generator<T>, n: number): T[] {
  return Array.from({ length: n }, () => it.next().value as T);
}

/**
 * Stage 1, linguistic cold start: SFT on text renderings (scene in words + question -> reasoning chain).
 * Only the language model trains (no image is ever seen). Returns the per-step records.
 * @example const log = await sftStage(ctx, trainProblems, { steps: 150, batchSize: 16, lr: 3e-3, ... });
 */
export async function sftStage(
  ctx: StageContext,
  problems: readonly Problem[],
  o: SftStageOptions,
): Promise<StepRecord[]> {
  const vk = keyedVariables(ctx.model, 'text');
  const opt = newAdamW(paramsOf(vk), 0.01);
  const schedule = warmupCosine({
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    totalSteps: o.steps,
    minLrRatio: 0.1,
  });
  const stream = epochs(problems, new Rng(o.seed ?? 0).split('sft-data'));
  const out: StepRecord[] = [];
  try {
    for (let step = 0; step < o.steps; step++) {
      const t0 = performance.now();
      const b = await sftBatch(take(stream, o.batchSize), 'text', ctx.vocab, ctx.tok);
      const lr = schedule(step);
      const u = await optimStep(() => ctx.model.loss(b, b.labels as number[][]), vk, opt, lr, o.maxGradNorm);
      const tokens = b.attentionMask.flat().reduce((a, c) => a + c, 0);
      const sec = (performance.now() - t0) / 1000;
      const r: StepRecord = {
        step,
        ...u,
        lr,
        tokensPerSec: tokens / sec,
        numTensors: tf.memory().numTensors,
      };
      await ctx.onStep?.(r);
      out.push(r);
    }
  } finally {
    opt.dispose();
  }
  return out;
}

/** Policy-gradient rows for the kept groups: prompt + completion, targets shifted by one, completion mask. */
export function rolloutRows(
  prompts: DemoBatch,
  completions: number[][],
  promptOf: number[],
): { inputIds: number[][]; attentionMask: number[][]; targets: number[][]; mask: number[][] } {
  const P = prompts.inputIds[0].length;
  const T = P + Math.max(1, ...completions.map((c) => c.length));
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  completions.forEach((c, r) => {
    const b = promptOf[r];
    const pad = T - P - c.length;
    const ids = [...prompts.inputIds[b], ...c, ...new Array(pad).fill(DEMO_PAD)];
    inputIds.push(ids);
    attentionMask.push([...prompts.attentionMask[b], ...c.map(() => 1), ...new Array(pad).fill(0)]);
    targets.push([...ids.slice(1), DEMO_PAD]);
    // position t predicts token t + 1: completion token j sits at P + j, so it is predicted at P + j - 1
    mask.push(ids.map((_, t) => (t >= P - 1 && t < P - 1 + c.length ? 1 : 0)));
  });
  return { inputIds, attentionMask, targets, mask };
}

/** Pixel rows for each rollout row: the patches of its prompt's image (all images have the same grid). */
function repeatPixels(
  prompts: DemoBatch,
  promptOf: number[],
): { pixelValues?: tf.Tensor2D; imageGridThw?: number[][] } {
  if (!prompts.pixelValues || !prompts.imageGridThw) return {};
  const grid = prompts.imageGridThw;
  const sizes = grid.map(([t, h, w]) => t * h * w);
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const idx = promptOf.flatMap((b) => Array.from({ length: sizes[b] }, (_, k) => starts[b] + k));
  const pv = prompts.pixelValues;
  return {
    pixelValues: tf.tidy(() => tf.gather(pv, tf.tensor1d(idx, 'int32'))),
    imageGridThw: promptOf.map((b) => grid[b]),
  };
}

export interface RolloutRecord {
  step: number;
  id: string;
  task: string;
  answer: string;
  completion: string;
  reward: number;
  tokens: number;
  finishReason: string;
}

/** Rollouts of one GRPO step: G samples per prompt from one prefill, scored by the verifiable reward. */
async function rollout(
  ctx: StageContext,
  ps: VisualProblem[],
  prompts: DemoBatch,
  o: GrpoStageOptions,
  rng: Rng,
) {
  const gen = await generate(ctx.model, prompts, {
    maxNewTokens: o.maxNewTokens,
    numSamples: o.groupSize,
    temperature: o.temperature,
    rng,
    eosIds: [DEMO_EOS],
    padId: DEMO_PAD,
    allowedVocab: ctx.vocab.textEnd,
  });
  const texts = gen.tokens.map((t) => ctx.vocab.decode(t, true));
  const rewards = texts.map((t, r) =>
    gen.finishReasons[r] === 'length' ? 0 : gradeDemo(t, ps[gen.promptIndex[r]].answer),
  );
  return { gen, texts, rewards };
}

/**
 * Stage 2, multimodal RL: GRPO on images with the verifiable reward. Group-normalised advantages, zero-variance
 * groups dropped from the update, token-level aggregation, mu = 1. `onRollouts` receives every completion.
 * @example const log = await grpoStage(ctx, rlProblems, opts, (rows) => rolloutsLog.push(...rows));
 */
export async function grpoStage(
  ctx: StageContext,
  problems: readonly VisualProblem[],
  o: GrpoStageOptions,
  onRollouts?: (rows: RolloutRecord[]) => void,
): Promise<StepRecord[]> {
  const vk = keyedVariables(ctx.model, o.trainable);
  const opt = newAdamW(paramsOf(vk), 0);
  const schedule = warmupCosine({
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    totalSteps: o.steps,
    minLrRatio: 0.5,
  });
  const root = new Rng(o.seed ?? 0);
  const stream = epochs(problems, root.split('rl-data'));
  const sampling = root.split('rl-sampling');
  const out: StepRecord[] = [];
  try {
    for (let step = 0; step < o.steps; step++) {
      const r = await grpoStep(
        ctx,
        take(stream, o.batchSize),
        o,
        { opt, vk, lr: schedule(step), rng: sampling.split(`s${step}`) },
        step,
        onRollouts,
      );
      await ctx.onStep?.(r);
      out.push(r);
    }
  } finally {
    opt.dispose();
  }
  return out;
}

async function grpoStep(
  ctx: StageContext,
  ps: VisualProblem[],
  o: GrpoStageOptions,
  s: { opt: AdamW; vk: { vars: tf.Variable[]; key: Map<string, string> }; lr: number; rng: Rng },
  step: number,
  onRollouts?: (rows: RolloutRecord[]) => void,
): Promise<StepRecord> {
  const t0 = performance.now();
  const prompts = await promptBatch(ps, 'image', ctx.vocab, ctx.tok);
  try {
    const { gen, texts, rewards } = await rollout(ctx, ps, prompts, o, s.rng);
    const tRollout = performance.now() - t0;
    onRollouts?.(
      texts.map((completion, r) => {
        const p = ps[gen.promptIndex[r]];
        return {
          step,
          id: p.id,
          task: p.task,
          answer: p.answer,
          completion,
          reward: rewards[r],
          tokens: gen.tokens[r].length,
          finishReason: gen.finishReasons[r],
        };
      }),
    );
    const adv = groupAdvantages(rewards, o.groupSize);
    const keep = gen.promptIndex
      .map((_, r) => r)
      .filter((r) => !adv.zeroVarianceGroups.includes(gen.promptIndex[r]));
    let u: Update = { loss: 0, gradNorm: 0 };
    if (keep.length > 0) {
      const promptOf = keep.map((r) => gen.promptIndex[r]);
      const rows = rolloutRows(
        prompts,
        keep.map((r) => gen.tokens[r]),
        promptOf,
      );
      const px = repeatPixels(prompts, promptOf);
      const advT = tf.tensor1d(keep.map((r) => adv.advantages[r]));
      const maskT = tf.tensor2d(rows.mask);
      try {
        u = await optimStep(
          () => {
            const lp = ctx.model.tokenLogprobs({ ...rows, ...px }, rows.targets);
            return clippedPolicyLoss({
              logprobs: lp,
              oldLogprobs: stopGradient(lp),
              advantages: advT,
              mask: maskT,
            }).loss;
          },
          s.vk,
          s.opt,
          s.lr,
          o.maxGradNorm,
        );
      } finally {
        tf.dispose([advT, maskT, px.pixelValues as tf.Tensor]);
      }
    }
    const lengths = gen.tokens.map((t) => t.length);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    return {
      step,
      ...u,
      lr: s.lr,
      rewardMean: mean(rewards),
      accuracy: mean(rewards),
      responseLengthMean: mean(lengths),
      responseLengthMax: Math.max(...lengths),
      truncatedFrac: mean(gen.finishReasons.map((f) => (f === 'length' ? 1 : 0))),
      droppedGroups: adv.zeroVarianceGroups.length,
      behaviors: behaviorRates(texts),
      rolloutMs: tRollout,
      stepMs: performance.now() - t0,
      numTensors: tf.memory().numTensors,
    };
  } finally {
    prompts.pixelValues?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// runDemo: both stages, evals, checkpoints, logs, charts and the HTML report in one run folder.

/** Every knob of the demo; `demoDefaults(quick)` gives the tuned values. */
export interface DemoOptions {
  out: string;
  seed: number;
  /** Model config: a folder with config.json or a .json file. */
  modelConfig: string;
  tasks: TaskKind[];
  imageSize: number;
  sft: SftStageOptions;
  rl: GrpoStageOptions;
  /** RL prompts (rendered images) sampled from, fixed so the data order does not depend on the step count. */
  rlPool: number;
  evalCount: number;
  /** Eval on held-out images every N RL steps (0 = only before and after RL). */
  evalEvery: number;
  evalSubset: number;
  maxNewTokens: number;
}

/**
 * Default task kinds: the two with word answers (compare: "more red shapes or green shapes?", largest: "which shape
 * is the largest?"). At this scale the cold-start model answers them in the right form often enough for GRPO
 * groups to carry signal; count/add (integers) stay available through `tasks`.
 */
export const DEMO_TASKS: readonly TaskKind[] = ['compare', 'largest'];

/** The packaged demo model config (models/demo/config.json), from src/ or dist/. */
export const DEMO_MODEL_CONFIG = fileURLToPath(new URL('../../models/demo/config.json', import.meta.url));

/**
 * Tuned defaults: the full demo (<= 10 min on 2 cores) or `quick` (the test-suite smoke run, no learning claim).
 * @example const o = { ...demoDefaults(false), out: 'runs/demo-1' };
 */
export function demoDefaults(quick: boolean, seed = 0): DemoOptions {
  const maxNewTokens = quick ? 24 : 110;
  return {
    out: `runs/demo-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    seed,
    modelConfig: DEMO_MODEL_CONFIG,
    tasks: [...DEMO_TASKS],
    imageSize: 84,
    sft: {
      steps: quick ? 3 : 160,
      batchSize: quick ? 4 : 12,
      lr: 5e-3,
      warmupSteps: quick ? 1 : 8,
      maxGradNorm: 1,
      seed,
    },
    rl: {
      steps: quick ? 2 : 40,
      batchSize: quick ? 2 : 8,
      groupSize: quick ? 2 : 8,
      lr: 1e-4,
      warmupSteps: quick ? 0 : 3,
      maxGradNorm: 1,
      temperature: 1,
      maxNewTokens,
      seed,
      trainable: 'all',
    },
    rlPool: quick ? 16 : 400,
    evalCount: quick ? 4 : 64,
    evalEvery: quick ? 1 : 10,
    evalSubset: quick ? 2 : 32,
    maxNewTokens,
  };
}

async function readModelConfig(file: string): Promise<Qwen2_5_VLConfig> {
  const st = await stat(file).catch(() => null);
  if (!st)
    throw new Error(`--model-config ${file} does not exist; pass a folder with config.json or a .json file`);
  return st.isDirectory() ? loadConfig(file) : parseConfig(JSON.parse(await readFile(file, 'utf8')), file);
}

/** Saves weights (F32, exact) + the demo vocabulary. */
async function saveCheckpoint(dir: string, model: Qwen2_5_VL, vocab: DemoVocab): Promise<void> {
  await saveWeights(dir, model.params, model.config, { dtype: 'F32' });
  await vocab.save(dir);
}

async function writeJsonl(file: string, rows: readonly object[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

export interface DemoSummary {
  out: string;
  wallSeconds: number;
  sftLossStart: number;
  sftLossEnd: number;
  rewardStart: number;
  rewardEnd: number;
  coldStartImageAccuracy: number;
  coldStartTextAccuracy: number;
  rlImageAccuracy: number;
  report: string;
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
/** Mean of the first / last `k` values (k = a fifth of the run, at least 1). */
function ends(xs: number[]): [number, number] {
  const k = Math.max(1, Math.round(xs.length / 5));
  return [mean(xs.slice(0, k)), mean(xs.slice(-k))];
}

type Say = (line: string) => void;

/**
 * Runs the whole demo and writes `o.out/` (see docs/demo.md for the layout). The tfjs backend must be set up.
 * @example const s = await runDemo({ ...demoDefaults(true), out: 'runs/quick' }); s.rlImageAccuracy
 */
export async function runDemo(o: DemoOptions, say: Say = console.log): Promise<DemoSummary> {
  const t0 = performance.now();
  await mkdir(o.out, { recursive: true });
  await writeFile(path.join(o.out, 'options.json'), `${JSON.stringify(o, null, 2)}\n`);
  const tok = await defaultTokenizer();
  const cfg = await readModelConfig(o.modelConfig);
  const vocab = DemoVocab.build(tok, cfg.vocab_size);
  vocab.checkConfig(cfg);
  const model = Qwen2_5_VL.init(cfg, o.seed);
  try {
    return await stages(o, { model, vocab, tok }, say, t0);
  } finally {
    model.dispose();
  }
}

async function stages(o: DemoOptions, base: StageContext, say: Say, t0: number): Promise<DemoSummary> {
  const { tasks, imageSize } = o;
  const sftData = makeProblems({
    seed: o.seed,
    split: 'train',
    count: Math.max(64, o.sft.steps * o.sft.batchSize),
    tasks,
  });
  const rlData = await renderProblems(
    makeProblems({
      seed: o.seed + 1,
      split: 'train',
      count: o.rlPool,
      tasks,
    }),
    imageSize,
  );
  const evalSet = await renderProblems(
    makeProblems({ seed: o.seed, split: 'eval', count: o.evalCount, tasks }),
    imageSize,
  );
  const evalOpts = { maxNewTokens: o.maxNewTokens };
  say(`stage 1: SFT on text-only renderings (${o.sft.steps} steps x ${o.sft.batchSize})`);
  const sftLog = new JsonlLogger(path.join(o.out, 'sft', 'log.jsonl'));
  const sft = await sftStage(
    {
      ...base,
      onStep: (r) => {
        sftLog.log(r);
        if (r.step % 10 === 0 || r.step === o.sft.steps - 1)
          say(`  sft step ${r.step} loss ${(r.loss as number).toFixed(3)}`);
      },
    },
    sftData,
    o.sft,
  );
  sftLog.close();
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'sft'), base.model, base.vocab);
  const coldText = await evalDemo(base.model, evalSet, 'text', base.vocab, base.tok, evalOpts);
  const cold = await evalDemo(base.model, evalSet, 'image', base.vocab, base.tok, evalOpts);
  await writeJsonl(path.join(o.out, 'eval', 'cold_start_text.jsonl'), coldText.rows);
  await writeJsonl(path.join(o.out, 'eval', 'cold_start_image.jsonl'), cold.rows);
  say(
    `cold start: held-out accuracy images ${cold.accuracy.toFixed(3)}, text renderings ${coldText.accuracy.toFixed(3)}`,
  );
  say(
    `stage 2: GRPO on images (${o.rl.steps} steps x ${o.rl.batchSize} prompts x ${o.rl.groupSize} samples)`,
  );
  const rlLog = new JsonlLogger(path.join(o.out, 'rl', 'log.jsonl'));
  const rollouts: RolloutRecord[] = [];
  const subset = evalSet.slice(0, o.evalSubset);
  const evalCurve: [number, number][] = [
    [0, (await evalDemo(base.model, subset, 'image', base.vocab, base.tok, evalOpts)).accuracy],
  ];
  const rl = await grpoStage(
    {
      ...base,
      onStep: async (r) => {
        if (o.evalEvery > 0 && (r.step + 1) % o.evalEvery === 0 && r.step + 1 < o.rl.steps) {
          r.evalAccuracy = (
            await evalDemo(base.model, subset, 'image', base.vocab, base.tok, evalOpts)
          ).accuracy;
          evalCurve.push([r.step + 1, r.evalAccuracy as number]);
        }
        rlLog.log(r);
        say(
          `  rl step ${r.step} reward ${(r.rewardMean as number).toFixed(3)} len ${(r.responseLengthMean as number).toFixed(0)}${r.evalAccuracy !== undefined ? ` eval ${(r.evalAccuracy as number).toFixed(3)}` : ''}`,
        );
      },
    },
    rlData,
    o.rl,
    (rows) => rollouts.push(...rows),
  );
  rlLog.close();
  await writeJsonl(path.join(o.out, 'rl', 'rollouts.jsonl'), rollouts);
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'rl'), base.model, base.vocab);
  const after = await evalDemo(base.model, evalSet, 'image', base.vocab, base.tok, evalOpts);
  await writeJsonl(path.join(o.out, 'eval', 'rl_image.jsonl'), after.rows);
  evalCurve.push([o.rl.steps, mean(after.rows.slice(0, o.evalSubset).map((x) => x.reward))]);
  const [rewardStart, rewardEnd] = ends(rl.map((r) => r.rewardMean as number));
  const [sftLossStart, sftLossEnd] = ends(sft.map((r) => r.loss as number));
  const summary: DemoSummary = {
    out: o.out,
    wallSeconds: (performance.now() - t0) / 1000,
    sftLossStart,
    sftLossEnd,
    rewardStart,
    rewardEnd,
    coldStartImageAccuracy: cold.accuracy,
    coldStartTextAccuracy: coldText.accuracy,
    rlImageAccuracy: after.accuracy,
    report: '',
  };
  summary.report = await writeDemoReport(o, summary, { sft, rl, evalCurve, cold, coldText, after });
  await writeFile(path.join(o.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  say(formatSummary(summary));
  return summary;
}

/** The short report printed at the end. */
export function formatSummary(s: DemoSummary): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
  return [
    `OVR demo finished in ${s.wallSeconds.toFixed(0)} s -> ${s.out}`,
    `  SFT loss (text cold start)      ${f(s.sftLossStart)} -> ${f(s.sftLossEnd)}`,
    `  RL reward (first/last fifth)     ${f(s.rewardStart)} -> ${f(s.rewardEnd)}`,
    `  held-out image accuracy          cold start ${f(s.coldStartImageAccuracy)} -> after RL ${f(s.rlImageAccuracy)}`,
    `  held-out text accuracy (cold)    ${f(s.coldStartTextAccuracy)}`,
    `  report: ${s.report}`,
  ].join('\n');
}

/** Moving average over a window of `k` (shorter at the start). */
function smooth(points: [number, number][], k: number): [number, number][] {
  return points.map(([x], i) => [x, mean(points.slice(Math.max(0, i - k + 1), i + 1).map((p) => p[1]))]);
}

type Curves = {
  sft: StepRecord[];
  rl: StepRecord[];
  evalCurve: [number, number][];
  cold: DemoEvalResult;
  coldText: DemoEvalResult;
  after: DemoEvalResult;
};

async function demoCharts(c: Curves): Promise<{ name: string; png: Buffer }[]> {
  const pts = (rs: StepRecord[], k: string): [number, number][] => rs.map((r) => [r.step, r[k] as number]);
  const reward = pts(c.rl, 'rewardMean');
  const beh = (b: Behavior): [number, number][] =>
    c.rl.map((r) => [r.step, (r.behaviors as Record<Behavior, number>)[b]]);
  return [
    {
      name: 'reward',
      png: await lineChart({
        title: 'RL reward (held-in images)',
        xLabel: 'RL step',
        yLabel: 'mean reward',
        series: [
          { name: 'per step', points: reward },
          { name: 'moving avg (5)', points: smooth(reward, 5) },
        ],
      }),
    },
    {
      name: 'accuracy',
      png: await lineChart({
        title: 'Held-out image accuracy during RL',
        xLabel: 'RL step',
        yLabel: 'accuracy',
        series: [{ name: 'eval subset (greedy)', points: c.evalCurve }],
      }),
    },
    {
      name: 'response_length',
      png: await lineChart({
        title: 'Response length',
        xLabel: 'RL step',
        yLabel: 'tokens',
        series: [
          { name: 'mean', points: pts(c.rl, 'responseLengthMean') },
          { name: 'max', points: pts(c.rl, 'responseLengthMax') },
        ],
      }),
    },
    {
      name: 'behaviors',
      png: await lineChart({
        title: 'Cognitive behaviours in rollouts',
        xLabel: 'RL step',
        yLabel: 'rate',
        series: BEHAVIORS.map((b) => ({ name: b, points: beh(b) })),
      }),
    },
    {
      name: 'sft_loss',
      png: await lineChart({
        title: 'Stage 1 SFT loss (text only)',
        xLabel: 'SFT step',
        yLabel: 'loss',
        series: [{ name: 'loss', points: pts(c.sft, 'loss') }],
      }),
    },
  ];
}

async function writeDemoReport(o: DemoOptions, s: DemoSummary, c: Curves): Promise<string> {
  const byTask = (r: DemoEvalResult) => TASK_KINDS.map((t) => r.byTask[t] ?? null);
  const samples = c.after.rows.slice(0, 6).map((r) => ({
    title: `eval ${r.id} (${r.task}) after RL`,
    completion: r.completion,
    meta: { answer: r.answer, reward: r.reward },
  }));
  return writeReport(path.join(o.out, 'report'), {
    title: 'OVR demo: linguistic cold start + multimodal RL (toy scale)',
    summary: {
      'wall time (s)': Math.round(s.wallSeconds),
      'SFT loss start -> end': `${s.sftLossStart.toFixed(3)} -> ${s.sftLossEnd.toFixed(3)}`,
      'RL reward first -> last fifth': `${s.rewardStart.toFixed(3)} -> ${s.rewardEnd.toFixed(3)}`,
      'held-out image accuracy, cold start': s.coldStartImageAccuracy,
      'held-out image accuracy, after RL': s.rlImageAccuracy,
      'held-out text accuracy, cold start': s.coldStartTextAccuracy,
      seed: o.seed,
    },
    charts: await demoCharts(c),
    tables: [
      {
        name: 'Held-out accuracy by task',
        columns: ['model', 'input', ...TASK_KINDS, 'all'],
        rows: [
          ['cold start', 'text', ...byTask(c.coldText), c.coldText.accuracy],
          ['cold start', 'image', ...byTask(c.cold), c.cold.accuracy],
          ['after RL', 'image', ...byTask(c.after), c.after.accuracy],
        ],
      },
    ],
    samples,
  });
}

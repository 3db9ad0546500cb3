// The OVR pipeline in miniature (`ovr-train demo`): stage 1 linguistic cold start = `trainSft` of a tiny random-init
// Qwen2.5-VL on TEXT-ONLY renderings of the synthetic shapes task (think/answer chains with reflection); stage 2 =
// `trainGrpo` on the IMAGE version with the verifiable reward (gradeDemo); held-out image eval of both models; a run
// folder with the stage inputs (JSONL + PNG), trainer logs and checkpoints, PNG charts (report/charts.ts) and an HTML
// report (report/html.ts). docs/demo.md has the numbers of a real default run and the run-folder layout.
//
// Follows the paper's recipe (Open Vision Reasoner, arXiv 2507.05255) at toy scale. Both stages are the library
// trainers, given the demo model and the demo's CompactTokenizer (data/compact_vocab.ts) through their deps.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendRequest } from '../backend/index.js';
import type { CompactTokenizer } from '../data/compact_vocab.js';
import { defaultTokenizer } from '../data/tokenizer.js';
import { loadModel } from '../model/load.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { saveWeights } from '../model/weights.js';
import { SftConfig } from '../train/config.js';
import { type GrpoStepRecord, trainGrpo } from '../train/grpo.js';
import { GrpoConfig } from '../train/grpo_config.js';
import type { RewardFunction } from '../train/rollout.js';
import { trainSft } from '../train/sft.js';
import { readStepLog } from '../util/log.js';
import {
  type CaptionEvalResult,
  DEMO_RESPONSE_PREFIX,
  type DemoEvalResult,
  demoTokenizer,
  evalCaptions,
  evalDemo,
} from './eval.js';
import { mixDemoJsonl, renderProblems, writeDemoJsonl } from './render.js';
import { writeDemoReport } from './report.js';
import { gradeDemo, makeProblems, type TaskKind } from './tasks.js';

export interface SftStageOptions {
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  maxGradNorm: number;
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
  /** 'all' trains the vision tower too (the default: the model must learn to see). */
  trainable: 'all' | 'lm';
}

/**
 * The demo's verifiable reward for trainGrpo: gradeDemo against the row's answer, 0 for truncated completions.
 * @example demoReward(['<answer> \\boxed{red} </answer>'], { answers: ['red'], finishReasons: ['stop'], ... }) // [1]
 */
export const demoReward: RewardFunction = (completions, ctx) =>
  completions.map((c, i) => (ctx.finishReasons[i] === 'length' ? 0 : gradeDemo(c, ctx.answers[i] ?? '')));

// ---------------------------------------------------------------------------------------------------------------
// runDemo: both stages, evals, checkpoints, logs, charts and the HTML report in one run folder.

/** Every knob of the demo; `demoDefaults(quick)` gives the tuned values. */
export interface DemoOptions {
  out: string;
  seed: number;
  /** tfjs backend the caller started (recorded in options.json and both trainers' configs; never started here). */
  backend: BackendRequest;
  /** Model config: a folder with config.json or a .json file. */
  modelConfig: string;
  tasks: TaskKind[];
  imageSize: number;
  /** Stage 0, the base model's perception (stands in for Qwen2.5-VL's own pre-training): image -> description SFT. */
  pretrain: SftStageOptions;
  /** Echo rows (scene in words -> itself) added to stage 0, as a fraction of its caption rows. */
  echoFraction: number;
  /** Visual questions ("Is there a red shape here?", see presenceQuery) added to stage 0, as a fraction of its caption rows. */
  presenceFraction: number;
  /**
   * Fraction of the stage-1 text rows written `primed`: the question alone, the scene in words given as the reply's
   * opening (not trained), so the reasoning is learned from a description where the model's own description of an
   * image will stand. The others carry the scene in the user turn.
   */
  primedFraction: number;
  /** Caption rows replayed in stage 1, as a fraction of its text rows (0 = pure text-only cold start). */
  replayFraction: number;
  /** Echo rows replayed in stage 1, as a fraction of its text rows. */
  replayEchoFraction: number;
  /** Visual-question rows replayed in stage 1, as a fraction of its text rows. */
  replayPresenceFraction: number;
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
 * Default task kinds: count ("How many red shapes are there?") and compare ("More red shapes or blue shapes?"), both
 * about colours, which the stage-0 base model learns to see in its budget. `largest` needs size and kind, which a
 * random-init tower + 96-wide LM did not learn to read in 800 captioning steps; it and `add` stay available.
 */
export const DEMO_TASKS: readonly TaskKind[] = ['count', 'compare'];

/** The packaged demo model config (models/demo/config.json), from src/ or dist/. */
export const DEMO_MODEL_CONFIG = fileURLToPath(new URL('../../models/demo/config.json', import.meta.url));

/**
 * Tuned defaults: the full demo (<= 10 min on 2 cores) or `quick` (the test-suite smoke run, no learning claim).
 * @example const o = { ...demoDefaults(false), out: 'runs/demo-1' };
 */
export function demoDefaults(quick: boolean, seed = 0): DemoOptions {
  const maxNewTokens = quick ? 24 : 128;
  return {
    out: `runs/demo-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    seed,
    backend: 'auto',
    modelConfig: DEMO_MODEL_CONFIG,
    tasks: [...DEMO_TASKS],
    imageSize: 56,
    pretrain: {
      steps: quick ? 2 : 400,
      batchSize: quick ? 4 : 16,
      lr: 5e-3,
      warmupSteps: quick ? 1 : 20,
      maxGradNorm: 1,
    },
    echoFraction: 0.3,
    presenceFraction: 0.3,
    primedFraction: 0.5,
    replayFraction: 0.05,
    replayEchoFraction: 0.15,
    replayPresenceFraction: 0.05,
    sft: {
      steps: quick ? 3 : 300,
      batchSize: quick ? 4 : 16,
      lr: 3e-3,
      warmupSteps: quick ? 1 : 20,
      maxGradNorm: 1,
    },
    rl: {
      steps: quick ? 2 : 60,
      batchSize: quick ? 2 : 8,
      groupSize: quick ? 2 : 8,
      lr: 1e-4,
      warmupSteps: quick ? 0 : 3,
      maxGradNorm: 1,
      temperature: 0.7,
      maxNewTokens,
      trainable: 'all',
    },
    rlPool: quick ? 16 : 400,
    evalCount: quick ? 4 : 64,
    evalEvery: quick ? 1 : 10,
    evalSubset: quick ? 2 : 32,
    maxNewTokens,
  };
}

/** Saves weights (F32, exact) + the compact vocabulary: a folder `Qwen2_5_VL.load` and `CompactTokenizer.load` read. */
async function saveCheckpoint(dir: string, model: Qwen2_5_VL, ct: CompactTokenizer): Promise<void> {
  await saveWeights(dir, model.params, model.config, { dtype: 'F32' });
  await ct.save(dir);
}

async function writeJsonl(file: string, rows: readonly object[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

export interface DemoSummary {
  out: string;
  wallSeconds: number;
  /** Stage 0 (captioning) loss, mean of the first / last fifth of its steps. */
  pretrainLossStart: number;
  pretrainLossEnd: number;
  /** Held-out caption accuracy per item (colour of each shape, in order) of the base, cold-start and RL models. */
  captionItemAccuracy: { base: number; coldStart: number; rl: number };
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
type Ctx = { o: DemoOptions; model: Qwen2_5_VL; ct: CompactTokenizer; say: Say };

/**
 * Runs the whole demo and writes `o.out/` (see docs/demo.md for the layout).
 * @example const s = await runDemo({ ...demoDefaults(true), out: 'runs/quick' }); s.rlImageAccuracy
 */
export async function runDemo(o: DemoOptions, say: Say = console.log): Promise<DemoSummary> {
  const t0 = performance.now();
  await mkdir(o.out, { recursive: true });
  await writeFile(path.join(o.out, 'options.json'), `${JSON.stringify(o, null, 2)}\n`);
  // random init of the config (a folder's weights are never read: the demo trains from scratch)
  const model = await loadModel(o.modelConfig, { seed: o.seed, weights: false });
  try {
    const ct = demoTokenizer(await defaultTokenizer(), model.config.vocab_size);
    ct.checkConfig(model.config);
    return await stages({ o, model, ct, say }, t0);
  } finally {
    model.dispose();
  }
}

/**
 * An SFT stage on the library trainer: stage 0 (`pretrain`: image captions, every parameter) or stage 1 (`sft`: the
 * text renderings, language model only: no image is ever seen).
 */
async function sftStage(c: Ctx, name: 'pretrain' | 'sft', train: string): Promise<number[]> {
  const { o } = c;
  const st = o[name];
  const cfg = SftConfig.parse({
    model: o.modelConfig,
    outDir: path.join(o.out, name),
    seed: o.seed,
    backend: o.backend,
    steps: st.steps,
    batchSize: st.batchSize,
    lr: st.lr,
    warmupSteps: st.warmupSteps,
    maxGradNorm: st.maxGradNorm,
    minLrRatio: 0.1,
    weightDecay: 0.01,
    // Length grouping sorts each mega-batch longest first, so consecutive batches hold one task kind (and the slips):
    // with a few hundred steps that makes the loss swing 0.5 <-> 3 and learning slow. Plain shuffled batches here.
    lengthGrouping: false,
    trainable: name === 'pretrain' ? 'all' : 'lm',
    data: { train },
  });
  const res = await trainSft(cfg, {
    model: c.model,
    tokenizer: c.ct.asQwenTokenizer(),
    progress: null,
    info: () => {},
  });
  res.losses.forEach((l, i) => {
    if (i % 25 === 0 || i === res.losses.length - 1) c.say(`  ${name} step ${i + 1} loss ${l.toFixed(3)}`);
  });
  return res.losses;
}

/** Stage 2: the library GRPO trainer on the images with the demo reward; evalReward every `evalEvery` steps. */
async function grpoStage(c: Ctx, train: string, evalFile: string): Promise<GrpoStepRecord[]> {
  const { o } = c;
  const cfg = GrpoConfig.parse({
    model: o.modelConfig,
    outDir: path.join(o.out, 'rl'),
    seed: o.seed,
    backend: o.backend,
    steps: o.rl.steps,
    promptsPerStep: o.rl.batchSize,
    numGenerations: o.rl.groupSize,
    lr: o.rl.lr,
    warmupSteps: o.rl.warmupSteps,
    minLrRatio: 0.5,
    maxGradNorm: o.rl.maxGradNorm,
    temperature: o.rl.temperature,
    maxResponseLen: o.rl.maxNewTokens,
    trainable: o.rl.trainable,
    evalEvery: o.evalEvery,
    data: { train, eval: evalFile, responsePrefix: DEMO_RESPONSE_PREFIX },
    reward: { workers: 0 },
  });
  const res = await trainGrpo(cfg, {
    model: c.model,
    tokenizer: c.ct.asQwenTokenizer(),
    rewardFn: demoReward,
    sampling: { allowedVocab: c.ct.textEnd },
    eosIds: [c.ct.special.eos],
    progress: null,
    onStep: (r) =>
      c.say(
        `  rl step ${r.step} reward ${r.rewardMean.toFixed(3)} len ${r.responseLenMean.toFixed(0)}${r.evalReward !== undefined ? ` eval ${(r.evalReward as number).toFixed(3)}` : ''}`,
      ),
  });
  return res.records;
}

async function stages(c: Ctx, t0: number): Promise<DemoSummary> {
  const { o, model, ct, say } = c;
  const { tasks, imageSize } = o;
  const data = path.join(o.out, 'data');
  const sftProblems = makeProblems({
    seed: o.seed,
    split: 'train',
    count: Math.max(64, o.sft.steps * o.sft.batchSize),
    tasks,
  });
  const rlProblems = makeProblems({ seed: o.seed + 1, split: 'train', count: o.rlPool, tasks });
  const captionProblems = makeProblems({
    seed: o.seed + 2,
    split: 'train',
    count: Math.max(64, o.pretrain.steps * o.pretrain.batchSize),
    tasks,
  });
  const evalProblems = makeProblems({ seed: o.seed, split: 'eval', count: o.evalCount, tasks });
  // Stage 0 mix: captions + echo rows (the scene in words -> itself), so the base model reads a scene the same way
  // whether it comes as vision tokens or as words (the bridge the text cold start relies on), + visual questions, so
  // it reads the text that follows an image (with captions alone it learns to ignore it).
  const nEcho = Math.round(captionProblems.length * o.echoFraction);
  const nPresence = Math.round(captionProblems.length * o.presenceFraction);
  await mixDemoJsonl(
    path.join(data, 'pretrain.jsonl'),
    [
      ...(await writeDemoJsonl(path.join(data, 'pretrain_captions.jsonl'), captionProblems, {
        mode: 'caption',
        imageSize,
      })),
      ...(await writeDemoJsonl(path.join(data, 'pretrain_echo.jsonl'), captionProblems.slice(0, nEcho), {
        mode: 'echo',
      })),
      ...(await writeDemoJsonl(
        path.join(data, 'pretrain_presence.jsonl'),
        captionProblems.slice(captionProblems.length - nPresence),
        { mode: 'presence', imageSize },
      )),
    ],
    o.seed,
  );
  // Stage 1 mix: the text renderings (half with the scene in the user turn, half `primed`: the scene given as the
  // reply's opening) + a small replay of stage-0 rows (captions, echo, visual questions; no task question is ever asked
  // about an image, so the reasoning data stay text-only). docs/demo.md has the measurements behind the mix.
  const nPrimed = Math.round(sftProblems.length * o.primedFraction);
  const replay = (seed: number, fraction: number) =>
    makeProblems({ seed, split: 'train', count: Math.round(sftProblems.length * fraction), tasks });
  await mixDemoJsonl(
    path.join(data, 'sft.jsonl'),
    [
      ...(await writeDemoJsonl(path.join(data, 'sft_text.jsonl'), sftProblems.slice(nPrimed), {
        mode: 'text',
      })),
      ...(await writeDemoJsonl(path.join(data, 'sft_primed.jsonl'), sftProblems.slice(0, nPrimed), {
        mode: 'primed',
      })),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_captions.jsonl'),
        replay(o.seed + 3, o.replayFraction),
        {
          mode: 'caption',
          imageSize,
        },
      )),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_echo.jsonl'),
        replay(o.seed + 4, o.replayEchoFraction),
        {
          mode: 'echo',
        },
      )),
      ...(await writeDemoJsonl(
        path.join(data, 'sft_replay_presence.jsonl'),
        replay(o.seed + 5, o.replayPresenceFraction),
        { mode: 'presence', imageSize },
      )),
    ],
    o.seed + 1,
  );
  await writeDemoJsonl(path.join(data, 'rl.jsonl'), rlProblems, { mode: 'image', imageSize });
  await writeDemoJsonl(path.join(data, 'eval_subset.jsonl'), evalProblems.slice(0, o.evalSubset), {
    mode: 'image',
    imageSize,
  });
  const evalSet = await renderProblems(evalProblems, imageSize);
  const evalOpts = { maxNewTokens: o.maxNewTokens };
  const evalImages = (ps = evalSet) => evalDemo(model, ps, 'image', ct, evalOpts);

  const captions = () => evalCaptions(model, evalSet, ct);
  say(
    `stage 0: base-model perception, captioning SFT on images (${o.pretrain.steps} steps x ${o.pretrain.batchSize})`,
  );
  const pretrain = await sftStage(c, 'pretrain', path.join(data, 'pretrain.jsonl'));
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'base'), model, ct);
  const baseCaptions = await captions();
  await writeJsonl(path.join(o.out, 'eval', 'base_captions.jsonl'), baseCaptions.rows);
  say(`base model: held-out captions ${fmtCaption(baseCaptions)}`);

  say(`stage 1: SFT on text-only renderings (${o.sft.steps} steps x ${o.sft.batchSize})`);
  const sft = await sftStage(c, 'sft', path.join(data, 'sft.jsonl'));
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'sft'), model, ct);
  const coldText = await evalDemo(model, evalSet, 'text', ct, evalOpts);
  const cold = await evalImages();
  await writeJsonl(path.join(o.out, 'eval', 'cold_start_text.jsonl'), coldText.rows);
  await writeJsonl(path.join(o.out, 'eval', 'cold_start_image.jsonl'), cold.rows);
  const coldCaptions = await captions();
  say(
    `cold start: held-out accuracy images ${cold.accuracy.toFixed(3)}, text renderings ${coldText.accuracy.toFixed(3)}`,
  );

  say(
    `stage 2: GRPO on images (${o.rl.steps} steps x ${o.rl.batchSize} prompts x ${o.rl.groupSize} samples)`,
  );
  const rl = await grpoStage(c, path.join(data, 'rl.jsonl'), path.join(data, 'eval_subset.jsonl'));
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'rl'), model, ct);
  const after = await evalImages();
  await writeJsonl(path.join(o.out, 'eval', 'rl_image.jsonl'), after.rows);
  const rlCaptions = await captions();
  await writeJsonl(path.join(o.out, 'eval', 'rl_captions.jsonl'), rlCaptions.rows);
  const subsetAcc = (r: DemoEvalResult) => mean(r.rows.slice(0, o.evalSubset).map((x) => x.reward));
  const evalCurve: [number, number][] = [
    [0, subsetAcc(cold)],
    ...rl
      .filter((r) => r.evalReward !== undefined)
      .map((r): [number, number] => [r.step, r.evalReward as number]),
  ];
  if (evalCurve.at(-1)?.[0] !== o.rl.steps) evalCurve.push([o.rl.steps, subsetAcc(after)]);
  const [rewardStart, rewardEnd] = ends(rl.map((r) => r.rewardMean));
  const [sftLossStart, sftLossEnd] = ends(sft);
  const [pretrainLossStart, pretrainLossEnd] = ends(pretrain);
  const summary: DemoSummary = {
    out: o.out,
    wallSeconds: (performance.now() - t0) / 1000,
    pretrainLossStart,
    pretrainLossEnd,
    captionItemAccuracy: {
      base: baseCaptions.itemAccuracy,
      coldStart: coldCaptions.itemAccuracy,
      rl: rlCaptions.itemAccuracy,
    },
    sftLossStart,
    sftLossEnd,
    rewardStart,
    rewardEnd,
    coldStartImageAccuracy: cold.accuracy,
    coldStartTextAccuracy: coldText.accuracy,
    rlImageAccuracy: after.accuracy,
    report: '',
  };
  summary.report = await writeDemoReport(o, summary, {
    pretrain: readStepLog(path.join(o.out, 'pretrain', 'log.jsonl')),
    sft: readStepLog(path.join(o.out, 'sft', 'log.jsonl')),
    captions: { base: baseCaptions, coldStart: coldCaptions, rl: rlCaptions },
    rl,
    evalCurve,
    cold,
    coldText,
    after,
  });
  await writeFile(path.join(o.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  say(formatSummary(summary));
  return summary;
}

/** "item accuracy 0.906, exact 0.719". */
function fmtCaption(r: CaptionEvalResult): string {
  return `item accuracy ${r.itemAccuracy.toFixed(3)}, exact ${r.exact.toFixed(3)}`;
}

/** The short report printed at the end. */
export function formatSummary(s: DemoSummary): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
  return [
    `OVR demo finished in ${s.wallSeconds.toFixed(0)} s -> ${s.out}`,
    `  captioning loss (base model)     ${f(s.pretrainLossStart)} -> ${f(s.pretrainLossEnd)}`,
    `  held-out caption item accuracy   base ${f(s.captionItemAccuracy.base)}, cold start ${f(s.captionItemAccuracy.coldStart)}, after RL ${f(s.captionItemAccuracy.rl)}`,
    `  SFT loss (text cold start)      ${f(s.sftLossStart)} -> ${f(s.sftLossEnd)}`,
    `  RL reward (first/last fifth)     ${f(s.rewardStart)} -> ${f(s.rewardEnd)}`,
    `  held-out image accuracy          cold start ${f(s.coldStartImageAccuracy)} -> after RL ${f(s.rlImageAccuracy)}`,
    `  held-out text accuracy (cold)    ${f(s.coldStartTextAccuracy)}`,
    `  report: ${s.report}`,
  ].join('\n');
}

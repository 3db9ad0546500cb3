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
import type { CompactTokenizer } from '../data/compact_vocab.js';
import { defaultTokenizer } from '../data/tokenizer.js';
import { loadModel } from '../model/load.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { saveWeights } from '../model/weights.js';
import { SftConfig } from '../train/config.js';
import { type GrpoStepRecord, trainGrpo } from '../train/grpo.js';
import { GrpoConfig } from '../train/grpo_config.js';
import { trainSft } from '../train/sft.js';
import { readStepLog } from '../util/log.js';
import { mean } from '../util/stats.js';
import { demoBtr } from './btr.js';
import { DEMO_RESPONSE_PREFIX, type DemoEvalResult, demoTokenizer, evalCaptions, evalDemo } from './eval.js';
import { demoReward } from './grade.js';
import { type DemoOptions, type DemoSummary, fmtCaption, formatSummary } from './options.js';
import { renderProblems } from './render.js';
import { writeDemoReport } from './report.js';
import { writeStageData } from './stage_data.js';

// ---------------------------------------------------------------------------------------------------------------
// runDemo: both stages, evals, checkpoints, logs, charts and the HTML report in one run folder.

/** Saves weights (F32, exact) + the compact vocabulary: a folder `Qwen2_5_VL.load` and `CompactTokenizer.load` read. */
async function saveCheckpoint(dir: string, model: Qwen2_5_VL, ct: CompactTokenizer): Promise<void> {
  await saveWeights(dir, model.params, model.config, { dtype: 'F32' });
  await ct.save(dir);
}

async function writeJsonl(file: string, rows: readonly object[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

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
    advantage: o.rl.advantage,
    critic: { lr: o.rl.criticLr, warmupSteps: 0, updateSteps: 4 },
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
  const { imageSize } = o;
  const data = path.join(o.out, 'data');
  const evalProblems = await writeStageData(o, data);
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
  const baseEvals = { image: await evalImages(), text: await evalDemo(model, evalSet, 'text', ct, evalOpts) };
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
    `stage 2: ${o.rl.advantage === 'gae' ? 'PPO (critic + GAE)' : 'GRPO'} on images (${o.rl.steps} steps x ${o.rl.batchSize} prompts x ${o.rl.groupSize} samples)`,
  );
  const rl = await grpoStage(c, path.join(data, 'rl.jsonl'), path.join(data, 'eval_subset.jsonl'));
  await saveCheckpoint(path.join(o.out, 'checkpoints', 'rl'), model, ct);
  const after = await evalImages();
  await writeJsonl(path.join(o.out, 'eval', 'rl_image.jsonl'), after.rows);
  const rlCaptions = await captions();
  await writeJsonl(path.join(o.out, 'eval', 'rl_captions.jsonl'), rlCaptions.rows);
  const rlText = await evalDemo(model, evalSet, 'text', ct, evalOpts);
  const btr = await demoBtr(
    o.out,
    [
      { stage: 'base', ...baseEvals },
      { stage: 'cold start', image: cold, text: coldText },
      { stage: 'RL', image: after, text: rlText },
    ],
    o.judge,
  );
  if (btr.judgeReport) say(btr.judgeReport);
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
    rlAlgorithm: o.rl.advantage === 'gae' ? 'ppo' : 'grpo',
    btr: btr.rows.map((r) => ({
      stage: r.stage,
      ...Object.fromEntries(
        r.pairs.map((p) => [p.label, { cbrV: p.cbrV.rate, cbrL: p.cbrL.rate, btr: p.btr }]),
      ),
    })),
    btrScorer: btr.scorer,
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
    btr,
  });
  await writeFile(path.join(o.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  say(formatSummary(summary));
  return summary;
}

// The demo's options (every knob, `demoDefaults(quick)` the tuned values), its summary and the summary's text.
// Shared by the pipeline (demo/pipeline.ts) and the report (demo/report.ts).

import { fileURLToPath } from 'node:url';
import type { BackendRequest } from '../backend/index.js';
import type { DemoJudge } from './btr.js';
import type { CaptionEvalResult } from './eval.js';
import type { TaskKind } from './tasks.js';

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
  /** 'group': GRPO; 'gae': PPO with a learned critic (the paper's setting), critic lr = criticLr. */
  advantage: 'group' | 'gae';
  criticLr: number;
}

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
  /** LLM judge for the behaviour-transfer table (default: the offline lexicon). */
  judge?: DemoJudge;
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
      advantage: 'group',
      // ORZ/OVR run the critic at 5x the policy lr (5e-6 vs 1e-6)
      criticLr: 5e-4,
    },
    rlPool: quick ? 16 : 400,
    evalCount: quick ? 4 : 64,
    evalEvery: quick ? 1 : 10,
    evalSubset: quick ? 2 : 32,
    maxNewTokens,
  };
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
  /** 'grpo' or 'ppo' (advantage gae). */
  rlAlgorithm: 'grpo' | 'ppo';
  /** BTR per stage and behaviour pair (CBR_v, CBR_l, BTR; null where undefined), see demo/btr.ts. */
  btr: Record<string, unknown>[];
  btrScorer: 'lexicon' | 'judge';
  report: string;
}

/** "item accuracy 0.906, exact 0.719". */
export function fmtCaption(r: CaptionEvalResult): string {
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
    `  RL (${s.rlAlgorithm}) reward (first/last fifth) ${f(s.rewardStart)} -> ${f(s.rewardEnd)}`,
    `  held-out image accuracy          cold start ${f(s.coldStartImageAccuracy)} -> after RL ${f(s.rlImageAccuracy)}`,
    `  held-out text accuracy (cold)    ${f(s.coldStartTextAccuracy)}`,
    `  report: ${s.report}`,
  ].join('\n');
}

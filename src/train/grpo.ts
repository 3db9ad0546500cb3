// GRPO trainer (Open-Reasoner-Zero / DAPO style): per RL step, sample promptsPerStep prompts x G completions
// (rollout.ts), score them, group-normalise the rewards (grpo_math.ts), optionally drop zero-variance groups and
// refill (DAPO dynamic sampling), then run ppoEpochs passes of PPO-clipped updates over minibatches. The optimizer
// step, clipping, guard, schedule, log, checkpoint and resume are the shared `Trainer` (trainer.ts), as in SFT. References: TRL `GRPOTrainer` (`_generate_and_score_completions`,
// `_compute_loss`), DAPO (arXiv 2503.14476), ORZ (no KL, no entropy bonus, truncated = 0).
//
// Old log-probs: with ppoEpochs = 1 and one minibatch the update is on-policy, and the old log-probs are the current
// ones with the gradient stopped (ratio == 1 exactly, plain policy gradient; TRL does the same). Otherwise they are
// recomputed by a no-grad forward of the policy before the first update (TRL `old_per_token_logps`): the sampler's
// log-probs come from KV-cached one-token steps, whose float32 rounding differs from a full forward. Both are the
// same distribution (log softmax(logits / temperature) over the full vocabulary); each step logs their largest
// difference as `logprobDiffMax`, and a test bounds it.
//
// `steps` counts RL steps (rollout + ppoEpochs x minibatch updates); the lr schedule advances once per RL step.
// Files: this one holds the loop (rollout -> reward -> advantages -> ppoEpochs x minibatches -> step -> log ->
// checkpoint); grpo_sample.ts the sampling rounds and eval; grpo_step.ts the loss/gradients/update; grpo_log.ts the
// step record and rollouts log; grpo_engine.ts the rollout engine glue (requests, weight sync).
// Shapes: n rows in a micro-batch, Tc completion length, D hidden, V vocabulary; G = numGenerations.
import path from 'node:path';
import { loadPrompts, type PromptExample, PromptStream, requireGoldAnswers } from '../data/prompts.js';
import { defaultTokenizer, type QwenTokenizer } from '../data/tokenizer.js';
import { loadModel } from '../model/load.js';
import { detachAdapter } from '../model/lora.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import type { SamplingOptions } from '../model/sampling.js';
import { VerifierPool } from '../reward/pool.js';
import { createEngine, type RolloutEngine } from '../rollout/index.js';
import { JsonlLogger } from '../util/log.js';
import { ProgressBar, type ProgressStream } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import type { Critic } from './critic.js';
import { GrpoConfig } from './grpo_config.js';
import { EngineSync, engineRecord } from './grpo_engine.js';
import { type GrpoStepRecord, logRollouts, rolloutStats, stepRecord } from './grpo_log.js';
import { collectGroups, evaluate, type SampleContext } from './grpo_sample.js';
import { type PolicyState, updatePolicy } from './grpo_step.js';
import { setupAdapter } from './lora.js';
import { createCritic, ppoCriticStep, ppoRecordFields, ppoTargets } from './ppo.js';
import type { RewardFunction } from './rollout.js';
import { openTrainRun, writeRunConfig } from './state.js';
import { Trainer } from './trainer.js';

// The update step (loss, gradients, minibatch loop) and the step record/logging live in grpo_step.ts and
// grpo_log.ts; they are re-exported here so `train/grpo.js` stays the one import for the GRPO API.
export type { GrpoStepRecord } from './grpo_log.js';
export {
  completionLogprobs,
  type LossSettings,
  lossSettings,
  type MicroBatch,
  type MicroStats,
  microBatchGrads,
} from './grpo_step.js';

/** What `trainGrpo` can be given instead of building it from the config. Tests and library users pass these. */
export interface GrpoDeps {
  /** Policy to train in place (default: from `config.model`). The caller keeps ownership. */
  model?: Qwen2_5_VL;
  /** Frozen reference for the KL penalty (default: loaded from refModel ?? model when klCoef > 0). */
  refModel?: Qwen2_5_VL;
  tokenizer?: QwenTokenizer;
  /** Reward instead of the math reward (TRL signature). */
  rewardFn?: RewardFunction;
  /** Prompts instead of reading `data.train`. */
  prompts?: PromptExample[];
  /** Extra sampling options, e.g. `allowedVocab` for a toy vocabulary (default: the real Qwen ids). */
  sampling?: Pick<SamplingOptions, 'allowedVocab' | 'repetitionPenalty'>;
  /** Ids that end a completion (default QWEN_EOS_IDS). */
  eosIds?: number[];
  /** Progress bar stream (default stderr); null for none. */
  progress?: ProgressStream | null;
  /** Called after every logged step. */
  onStep?: (record: GrpoStepRecord) => void;
}

export interface GrpoResult {
  steps: number;
  records: GrpoStepRecord[];
  logFile: string;
  rolloutsFile: string;
  lastCheckpoint?: string;
  /** Set when SIGINT/SIGTERM stopped the run early (after saving a checkpoint). */
  interrupted?: 'SIGINT' | 'SIGTERM';
}

/** Everything a run keeps between steps. */
interface RunContext extends PolicyState, SampleContext {
  /** The learned critic when advantage is 'gae' (PPO), else null. */
  critic: Critic | null;
  prompts: PromptExample[];
  stream: PromptStream;
  deps: GrpoDeps;
  pool: VerifierPool | null;
  /** Samples the rollouts (cfg.rollout.engine); `sync` keeps it serving the policy's weights. */
  engine: RolloutEngine;
  sync: EngineSync;
  rollLog: JsonlLogger;
  /** Root of the sampling streams (step s samples from `sampling.split('step-s')`); saved with checkpoints. */
  sampling: Rng;
}

/** Number of RL steps: `steps`, or epochs x prompts / promptsPerStep (1 epoch when neither is set). */
export function totalGrpoSteps(cfg: GrpoConfig, numPrompts: number): number {
  if (cfg.steps !== undefined) return cfg.steps;
  return Math.max(1, Math.ceil(((cfg.epochs ?? 1) * numPrompts) / cfg.promptsPerStep));
}

/** Builds the run context: model, reference (only when klCoef > 0), tokenizer, prompts, the trainer (resumed). */
async function setup(cfg: GrpoConfig, deps: GrpoDeps, run: RunFiles) {
  const model = deps.model ?? (await loadModel(cfg.model, { seed: cfg.seed ?? 0 }));
  const lora = await setupAdapter(model, cfg); // LoRA: before the Trainer binds its optimizer to the adapter
  // Under LoRA the KL reference is the policy with its adapter switched off: no second copy of the weights.
  const ref =
    cfg.klCoef > 0
      ? (deps.refModel ??
        (lora && !cfg.refModel ? model : await loadModel(cfg.refModel ?? cfg.model, { seed: cfg.seed ?? 0 })))
      : null;
  const tok = deps.tokenizer ?? (await defaultTokenizer());
  const prompts = deps.prompts ?? (await loadPrompts(cfg.data.train, cfg.data));
  // The math reward needs gold answers: a set without any would train on all-zero rewards, silently.
  if (!deps.rewardFn)
    requireGoldAnswers(
      prompts,
      deps.prompts ? 'the prompts given to trainGrpo' : cfg.data.train,
      cfg.data.answerField,
    );
  const total = totalGrpoSteps(cfg, prompts.length);
  const sampling = new Rng(cfg.seed ?? 0).split('sampling');
  run.log = new JsonlLogger(path.join(cfg.outDir, 'log.jsonl'));
  run.rollLog = new JsonlLogger(path.join(cfg.outDir, 'rollouts.jsonl'));
  if (deps.progress !== null) run.bar = new ProgressBar(total, deps.progress ?? process.stderr);
  // The critic starts from the policy's initial weights; a resume then restores both from the checkpoint.
  const critic = createCritic(cfg, model);
  const trainer = new Trainer({
    writeExtra: critic ? (d) => critic.save(d).then(() => undefined) : undefined,
    model,
    config: cfg,
    totalSteps: total,
    rngs: { sampling },
    logger: run.log,
    progress: run.bar,
    stepLogs: [run.rollLog.file],
  });
  const resumed = await trainer.resumeFrom(cfg.resume, cfg.outDir);
  if (resumed) await critic?.resume(resumed.dir);
  const stream = new PromptStream(
    prompts.length,
    cfg.seed ?? 0,
    cfg.data.shuffle,
    resumed?.state.dataPosition,
  );
  const pool =
    !deps.rewardFn && cfg.reward.workers > 0 ? new VerifierPool({ threads: cfg.reward.workers }) : null;
  const engine = createEngine(cfg.rollout, {
    model,
    padId: tok.special.pad,
    decode: (ids) => tok.decode(ids),
  });
  const sync = new EngineSync(engine, cfg.rollout, cfg.outDir);
  // the engine starts from whatever it was launched with: make it serve the policy's weights (version = step)
  await sync.afterStep(model, trainer.step, true);
  const rollLog = run.rollLog;
  const ctx: RunContext = {
    cfg,
    model,
    ref,
    tok,
    prompts,
    stream,
    deps,
    pool,
    trainer,
    sampling,
    rollLog,
    engine,
    sync,
    critic,
  };
  return { ctx, total };
}

/** The run's JSONL logs and progress bar, opened by `setup` once the prompts are read. */
interface RunFiles {
  log?: JsonlLogger;
  rollLog?: JsonlLogger;
  bar?: ProgressBar;
}

/**
 * Runs GRPO for `totalGrpoSteps` RL steps from a resolved config. Writes `log.jsonl`, `rollouts.jsonl`,
 * `training_config.json` and checkpoints into `config.outDir`.
 * @example
 * const res = await trainGrpo(GrpoConfig.parse({ model: 'tiny', data: { train: 'prompts.jsonl' }, steps: 10 }), {
 *   rewardFn: (completions, { answers }) => completions.map((c, i) => (c.includes(answers[i] ?? '?') ? 1 : 0)),
 * });
 * res.records.at(-1)?.rewardMean;
 */
export async function trainGrpo(config: GrpoConfig, deps: GrpoDeps = {}): Promise<GrpoResult> {
  const cfg = GrpoConfig.parse(config);
  await Trainer.ready();
  const lock = openTrainRun(cfg.outDir, cfg.resume, 'ovr-train grpo');
  try {
    return await runGrpo(cfg, deps);
  } finally {
    lock.release();
  }
}

/** trainGrpo inside the run dir's lock. */
async function runGrpo(cfg: GrpoConfig, deps: GrpoDeps): Promise<GrpoResult> {
  const run: RunFiles = {};
  let ctx: RunContext | undefined;
  const records: GrpoStepRecord[] = [];
  let lastCheckpoint: string | undefined;
  let interrupted: 'SIGINT' | 'SIGTERM' | undefined;
  let startStep = 0;
  let total = 0;
  try {
    ({ ctx, total } = await setup(cfg, deps, run));
    startStep = ctx.trainer.step;
    const evalPrompts = cfg.evalEvery > 0 && cfg.data.eval ? await loadPrompts(cfg.data.eval, cfg.data) : [];
    await writeRunConfig(cfg.outDir, cfg);
    for (let step = startStep; step < total; step++) {
      const rec = await rlStep(ctx, step, evalPrompts);
      records.push(rec);
      deps.onStep?.(rec);
      const stop = ctx.trainer.stopRequested;
      if (stop || (cfg.saveEvery > 0 && (step + 1) % cfg.saveEvery === 0))
        lastCheckpoint = await ctx.trainer.save(ctx.stream.position);
      if (stop) {
        interrupted = stop;
        console.error(
          `grpo: stopped by ${stop} after step ${step + 1} of ${total}; saved ${lastCheckpoint}; continue with --resume latest`,
        );
        break;
      }
    }
    if (!interrupted && total > startStep && !lastCheckpoint?.endsWith(String(total).padStart(8, '0')))
      lastCheckpoint = await ctx.trainer.save(ctx.stream.position);
  } finally {
    run.bar?.done();
    run.log?.close();
    run.rollLog?.close();
    ctx?.trainer.dispose();
    ctx?.critic?.dispose();
    await ctx?.pool?.close();
    await ctx?.engine.close();
    if (ctx?.ref && !deps.refModel && ctx.ref !== ctx.model) ctx.ref.dispose();
    if (ctx) detachAdapter(ctx.model.params)?.dispose();
    if (ctx && !deps.model) ctx.model.dispose();
  }
  return {
    steps: total - startStep,
    records,
    logFile: path.join(cfg.outDir, 'log.jsonl'),
    rolloutsFile: path.join(cfg.outDir, 'rollouts.jsonl'),
    lastCheckpoint,
    interrupted,
  };
}

/** One RL step: rollout -> reward -> advantages -> updates at the step's lr -> record -> logs. */
async function rlStep(ctx: RunContext, step: number, evalPrompts: PromptExample[]): Promise<GrpoStepRecord> {
  const { cfg, trainer } = ctx;
  const t0 = performance.now();
  const times = { rollout: 0, reward: 0 };
  const { all, kept, nulls, refills, dropped, version } = await collectGroups(ctx, step, times);
  const t1 = performance.now();
  const lr = trainer.schedule(step);
  const ppo = ctx.critic && kept.length ? await ppoTargets(ctx.critic, kept, cfg, ctx.tok.special.pad) : null;
  const upd = kept.length > 0 ? await updatePolicy(ctx, kept, lr) : null;
  const crit = ctx.critic && ppo ? await ppoCriticStep(ctx.critic, ppo, step) : null;
  const timeUpdateMs = performance.now() - t1;
  const synced = await ctx.sync.afterStep(ctx.model, step + 1);
  const rec = stepRecord({
    step: step + 1,
    lr,
    entropyCoef: cfg.entropyCoef,
    upd,
    rs: rolloutStats(all),
    dropped,
    refills,
    groups: kept.length,
    nulls,
    times,
    timeUpdateMs,
    elapsedMs: performance.now() - t0,
  });
  Object.assign(rec, engineRecord(version, synced, upd));
  if (evalPrompts.length && (step + 1) % cfg.evalEvery === 0)
    rec.evalReward = await evaluate(ctx, evalPrompts);
  logRollouts(ctx.rollLog, step + 1, all);
  if (ppo && crit) Object.assign(rec, ppoRecordFields(ppo, crit));
  trainer.endStep(rec);
  return rec;
}

// GRPO sampling: the step's prompts (skipping, and naming once, those over maxPromptLen), one round of G completions
// each on the rollout engine, scored and group-normalised; DAPO dynamic sampling (drop zero-variance groups, refill);
// and the greedy eval. The loop that uses them is grpo.ts. References: TRL `GRPOTrainer._generate_and_score_completions`,
// DAPO (arXiv 2503.14476) dynamic sampling.
import { type EncodedPrompt, encodePrompt, type PromptExample, type PromptStream } from '../data/prompts.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { tooLongMessage } from '../data/too_long.js';
import { QWEN_EOS_IDS } from '../model/generate.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { QWEN_REAL_VOCAB, type SamplingOptions } from '../model/sampling.js';
import type { VerifierPool } from '../reward/pool.js';
import type { RolloutEngine } from '../rollout/index.js';
import { rolloutPrompts } from '../rollout/local.js';
import { mean } from '../util/stats.js';
import { imageOptions } from './config.js';
import type { GrpoConfig } from './grpo_config.js';
import { asGenerateResult, checkRolloutVersion, engineRequests, rolloutSeed } from './grpo_engine.js';
import { groupAdvantages } from './grpo_math.js';
import type { Group } from './grpo_step.js';
import { type RewardFunction, scoreCompletions } from './rollout.js';

/** What sampling reads from a GRPO run. */
export interface SampleContext {
  cfg: GrpoConfig;
  model: Qwen2_5_VL;
  tok: QwenTokenizer;
  prompts: PromptExample[];
  stream: PromptStream;
  deps: {
    rewardFn?: RewardFunction;
    sampling?: Pick<SamplingOptions, 'allowedVocab' | 'repetitionPenalty'>;
    eosIds?: number[];
  };
  pool: VerifierPool | null;
  engine: RolloutEngine;
}

const warnedTooLong = new WeakMap<SampleContext, Set<string>>();
/** Names a skipped too-long prompt (file:line, tokens, images, the fix) once per run. */
function warnTooLong(ctx: SampleContext, ex: PromptExample, enc: EncodedPrompt): void {
  const seen = warnedTooLong.get(ctx) ?? new Set<string>();
  warnedTooLong.set(ctx, seen);
  if (seen.has(ex.where)) return;
  seen.add(ex.where);
  const images = ex.images.map((file, i) => ({ file, gridThw: enc.gridThw[i] }));
  const sample = { where: ex.where, tokens: enc.ids.length, images };
  console.error(
    `grpo: warning: ${tooLongMessage([sample], ctx.cfg.maxPromptLen, 'maxPromptLen', '--max-prompt-len', 'skipped')}`,
  );
}

/** Encodes the next `k` prompts that fit maxPromptLen (longer ones are skipped). */
async function nextPrompts(
  ctx: SampleContext,
  k: number,
): Promise<{ ex: PromptExample; enc: EncodedPrompt }[]> {
  const out: { ex: PromptExample; enc: EncodedPrompt }[] = [];
  for (let tries = 0; out.length < k; tries++) {
    if (tries > 10 * ctx.prompts.length + k)
      throw new Error(`no prompt fits maxPromptLen (${ctx.cfg.maxPromptLen}): raise --max-prompt-len`);
    const ex = ctx.prompts[ctx.stream.next(1)[0]];
    const enc = await encodePrompt(ctx.tok, ex, imageOptions(ctx.cfg));
    if (enc.ids.length <= ctx.cfg.maxPromptLen) out.push({ ex, enc });
    else warnTooLong(ctx, ex, enc);
  }
  return out;
}

/** One sampling round on the rollout engine: k prompts x G completions, scored, with group advantages. */
async function sampleRound(
  ctx: SampleContext,
  k: number,
  seed: number,
  times: { rollout: number; reward: number },
): Promise<{ groups: Group[]; nulls: number; version: number | null }> {
  const { cfg } = ctx;
  const G = cfg.numGenerations;
  const t0 = performance.now();
  const picked = await nextPrompts(ctx, k);
  const res = await ctx.engine.generate(engineRequests(picked), {
    n: G,
    maxNewTokens: cfg.maxResponseLen,
    temperature: cfg.temperature,
    topP: cfg.topP,
    topK: cfg.topK,
    allowedVocab: Math.min(ctx.model.config.vocab_size, QWEN_REAL_VOCAB),
    ...ctx.deps.sampling,
    seed,
    eosIds: ctx.deps.eosIds ?? QWEN_EOS_IDS,
    stopStrings: cfg.stopStrings,
  });
  const where = `${ctx.engine.kind} engine${ctx.engine.url ? ` at ${ctx.engine.url}` : ''}`;
  checkRolloutVersion(res.version, ctx.engine.servedVersion, cfg.rollout.maxVersionLag, where);
  const gen = asGenerateResult(res, (ids) => ctx.tok.decode(ids), cfg.stopStrings);
  const t1 = performance.now();
  const texts = gen.texts ?? [];
  const of = (r: number) => picked[gen.promptIndex[r]].ex;
  const { rewards, nulls } = await scoreCompletions(
    texts,
    {
      answers: gen.promptIndex.map((b) => picked[b].ex.answer),
      prompts: gen.promptIndex.map((b) => picked[b].ex.prompt),
      promptIds: texts.map((_, r) => of(r).id),
      finishReasons: gen.finishReasons,
      completionIds: gen.tokens,
    },
    { rewardFn: ctx.deps.rewardFn, format: cfg.reward.format, pool: ctx.pool },
  );
  times.rollout += t1 - t0;
  times.reward += performance.now() - t1;
  const adv = groupAdvantages(rewards, G, { scaleByStd: cfg.scaleRewardsByStd });
  const flat = new Set(adv.zeroVarianceGroups);
  const slice = <T>(xs: T[], b: number) => xs.slice(b * G, (b + 1) * G);
  const groups = picked.map((p, b) => ({
    example: p.ex,
    encoded: p.enc,
    tokens: slice(gen.tokens, b),
    texts: slice(texts, b),
    genLogprobs: slice(gen.logprobs, b),
    finish: slice(gen.finishReasons, b),
    rewards: slice(rewards, b),
    advantages: slice(adv.advantages, b),
    dropped: cfg.dynamicSampling && flat.has(b),
  }));
  return { groups, nulls, version: res.version };
}

/** Samples the step's groups; with dynamic sampling drops zero-variance groups and refills up to maxRefills times. */
export async function collectGroups(
  ctx: SampleContext,
  step: number,
  times: { rollout: number; reward: number },
) {
  const { cfg } = ctx;
  const all: Group[] = [];
  let nulls = 0;
  let refills = 0;
  let version: number | null = null;
  for (let round = 0; ; round++) {
    const have = all.filter((g) => !g.dropped).length;
    const r = await sampleRound(
      ctx,
      cfg.promptsPerStep - have,
      rolloutSeed(cfg.seed ?? 0, step, round),
      times,
    );
    all.push(...r.groups);
    nulls += r.nulls;
    version = r.version ?? version;
    const kept = all.filter((g) => !g.dropped).length;
    if (!cfg.dynamicSampling || kept >= cfg.promptsPerStep || round >= cfg.maxRefills) break;
    refills++;
  }
  const kept = all.filter((g) => !g.dropped).slice(0, cfg.promptsPerStep);
  return { all, kept, nulls, refills, dropped: all.filter((g) => g.dropped).length, version };
}

/** Greedy accuracy (mean reward) on the eval prompts. */
export async function evaluate(ctx: SampleContext, prompts: PromptExample[]): Promise<number> {
  const rewards: number[] = [];
  for (let i = 0; i < prompts.length; i += ctx.cfg.promptsPerStep) {
    const part = prompts.slice(i, i + ctx.cfg.promptsPerStep);
    const enc = await Promise.all(part.map((p) => encodePrompt(ctx.tok, p, imageOptions(ctx.cfg))));
    const gen = await rolloutPrompts(ctx.model, enc, {
      greedy: true,
      maxNewTokens: ctx.cfg.maxResponseLen,
      eosIds: ctx.deps.eosIds ?? QWEN_EOS_IDS,
      stopStrings: ctx.cfg.stopStrings,
      decode: (ids) => ctx.tok.decode(ids),
      padId: ctx.tok.special.pad,
      allowedVocab: Math.min(ctx.model.config.vocab_size, QWEN_REAL_VOCAB),
      ...ctx.deps.sampling,
    });
    const ctxR = {
      answers: part.map((p) => p.answer),
      prompts: part.map((p) => p.prompt),
      promptIds: part.map((p) => p.id),
      finishReasons: gen.finishReasons,
      completionIds: gen.tokens,
    };
    const opts = { rewardFn: ctx.deps.rewardFn, format: ctx.cfg.reward.format, pool: ctx.pool };
    rewards.push(...(await scoreCompletions(gen.texts ?? [], ctxR, opts)).rewards);
  }
  return mean(rewards, 0);
}

// GRPO's side of the rollout engine (src/rollout): the engine requests of a step's prompts, the per-round sampling
// seed, the version check on what comes back, and the sync policy (after every `syncEvery` RL steps write the
// weights atomically and tell the engine to load them; the step log records the time and the version served).
// The engine may be the in-process one (shares the policy: a sync only records the version) or a remote SGLang /
// vLLM / `ovr-train serve`. Off-policy correction of what it samples is in is_correction.ts and grpo_step.ts.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { EncodedPrompt, PromptExample } from '../data/prompts.js';
import type { GenerateResult } from '../model/generate.js';
import { adapterOf } from '../model/lora.js';
import { saveAdapter } from '../model/peft.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { saveWeights } from '../model/weights.js';
import type { RolloutConfig } from '../rollout/config.js';
import { pruneSyncDirs, writeSyncDir } from '../rollout/sync.js';
import type { RolloutEngine, RolloutRequest, RolloutResult } from '../rollout/types.js';
import { Rng } from '../util/rng.js';
import { importanceWeights } from './is_correction.js';

/**
 * The sampling seed of round `round` of RL step `step` (uint32): a pure function of (seed, step, round), so a resumed
 * run samples what the uninterrupted run did, on any engine that honours seeds.
 * @example rolloutSeed(0, 12, 0) === rolloutSeed(0, 12, 0) // true
 */
export function rolloutSeed(seed: number, step: number, round: number): number {
  const r = new Rng(seed).split('sampling').split(`step-${step}`).split(`round-${round}`);
  return Math.floor(r.uniform() * 2 ** 32) >>> 0;
}

/** Engine requests of encoded prompts: our ids and image patches, plus the image files for vLLM. */
export const engineRequests = (picked: { ex: PromptExample; enc: EncodedPrompt }[]): RolloutRequest[] =>
  picked.map(({ ex, enc }) => ({
    promptIds: enc.ids,
    pixels: enc.pixels ? { data: enc.pixels, gridThw: enc.gridThw } : null,
    images: ex.images,
  }));

/**
 * An engine result as `generate` returns it (rows r = prompt * n + sample), texts decoded from the ids and cut after
 * the first stop string, as generate does.
 */
export function asGenerateResult(
  res: RolloutResult,
  decode: (ids: number[]) => string,
  stopStrings: readonly string[] = [],
): GenerateResult {
  const cut = (t: string) => {
    let end = t.length;
    for (const s of stopStrings) {
      const at = t.indexOf(s);
      if (at >= 0) end = Math.min(end, at + s.length);
    }
    return t.slice(0, end);
  };
  return {
    tokens: res.samples.map((s) => s.tokens),
    logprobs: res.samples.map((s) => s.logprobs),
    finishReasons: res.samples.map((s) => s.finishReason),
    promptIndex: res.samples.map((s) => s.promptIndex),
    texts: res.samples.map((s) => cut(decode(s.tokens))),
  };
}

/**
 * Refuses a rollout sampled from weights older than the last synced version by more than `maxLag` syncs.
 * @example checkRolloutVersion(4, 5, 0, 'http://x') // throws: rollout from version 4, engine synced to 5
 */
export function checkRolloutVersion(got: number | null, synced: number, maxLag: number, where: string): void {
  if (got === null || got >= synced - maxLag) return;
  throw new Error(
    `${where}: rollout sampled from weights version ${got}, but version ${synced} was synced (rollout.maxVersionLag ${maxLag}); refusing it`,
  );
}

/** The engine fields of a step record: versions, sync time, and the mismatch correction (remote engines). */
export function engineRecord(
  rolloutVersion: number | null,
  synced: SyncRecord,
  upd: {
    is?: { meanAbsDiff: number; maxAbsDiff: number; correctedFraction: number; klEstimate: number };
  } | null,
) {
  return {
    rolloutVersion,
    servedVersion: synced.servedVersion,
    syncMs: synced.syncMs,
    isMeanAbsDiff: upd?.is?.meanAbsDiff ?? null,
    isMaxAbsDiff: upd?.is?.maxAbsDiff ?? null,
    isCorrectedFrac: upd?.is?.correctedFraction ?? null,
    isKl: upd?.is?.klEstimate ?? null,
  };
}

/** What a sync reports into the step log. */
export interface SyncRecord {
  /** Wall time of write + load (0 when no sync ran this step). */
  syncMs: number;
  /** Version the engine serves after this step. */
  servedVersion: number;
}

/**
 * Keeps a remote engine serving the trainer's weights: `sync(model, version)` writes `<syncDir>/v<version>` atomically
 * (HF safetensors + config.json, or with rollout.weights 'adapter' the PEFT adapter of a LoRA run), has the engine
 * load it, then deletes older folders (only the served version is kept). The in-process engine shares
 * the weights, so only the version is recorded.
 */
export class EngineSync {
  private root: string;

  constructor(
    readonly engine: RolloutEngine,
    private readonly cfg: RolloutConfig,
    outDir: string,
  ) {
    this.root = path.resolve(cfg.syncDir ?? path.join(outDir, 'rollout-weights'));
  }

  /** Syncs when `step` (1-based, after the update) is a multiple of syncEvery, or when `force`. */
  async afterStep(model: Qwen2_5_VL, step: number, force = false): Promise<SyncRecord> {
    if (!force && step % this.cfg.syncEvery !== 0)
      return { syncMs: 0, servedVersion: this.engine.servedVersion };
    const t0 = performance.now();
    if (this.engine.kind === 'local') {
      await this.engine.syncWeights({ dir: '', kind: 'full', version: step });
    } else {
      const dtype = this.cfg.syncDtype;
      const kind = this.cfg.weights;
      const lora = adapterOf(model.params);
      if (kind === 'adapter' && !lora)
        throw new Error(
          "rollout.weights 'adapter': the policy carries no LoRA adapter; set --lora.r (or --adapter DIR) or use rollout.weights 'full'",
        );
      const dir = await writeSyncDir(this.root, step, (d) =>
        lora && kind === 'adapter'
          ? saveAdapter(d, lora, { dtype })
          : saveWeights(d, model.params, model.config, { dtype }),
      );
      await this.engine.syncWeights({ dir, kind, version: step });
      await pruneSyncDirs(this.root, [dir]);
    }
    return { syncMs: performance.now() - t0, servedVersion: this.engine.servedVersion };
  }
}

/**
 * Importance weights [n, Tc] of a micro-batch (0 on padding) from the trainer's old log-probs and the engine's;
 * adds the mismatch statistics (token-weighted) to `acc`.
 */
export function isWeightsOf(
  old: number[][],
  engine: number[][],
  o: { isMode: Parameters<typeof importanceWeights>[2]['mode']; isCap: number },
  acc: { sumAbs: number; maxAbs: number; corrected: number; kl: number; tokens: number },
): tf.Tensor2D {
  const trainer = engine.map((row, r) => old[r].slice(0, row.length));
  const c = importanceWeights(trainer, engine, { mode: o.isMode, cap: o.isCap });
  const tokens = engine.reduce((a, row) => a + row.length, 0);
  acc.sumAbs += c.meanAbsDiff * tokens;
  acc.maxAbs = Math.max(acc.maxAbs, c.maxAbsDiff);
  acc.corrected += c.correctedFraction * tokens;
  acc.kl += c.klEstimate * tokens;
  acc.tokens += tokens;
  const Tc = old[0]?.length ?? 0;
  return tf.tensor2d(c.weights.map((w) => [...w, ...new Array<number>(Tc - w.length).fill(0)]));
}

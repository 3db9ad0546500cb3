// The in-process rollout engine: today's tfjs `generate` (KV cache, one prefill per prompt, N samples) behind the
// RolloutEngine contract. In a trainer it shares the policy's Variables, so a sync only records the version; in
// `ovr-train serve` it owns its model and a sync loads the new weights from disk (all tensors read and checked
// before any is assigned, so a bad folder leaves the served weights untouched): full HF weights are assigned into
// the model's Variables, a PEFT adapter replaces the one the model carries (model/peft.ts swapAdapter; one at a time).
import * as tf from '@tensorflow/tfjs-core';
import type { EncodedPrompt } from '../data/prompts.js';
import { type CausalLM, type GenerateOptions, type GenerateResult, generate } from '../model/generate.js';
import { swapAdapter } from '../model/peft.js';
import type { ModelInputs, Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { PATCH_WIDTH } from '../model/vision.js';
import { assignWeights } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import {
  checkResult,
  type RolloutEngine,
  type RolloutRequest,
  type RolloutResult,
  type RolloutSampling,
  type WeightSync,
} from './types.js';

/** Concatenated patches and grids of `prompts` in row order; the caller disposes `pixelValues`. */
export function imageInputs(prompts: EncodedPrompt[]): Pick<ModelInputs, 'pixelValues' | 'imageGridThw'> {
  const withImages = prompts.filter((p) => p.pixels !== null);
  if (withImages.length === 0) return {};
  const total = withImages.reduce((a, p) => a + (p.pixels as Float32Array).length, 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const p of withImages) {
    data.set(p.pixels as Float32Array, at);
    at += (p.pixels as Float32Array).length;
  }
  return {
    pixelValues: tf.tensor2d(data, [total / PATCH_WIDTH, PATCH_WIDTH]),
    imageGridThw: withImages.flatMap((p) => p.gridThw),
  };
}

/**
 * Samples `numSamples` completions per prompt from one shared prefill (left-padded batch).
 * @example const out = await rolloutPrompts(model, encoded, { maxNewTokens: 64, numSamples: 8, rng, padId });
 */
export async function rolloutPrompts(
  model: CausalLM,
  prompts: EncodedPrompt[],
  opts: GenerateOptions & { padId: number },
): Promise<GenerateResult> {
  const P = Math.max(...prompts.map((p) => p.ids.length));
  const inputIds = prompts.map((p) => [...new Array(P - p.ids.length).fill(opts.padId), ...p.ids]);
  const attentionMask = prompts.map((p) => [...new Array(P - p.ids.length).fill(0), ...p.ids.map(() => 1)]);
  const img = imageInputs(prompts);
  try {
    return await generate(model, { inputIds, attentionMask, ...img }, opts);
  } finally {
    img.pixelValues?.dispose();
  }
}

/** Options of {@link LocalEngine}. */
export interface LocalEngineOptions {
  /** The model to sample from. */
  model: Qwen2_5_VL | (CausalLM & { config: { vocab_size: number } });
  /** Token ids -> text, needed for stop strings. */
  decode?: (ids: number[]) => string;
  /** Pad id of left-padded batches (Qwen: 151643). */
  padId: number;
  /**
   * 'shared': the model is the trainer's policy (sync = record the version; weights are already current).
   * 'owned': the engine serves its own copy (sync = load the folder into it). Default 'shared'.
   */
  weights?: 'shared' | 'owned';
}

/**
 * Seeded sampling stream of one generate call: `new Rng(seed).split('sampling')`; row r then draws from
 * `.split('row<r>')` (model/generate.ts), so equal seeds give equal rows on every engine that runs this code.
 */
export const samplingRng = (seed: number): Rng => new Rng(seed).split('sampling');

/**
 * In-process engine over `generate`.
 * @example
 * const engine = new LocalEngine({ model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
 * const { samples } = await engine.generate([{ promptIds }], { n: 4, maxNewTokens: 64, temperature: 1, seed: 0, eosIds: QWEN_EOS_IDS });
 */
export class LocalEngine implements RolloutEngine {
  readonly kind = 'local';
  private version = 0;

  constructor(private readonly o: LocalEngineOptions) {}

  get servedVersion(): number {
    return this.version;
  }

  async generate(requests: RolloutRequest[], s: RolloutSampling): Promise<RolloutResult> {
    if (requests.length === 0) return { samples: [], version: this.version };
    const version = this.version;
    const out = await rolloutPrompts(
      this.o.model,
      requests.map((r) => ({
        ids: r.promptIds,
        pixels: r.pixels?.data ?? null,
        gridThw: r.pixels?.gridThw ?? [],
      })),
      {
        maxNewTokens: s.maxNewTokens,
        numSamples: s.n,
        temperature: s.temperature,
        topP: s.topP,
        topK: s.topK,
        allowedVocab: s.allowedVocab,
        repetitionPenalty: s.repetitionPenalty,
        rng: samplingRng(s.seed),
        eosIds: s.eosIds,
        stopStrings: s.stopStrings,
        decode: this.o.decode,
        padId: this.o.padId,
      },
    );
    const samples = out.tokens.map((tokens, r) => ({
      promptIndex: out.promptIndex[r],
      tokens,
      logprobs: out.logprobs[r],
      finishReason: out.finishReasons[r],
    }));
    return checkResult({ samples, version }, requests.length, s.n);
  }

  async syncWeights(u: WeightSync): Promise<void> {
    // no monotonic check: a new or resumed run numbers its versions from its own step (the client refuses stale rollouts)
    if ((this.o.weights ?? 'shared') === 'owned') {
      if (u.kind === 'adapter') {
        await swapAdapter(this.o.model as Qwen2_5_VL, u.dir);
      } else {
        await assignWeights(this.o.model as Qwen2_5_VL, u.dir);
      }
    }
    this.version = u.version;
  }

  async close(): Promise<void> {}
}

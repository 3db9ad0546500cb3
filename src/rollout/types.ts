// The rollout-engine contract: who samples completions for RL and how its weights are kept in step with the trainer.
// Follows the split every large RL trainer uses (TRL `vllm_mode="server"`, verl, OpenRLHF): the trainer owns the
// update; an engine (in-process tfjs, SGLang, vLLM, or `ovr-train serve`) owns generation. Facts and sources:
// ../shared/research/rollout_engines.md.
//
// Contract (every implementation, tested in test/rollout/):
// - Completions come back as token ids exactly as sampled (never re-tokenised text), one log-prob per token
//   (log softmax(logits / T) of the sampled id, as src/model/sampling.ts defines it) and a finish reason.
// - `generate` returns every row or throws: a caller never sees part of a batch.
// - `syncWeights` makes the engine serve a weights folder (HF layout, or a PEFT adapter) under a version number;
//   `servedVersion` is the version the engine confirmed, and results carry the version they were sampled with.
//
// Shapes: B requests (prompts), N samples per request, rows r = b * N + s.

/** A prompt to continue: our own token ids (image pads expanded) and its images. */
export interface RolloutRequest {
  /** Prompt token ids, as the trainer's processor made them (engines must not re-tokenise). */
  promptIds: number[];
  /** Processor output of the prompt's images: [Npatch, 1176] row-major patches and one [t, h, w] per image. */
  pixels?: { data: Float32Array; gridThw: number[][] } | null;
  /** Image files (or encoded bytes) of the prompt, in order, for engines that run their own image processor (vLLM). */
  images?: (string | Uint8Array)[];
}

/** Sampling settings shared by every request of one `generate` call. */
export interface RolloutSampling {
  /** Samples per request (GRPO's G). */
  n: number;
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP?: number;
  /** 0 = off. */
  topK?: number;
  /** Seed of the whole call: the same seed, prompts and weights give the same rows on the same engine. */
  seed: number;
  /** Ids that end a row (kept as its last token); exactly this set (engines are told to ignore their own EOS). */
  eosIds: number[];
  /** Stop strings on the decoded text. */
  stopStrings?: string[];
  /** Only ids below this can be sampled (e.g. 151665 real Qwen ids, or a toy vocabulary). */
  allowedVocab?: number;
  /** HF repetition penalty (1 = off). */
  repetitionPenalty?: number;
}

export type RolloutFinish = 'stop' | 'length';

/** One sampled completion. */
export interface RolloutSample {
  /** Index of the request it continues. */
  promptIndex: number;
  /** Sampled ids, up to and including the stopping token. */
  tokens: number[];
  /** log softmax(logits / T)[token] per token (T = 1 when greedy), as reported by the engine. */
  logprobs: number[];
  finishReason: RolloutFinish;
}

/** What `generate` returns: rows r = b * n + s, and the weights version that produced them. */
export interface RolloutResult {
  samples: RolloutSample[];
  /** Version the engine reported serving while sampling (null when it cannot tell). */
  version: number | null;
}

/** A weights folder to serve: full HF weights (config.json + safetensors) or a PEFT adapter folder. */
export interface WeightSync {
  dir: string;
  kind: 'full' | 'adapter';
  /** Monotonic version number (GRPO: the optimizer step the weights come from). */
  version: number;
}

/** An engine that samples completions and can be told to serve new weights. */
export interface RolloutEngine {
  /** 'local' | 'sglang' | 'vllm'. */
  readonly kind: string;
  /** Base URL of a remote engine (undefined in-process). */
  readonly url?: string;
  /** Version confirmed by the last successful syncWeights (initial: 0, the weights the engine started with). */
  readonly servedVersion: number;
  /** Samples `sampling.n` completions per request. All rows or an error. */
  generate(requests: RolloutRequest[], sampling: RolloutSampling): Promise<RolloutResult>;
  /** Makes the engine serve `update`; resolves once it does (servedVersion = update.version). */
  syncWeights(update: WeightSync): Promise<void>;
  /** Releases what the engine object holds (connections; the in-process engine does not own its model). */
  close(): Promise<void>;
}

/** A remote engine failed after its retries: names the URL, the endpoint and what went wrong. */
export class RolloutEngineError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly endpoint: string,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'RolloutEngineError';
  }
}

/**
 * Checks a result against its call: n rows per request, in order, a log-prob per token, ids within the vocabulary.
 * Engines run it on what they got before returning, so a malformed reply is an error, never a half-used batch.
 * @example checkResult(res, 2, 4) // throws 'engine returned 7 samples for 2 prompts x 4'
 */
export function checkResult(res: RolloutResult, numPrompts: number, n: number): RolloutResult {
  const want = numPrompts * n;
  if (res.samples.length !== want)
    throw new Error(`engine returned ${res.samples.length} samples for ${numPrompts} prompts x ${n}`);
  res.samples.forEach((s, r) => {
    if (s.promptIndex !== Math.floor(r / n))
      throw new Error(`sample ${r} continues prompt ${s.promptIndex}, expected ${Math.floor(r / n)}`);
    if (s.tokens.length !== s.logprobs.length)
      throw new Error(`sample ${r}: ${s.tokens.length} tokens but ${s.logprobs.length} log-probs`);
    if (s.tokens.some((t) => !Number.isInteger(t) || t < 0))
      throw new Error(`sample ${r}: token ids must be integers >= 0`);
    const bad = s.logprobs.find((l) => !(l <= 1e-4)); // NaN or > 0 (1e-4: float rounding of log 1)
    if (bad !== undefined) throw new Error(`sample ${r}: log-prob ${bad} is not a log-probability (<= 0)`);
    if (s.finishReason !== 'stop' && s.finishReason !== 'length')
      throw new Error(`sample ${r}: finish reason '${s.finishReason}' (expected stop or length)`);
  });
  return res;
}

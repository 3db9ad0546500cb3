// Autoregressive generation with a KV cache: greedy or sampled (temperature, top-k, top-p), batched left-padded
// prompts, N samples per prompt from ONE prefill (the cache is tiled row-wise after the prefill), stop on EOS ids,
// stop strings or the token budget, with the per-token log-probs of the chosen tokens and a finish reason per row.
// Mirrors HF `GenerationMixin._sample` (prefill, then one token per step; finished rows keep decoding a pad token
// whose output is discarded) with `num_return_sequences` done by tiling the prefilled cache instead of the prompt.
//
// Shapes: B prompts, N samples per prompt, R = B x N output rows (row r = prompt floor(r / N), sample r mod N),
// S cached slots, V vocabulary, Hkv kv heads, Dh head dim.
//
// Randomness: output row r draws from its own stream `rng.split(`row${r}`)`, one uniform per step, so a row's
// tokens do not depend on which other rows share the batch (N samples of one prefill == the prompt repeated N times).
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../util/rng.js';
import { KVCache } from './kv_cache.js';
import type { ForwardOptions, ModelInputs } from './qwen2_5_vl.js';
import { type FinishReason, type SamplingOptions, StopChecker, sampleRow } from './sampling.js';

/** Qwen2.5-VL end ids: <|im_end|> and <|endoftext|> (HF generation_config eos_token_id). */
export const QWEN_EOS_IDS = [151645, 151643];
/** <|endoftext|>, Qwen's pad token. */
export const QWEN_PAD_ID = 151643;

/** What `generate` needs from a model: a forward pass that fills / extends a KV cache. */
export interface CausalLM {
  forward(inputs: ModelInputs, opts?: ForwardOptions): { logits: tf.Tensor3D; ropeDeltas: number[] };
}

/** Generation options: sampling (see SamplingOptions; `greedy` or temperature 0 for argmax) plus stopping. */
export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens per row. */
  maxNewTokens: number;
  /** Samples per prompt, all from one prefill. Default 1. */
  numSamples?: number;
  /** Random stream for sampling (unused when greedy). Required unless greedy. */
  rng?: Rng;
  /** Ids that end a row (kept as its last token). Default QWEN_EOS_IDS; [] to disable. */
  eosIds?: number[];
  /** Stop strings on the decoded text (needs `decode`). */
  stopStrings?: string[];
  /** Token ids -> text, for stop strings and `texts` (e.g. tok.decode). */
  decode?: (ids: number[]) => string;
  /** Token fed to finished rows (output discarded). Default QWEN_PAD_ID. */
  padId?: number;
}

/** One entry per output row r = prompt * numSamples + sample. */
export interface GenerateResult {
  /** New tokens only, up to and including the stopping token. */
  tokens: number[][];
  /** log softmax(logits / T)[token] per new token (T = 1 when greedy), full unmodified vocabulary. */
  logprobs: number[][];
  finishReasons: FinishReason[];
  /** Index of the prompt each row continues. */
  promptIndex: number[];
  /** Decoded new text per row (when `decode` is given), cut right after a matched stop string. */
  texts?: string[];
}

const rowsOf = (x: number[][] | tf.Tensor2D): number[][] =>
  x instanceof tf.Tensor ? (x.arraySync() as number[][]) : x;

/** Checks that every mask row is left-padded ([0 .. 0, 1 .. 1]) with at least one real token. */
export function assertLeftPadded(mask: number[][]): void {
  mask.forEach((row, b) => {
    const first = row.indexOf(1);
    if (first < 0) throw new Error(`generate: prompt ${b} has no real token (attentionMask row is all 0)`);
    if (row.slice(first).some((m) => m !== 1) || row.slice(0, first).some((m) => m !== 0)) {
      throw new Error(
        `generate: attentionMask row ${b} is not left-padded; pad prompts on the left (padSide 'left')`,
      );
    }
  });
}

/**
 * Repeats every cached row `n` times in place (row b -> rows b*n .. b*n+n-1): keys, values, mask, rope deltas.
 * @example tileCache(cache, 4); // after a prefill of B prompts, the cache holds 4B rows
 */
export function tileCache(cache: KVCache, n: number): void {
  if (n === 1) return;
  const B = cache.batch;
  const idx = Array.from({ length: B * n }, (_, r) => Math.floor(r / n));
  const tiled = tf.tidy(() => {
    const at = tf.tensor1d(idx, 'int32');
    return cache.layers.map(({ k, v }) => ({
      k: tf.gather(k, at) as tf.Tensor4D,
      v: tf.gather(v, at) as tf.Tensor4D,
    }));
  });
  const deltas = cache.ropeDeltas;
  cache.update(
    tiled,
    idx.map((b) => cache.mask[b]),
  );
  cache.ropeDeltas = deltas ? idx.map((b) => deltas[b]) : null;
}

/** Text up to and including the earliest stop string (the whole text when none occurs). */
export function cutAtStop(text: string, stopStrings: readonly string[]): string {
  let end = text.length;
  for (const s of stopStrings) {
    const at = text.indexOf(s);
    if (at >= 0) end = Math.min(end, at + s.length);
  }
  return text.slice(0, end);
}

/** Reads the last-position logits [R, 1, V] as R host rows. */
async function hostRows(logits: tf.Tensor3D): Promise<Float32Array[]> {
  const [R, , V] = logits.shape;
  const data = (await logits.data()) as Float32Array;
  return Array.from({ length: R }, (_, r) => data.subarray(r * V, (r + 1) * V));
}

/** Validates options; returns the number of samples. */
function checkOptions(o: GenerateOptions): number {
  const n = o.numSamples ?? 1;
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`generate: numSamples must be an integer >= 1, got ${n}`);
  const greedy = (o.greedy ?? false) || o.temperature === 0;
  if (!greedy && !o.rng)
    throw new Error('generate: sampling needs an rng (new Rng(seed).split("sampling")), or set greedy');
  if ((o.stopStrings?.length ?? 0) > 0 && !o.decode)
    throw new Error('generate: stopStrings need a decode function');
  return n;
}

/**
 * Generates up to `maxNewTokens` per row after left-padded prompts (processor outputs).
 * @example
 * const out = await generate(model, { inputIds, attentionMask, pixelValues, imageGridThw }, {
 *   maxNewTokens: 256, temperature: 1, topP: 1, numSamples: 8, rng: new Rng(seed).split('sampling'),
 *   stopStrings: ['</answer>'], decode: (ids) => tok.decode(ids),
 * });
 * out.tokens[r], out.logprobs[r], out.finishReasons[r]; // r = prompt * 8 + sample
 */
export async function generate(
  model: CausalLM,
  inputs: ModelInputs,
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const N = checkOptions(opts);
  const ids = rowsOf(inputs.inputIds);
  const mask = inputs.attentionMask ? rowsOf(inputs.attentionMask) : ids.map((r) => r.map(() => 1));
  assertLeftPadded(mask);
  const R = ids.length * N;
  const promptIndex = Array.from({ length: R }, (_, r) => Math.floor(r / N));
  const rngs = Array.from({ length: R }, (_, r) => opts.rng?.split(`row${r}`));
  const stop = new StopChecker(R, {
    maxNewTokens: opts.maxNewTokens,
    eosIds: opts.eosIds ?? QWEN_EOS_IDS,
    stopStrings: opts.stopStrings,
  });
  const tokens: number[][] = promptIndex.map(() => []);
  const logprobs: number[][] = promptIndex.map(() => []);
  const history =
    opts.repetitionPenalty && opts.repetitionPenalty !== 1 ? promptIndex.map((b) => [...ids[b]]) : null;
  const texts = promptIndex.map(() => '');
  const cache = new KVCache();
  try {
    let logits = model.forward(
      { ...inputs, inputIds: ids, attentionMask: mask },
      { cache, lastOnly: true },
    ).logits;
    if (N > 1) {
      tileCache(cache, N);
      const tiled = tf.tidy(() => tf.gather(logits, tf.tensor1d(promptIndex, 'int32')) as tf.Tensor3D);
      logits.dispose();
      logits = tiled;
    }
    for (;;) {
      const rows = await hostRows(logits);
      logits.dispose();
      const next = rows.map((row, r) =>
        stop.isDone(r) ? null : sampleRow(row, opts, rngs[r] as Rng, history?.[r]),
      );
      const pieces = next.map((s, r) => {
        if (!s) return '';
        tokens[r].push(s.id);
        logprobs[r].push(s.logprob);
        history?.[r].push(s.id);
        if (!opts.decode) return '';
        const text = opts.decode(tokens[r]);
        const piece = text.slice(texts[r].length);
        texts[r] = text;
        return piece;
      });
      const fed = next.map((s) => s?.id ?? opts.padId ?? QWEN_PAD_ID);
      if (stop.push(fed, opts.decode ? pieces : undefined)) break;
      await new Promise((resolve) => setImmediate(resolve)); // keep the event loop (progress, RPC, signals) alive
      logits = model.forward(
        { inputIds: fed.map((id) => [id]), attentionMask: fed.map(() => [1]) },
        { cache },
      ).logits;
    }
  } finally {
    cache.dispose();
  }
  const finishReasons = stop.finishReasons as FinishReason[];
  const result: GenerateResult = { tokens, logprobs, finishReasons, promptIndex };
  if (opts.decode) result.texts = texts.map((t) => cutAtStop(t, opts.stopStrings ?? []));
  return result;
}

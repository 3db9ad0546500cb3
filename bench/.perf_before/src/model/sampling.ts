// Next-token selection for generation: greedy, temperature, top-k, top-p (nucleus), repetition penalty, a vocabulary
// cap, and stop conditions (EOS ids, stop strings, max new tokens).
// Follows the HF `generate` logits-processor order: repetition penalty -> temperature -> top-k -> top-p
// (transformers `RepetitionPenaltyLogitsProcessor`, `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper`).
//
// Shapes: B = rows (prompts x generations), V = vocabulary size (151936 for Qwen2.5-VL, of which 151665 are real ids).
//
// Choices (documented because GRPO depends on them):
// - The returned log-prob is log softmax(logits / T)[id] over the FULL, UNMODIFIED vocabulary (no repetition penalty,
//   no top-k/top-p, no vocabulary cap), as TRL's `_get_per_token_logps` computes the policy's log-prob. Greedy uses T = 1.
//   So sampler log-probs are the rollout policy's log-probs, comparable with a training forward at the same T.
// - Sampling is inverse-CDF with ONE uniform per row per step (`rng.uniform()`), walking the kept ids in ascending id
//   order. Greedy draws nothing. Same seed + same logits => same ids.
// - Ties: greedy takes the lowest id; top-k keeps every id tied with the k-th largest score (as HF, which removes only
//   scores strictly below the k-th value); top-p ranks by probability, then by lower id.
// - Host math is float64 on the float32 logits.
import type * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../util/rng.js';

/** Number of real (tokenizer) ids in Qwen2.5-VL; the embedding has 151936 rows, the rest are padding. */
export const QWEN_REAL_VOCAB = 151665;

/** How to pick the next token. All fields optional; the defaults give plain sampling at T = 1. */
export interface SamplingOptions {
  /** Softmax temperature. 0 means greedy. Default 1. */
  temperature?: number;
  /** Greedy decoding (argmax), same as temperature 0. Default false. */
  greedy?: boolean;
  /** Keep only the k highest scores (ties with the k-th kept). 0 = off. Default 0. */
  topK?: number;
  /** Keep the smallest most-probable set with cumulative probability >= topP (at least one id). 1 = off. Default 1. */
  topP?: number;
  /** HF repetition penalty over ids already in the row's history (prompt + generated). 1 = off. Default 1. */
  repetitionPenalty?: number;
  /** Ids >= allowedVocab can never be chosen (e.g. QWEN_REAL_VOCAB). Default: no cap. */
  allowedVocab?: number;
}

/** Chosen ids and their log-probs log softmax(logits / T)[id] (T = 1 for greedy), one per row. */
export interface SampleResult {
  ids: number[];
  logprobs: number[];
}

interface Resolved {
  greedy: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  allowedVocab: number;
}

/** Validates options and fills defaults; throws naming the bad field. */
export function resolveSampling(opts: SamplingOptions = {}): Resolved {
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  const repetitionPenalty = opts.repetitionPenalty ?? 1;
  const allowedVocab = opts.allowedVocab ?? Number.POSITIVE_INFINITY;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new Error(`sampling: temperature must be a finite number >= 0 (0 = greedy), got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0)
    throw new Error(`sampling: topK must be an integer >= 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`sampling: topP must be in (0, 1] (1 = off), got ${topP}`);
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) {
    throw new Error(
      `sampling: repetitionPenalty must be a finite number > 0 (1 = off), got ${repetitionPenalty}`,
    );
  }
  if (!(allowedVocab >= 1) || (Number.isFinite(allowedVocab) && !Number.isInteger(allowedVocab))) {
    throw new Error(`sampling: allowedVocab must be a positive integer, got ${allowedVocab}`);
  }
  const greedy = (opts.greedy ?? false) || temperature === 0;
  return { greedy, temperature: greedy ? 1 : temperature, topK, topP, repetitionPenalty, allowedVocab };
}

/** log sum exp(x[i] / t) over the whole row, in float64. */
function logSumExp(row: ArrayLike<number>, t: number): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i] / t);
  if (m === Number.NEGATIVE_INFINITY) return m;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] / t - m);
  return m + Math.log(s);
}

/** Scores after the repetition penalty and temperature, on ids < n (HF: divide positive, multiply negative). */
function processedScores(
  row: ArrayLike<number>,
  n: number,
  o: Resolved,
  history?: ArrayLike<number>,
): Float64Array {
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) s[i] = row[i];
  if (o.repetitionPenalty !== 1 && history) {
    const seen = new Set<number>();
    for (let j = 0; j < history.length; j++) seen.add(history[j]);
    for (const id of seen) {
      if (id >= 0 && id < n) s[id] = s[id] < 0 ? s[id] * o.repetitionPenalty : s[id] / o.repetitionPenalty;
    }
  }
  if (o.temperature !== 1) for (let i = 0; i < n; i++) s[i] /= o.temperature;
  return s;
}

/** Index of the largest score; the lowest id wins ties. */
export function argmax(s: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < s.length; i++) if (s[i] > s[best]) best = i;
  return best;
}

/** The k-th largest value of s (quickselect on a copy, O(V) on average). */
export function kthLargest(s: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(s);
  const want = a.length - k; // index in ascending order
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

/** Probabilities of the ids kept by top-k (HF: ties with the k-th value are kept); others get 0. */
function topKProbs(s: Float64Array, k: number): Float64Array {
  const thr = k > 0 && k < s.length ? kthLargest(s, k) : Number.NEGATIVE_INFINITY;
  const m = s[argmax(s)];
  const p = new Float64Array(s.length);
  let z = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] >= thr) {
      p[i] = Math.exp(s[i] - m);
      z += p[i];
    }
  }
  for (let i = 0; i < s.length; i++) p[i] /= z;
  return p;
}

/** Probabilities above t (all when t < 0) and their mass. */
function above(p: ArrayLike<number>, t: number): { vals: Float64Array; mass: number } {
  let count = 0;
  let mass = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > t) {
      count++;
      mass += p[i];
    }
  }
  const vals = new Float64Array(count);
  for (let i = 0, j = 0; i < p.length; i++) if (p[i] > t) vals[j++] = p[i];
  return { vals, mass };
}

/**
 * Ids of the nucleus: the smallest set of most-probable ids (ties: lower id first) with mass >= topP, at least one.
 * Only probabilities above a threshold are sorted: if the ids with p > t already hold mass >= topP, the nucleus is
 * among them, since every other id ranks after them. Returned in ascending id order.
 * @example nucleus(Float64Array.of(0.1, 0.5, 0.4), 0.8) // [1, 2]
 */
export function nucleus(p: ArrayLike<number>, topP: number): number[] {
  let vals: Float64Array = new Float64Array(0);
  for (const t of [1e-3, 1e-6, 1e-9, 0]) {
    const c = above(p, t);
    vals = c.vals;
    if (c.mass >= topP) break;
  }
  vals.sort(); // ascending; walk from the top
  let cum = 0;
  let k = 0;
  let cut = vals[vals.length - 1];
  for (let j = vals.length - 1; j >= 0; j--) {
    cum += vals[j];
    k++;
    cut = vals[j];
    if (cum >= topP) break;
  }
  const kept: number[] = [];
  for (let i = 0; i < p.length; i++) if (p[i] > cut) kept.push(i);
  for (let i = 0; i < p.length && kept.length < k; i++) if (p[i] === cut) kept.push(i);
  return kept.sort((x, y) => x - y);
}

/** Inverse CDF over `ids` (ascending; null = every id) with probabilities p[id], renormalised; u in [0, 1). */
function inverseCdf(p: ArrayLike<number>, ids: ArrayLike<number> | null, u: number): number {
  const n = ids ? ids.length : p.length;
  const at = (j: number): number => (ids ? ids[j] : j);
  let total = 0;
  for (let j = 0; j < n; j++) total += p[at(j)];
  const target = u * total;
  let cum = 0;
  for (let j = 0; j < n; j++) {
    cum += p[at(j)];
    if (cum > target) return at(j);
  }
  for (let j = n - 1; j >= 0; j--) if (p[at(j)] > 0) return at(j);
  return at(n - 1);
}

/** Throws on NaN / +Infinity logits, naming the first bad id. */
function checkFinite(row: ArrayLike<number>): void {
  for (let i = 0; i < row.length; i++) {
    const x = row[i];
    if (x !== x || x === Number.POSITIVE_INFINITY) {
      throw new Error(`sampling: logits contain ${x} at id ${i}; check the model forward (NaN/Inf)`);
    }
  }
}

/** Picks one id for one row of logits (length V). Draws one uniform unless greedy. */
export function sampleRow(
  row: ArrayLike<number>,
  opts: SamplingOptions,
  rng: Rng,
  history?: ArrayLike<number>,
): { id: number; logprob: number } {
  const o = resolveSampling(opts);
  const n = Math.min(row.length, o.allowedVocab);
  checkFinite(row);
  const s = processedScores(row, n, o, history);
  if (s[argmax(s)] === Number.NEGATIVE_INFINITY) {
    throw new Error(`sampling: every allowed id (< ${n}) has logit -Infinity; nothing can be chosen`);
  }
  let id: number;
  if (o.greedy) {
    id = argmax(s);
  } else {
    const p = topKProbs(s, o.topK);
    id = inverseCdf(p, o.topP < 1 ? nucleus(p, o.topP) : null, rng.uniform());
  }
  const logprob = row[id] / o.temperature - logSumExp(row, o.temperature);
  return { id, logprob };
}

/**
 * Host variant: picks the next id for each row of logits.
 * @example
 * const rng = new Rng(0).split('sampling');
 * sampleRows([[0, 2, 1]], { temperature: 0.7, topP: 0.9 }, rng); // { ids: [1], logprobs: [...] }
 */
export function sampleRows(
  rows: ArrayLike<number>[],
  opts: SamplingOptions,
  rng: Rng,
  history?: ArrayLike<number>[],
): SampleResult {
  if (history && history.length !== rows.length) {
    throw new Error(
      `sampling: history has ${history.length} rows but logits have ${rows.length}; pass one per row`,
    );
  }
  const ids: number[] = [];
  const logprobs: number[] = [];
  rows.forEach((row, b) => {
    const r = sampleRow(row, opts, rng, history?.[b]);
    ids.push(r.id);
    logprobs.push(r.logprob);
  });
  return { ids, logprobs };
}

/**
 * Picks the next id for each row of a logits tensor [B, V] (the caller keeps ownership of `logits`; nothing is
 * allocated on the device). Async because it reads the tensor (dataSync is unusable on webgpu in Node).
 * @example
 * const last = tf.tidy(() => logits.slice([0, T - 1, 0], [B, 1, V]).reshape([B, V]));
 * const { ids, logprobs } = await sampleNext(last, { temperature: 1, topP: 1 }, rng, history);
 * last.dispose();
 */
export async function sampleNext(
  logits: tf.Tensor,
  opts: SamplingOptions,
  rng: Rng,
  history?: ArrayLike<number>[],
): Promise<SampleResult> {
  if (logits.rank !== 2) throw new Error(`sampleNext: logits must be [B, V], got shape [${logits.shape}]`);
  const [B, V] = logits.shape as [number, number];
  const data = (await logits.data()) as Float32Array;
  const rows = Array.from({ length: B }, (_, b) => data.subarray(b * V, (b + 1) * V));
  return sampleRows(rows, opts, rng, history);
}

/** Why a row stopped: a stop condition (EOS id or stop string) or the token budget. */
export type FinishReason = 'stop' | 'length';

/** Stop conditions for generation. */
export interface StopOptions {
  /** Token budget per row; reaching it without another stop gives 'length'. */
  maxNewTokens: number;
  /** End-of-sequence ids (e.g. <|im_end|> 151645, <|endoftext|> 151643). The id is kept in the output. */
  eosIds?: number[];
  /** Stop once the decoded text contains one of these (e.g. '</answer>'); matches across token boundaries. */
  stopStrings?: string[];
}

/**
 * Tracks, per row, whether generation has stopped and why. Feed it each step's ids (and decoded text pieces when
 * stop strings are used); rows already finished ignore further pushes.
 * @example
 * const stop = new StopChecker(B, { maxNewTokens: 64, eosIds: [151645], stopStrings: ['</answer>'] });
 * while (!stop.push(ids, ids.map((id) => tok.decode([id])))) { ... }
 * stop.finishReasons; // ['stop', 'length', ...]
 */
export class StopChecker {
  readonly finishReasons: (FinishReason | null)[];
  /** Tokens per row up to and including the stopping token. */
  readonly lengths: number[];
  /** Decoded text per row (pieces as pushed); `stopTextEnd[b]` is where the matched stop string ends in it, else -1. */
  readonly texts: string[];
  readonly stopTextEnd: number[];
  private readonly eos: Set<number>;
  private readonly stops: string[];
  private readonly maxStop: number;

  constructor(
    readonly batchSize: number,
    readonly opts: StopOptions,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`StopChecker: batchSize must be >= 1, got ${batchSize}`);
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) {
      throw new Error(`StopChecker: maxNewTokens must be an integer >= 1, got ${opts.maxNewTokens}`);
    }
    this.stops = opts.stopStrings ?? [];
    if (this.stops.some((s) => s.length === 0))
      throw new Error('StopChecker: stop strings must be non-empty');
    this.eos = new Set(opts.eosIds ?? []);
    this.maxStop = Math.max(0, ...this.stops.map((s) => s.length));
    this.finishReasons = new Array(batchSize).fill(null);
    this.lengths = new Array(batchSize).fill(0);
    this.texts = new Array(batchSize).fill('');
    this.stopTextEnd = new Array(batchSize).fill(-1);
  }

  /** True when row b has finished. */
  isDone(b: number): boolean {
    return this.finishReasons[b] !== null;
  }

  /** True when every row has finished. */
  get allDone(): boolean {
    return this.finishReasons.every((r) => r !== null);
  }

  /** Records one new token per row (and its decoded text); returns allDone. */
  push(ids: ArrayLike<number>, pieces?: string[]): boolean {
    if (ids.length !== this.batchSize)
      throw new Error(`StopChecker.push: got ${ids.length} ids for ${this.batchSize} rows`);
    if (this.stops.length > 0 && pieces?.length !== this.batchSize) {
      throw new Error('StopChecker.push: stop strings are set, so pass one decoded text piece per row');
    }
    for (let b = 0; b < this.batchSize; b++) {
      if (this.isDone(b)) continue;
      this.lengths[b]++;
      if (this.eos.has(ids[b]) || this.matchStop(b, pieces?.[b] ?? '')) this.finishReasons[b] = 'stop';
      else if (this.lengths[b] >= this.opts.maxNewTokens) this.finishReasons[b] = 'length';
    }
    return this.allDone;
  }

  /** Appends the piece and looks for a stop string in the part of the text that could hold a new match. */
  private matchStop(b: number, piece: string): boolean {
    const from = Math.max(0, this.texts[b].length - this.maxStop + 1);
    this.texts[b] += piece;
    if (this.stops.length === 0) return false;
    const tail = this.texts[b].slice(from);
    let end = -1;
    for (const s of this.stops) {
      const at = tail.indexOf(s);
      if (at >= 0 && (end < 0 || from + at + s.length < end)) end = from + at + s.length;
    }
    this.stopTextEnd[b] = end;
    return end >= 0;
  }
}

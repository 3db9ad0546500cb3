// Token log-probabilities and the causal-LM loss of HF (shift by one, ignore -100, mean over kept tokens).
// `tokenLogprobs` works on logits; `tokenLogprobsFromHidden` never keeps a `[N, V]` tensor for backward:
// it recomputes each chunk's logits in the gradient (tf.customGrad), so training memory is O(chunk·V).
// Mirrors HF ForCausalLMLoss (transformers 4.50 loss_utils) and CrossEntropyLoss(ignore_index=-100).
//
// Shape legend: B batch, T positions, N = B·T rows, D hidden, V vocab rows.
import * as tf from '@tensorflow/tfjs-core';
import type { Qwen2_5_VLConfig } from './config.js';
import { gatherRows, type Params } from './layers.js';
import { lmHeadWeight } from './text.js';

/** HF ignore index. */
export const IGNORE_INDEX = -100;

/**
 * `log_softmax(logits)[target]` per position: `logits [B, T, V]`, `targets [B][T]` → `[B, T]`.
 * Gathers one logit per row from the flattened logits (no one-hot), minus the row's logsumexp.
 * @example tokenLogprobs(tf.tensor3d([[[0, 0]]]), [[1]]) // [[-ln 2]]
 */
export function tokenLogprobs(logits: tf.Tensor3D, targets: number[][]): tf.Tensor2D {
  const [B, T, V] = logits.shape;
  checkTargets(targets, B, T, V);
  if (B * T * V > 2 ** 31 - 1) {
    throw new Error(
      `tokenLogprobs: ${B}x${T}x${V} logits exceed int32 indexing; use tokenLogprobsFromHidden`,
    );
  }
  return tf.tidy(() => {
    const flatIdx = targets.flatMap((row, b) => row.map((t, i) => (b * T + i) * V + t));
    const picked = tf.reshape(gatherRows(tf.reshape(logits, [B * T * V, 1]), flatIdx), [B, T]);
    return tf.sub(picked, tf.logSumExp(logits, -1)) as tf.Tensor2D;
  });
}

function checkTargets(targets: number[][], B: number, T: number, V: number): void {
  if (targets.length !== B || targets.some((r) => r.length !== T)) {
    throw new Error(`targets must be [${B}][${T}] to match the logits/hidden rows`);
  }
  for (const row of targets)
    for (const t of row) {
      if (!(Number.isInteger(t) && t >= 0 && t < V)) {
        throw new Error(`target id ${t} is outside [0, ${V}); replace ignored (-100) targets before calling`);
      }
    }
}

/**
 * `logsumexp(h W^T)` over the vocabulary for `h [N, D]`, `w [V, D]`, computed `chunk` rows at a time.
 * The gradient recomputes each chunk's softmax, so no `[N, V]` tensor outlives the call.
 * Every product keeps the `[V, D]` weight untransposed (tfjs-wasm reaches XNNPACK only without transpose
 * flags; a transposed weight is copied on every call): the chunk's logits are computed as `W h^T [V, n]`,
 * dW as `P^T (h·dy)` from that `[V, n]` layout, and dh as `P W` summed over vocabulary blocks (`softmaxTimesW`).
 * @example chunkedLogSumExp(h, embedTokens, 256) // [N]
 */
export function chunkedLogSumExp(h: tf.Tensor2D, w: tf.Tensor2D, chunk = 256): tf.Tensor1D {
  const N = h.shape[0];
  const starts: number[] = [];
  for (let s = 0; s < N; s += chunk) starts.push(s);
  const part = (x: tf.Tensor2D, s: number): tf.Tensor2D =>
    tf.slice(x, [s, 0], [Math.min(chunk, N - s), x.shape[1]]);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [hh, ww, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    const lse = tf.concat(
      starts.map((s) => tf.logSumExp(tf.transpose(logitsT(part(hh, s), ww)), -1)),
    ) as tf.Tensor1D;
    save([hh, ww, lse]);
    return {
      value: lse,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws, lses] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const lse2 = tf.reshape(lses, [1, N]) as tf.Tensor2D;
        const dy2 = tf.reshape(dy, [N, 1]) as tf.Tensor2D;
        // d lse / d logits = softmax; fold dy into the small [n, D] operands instead of the [V, n] one.
        let dw: tf.Tensor = tf.zerosLike(ws);
        const dh = starts.map((s) => {
          const n = Math.min(chunk, N - s);
          const pT = tf.exp(tf.sub(logitsT(part(hs, s), ws), tf.slice(lse2, [0, s], [1, n]))) as tf.Tensor2D;
          dw = tf.add(dw, tf.matMul(pT, tf.mul(part(hs, s), part(dy2, s)) as tf.Tensor2D));
          return tf.mul(softmaxTimesW(pT, ws), part(dy2, s));
        });
        return [tf.concat(dh, 0), dw];
      },
    };
  });
  return op(h, w) as tf.Tensor1D;
}

/** Vocabulary rows per block of `P W` (the reduction over V); a block's operands stay cache-resident. */
const VOCAB_BLOCK = 4096;

/**
 * `P W` for the transposed softmax `pT [V, n]` and `w [V, D]` → `[n, D]`, summed over blocks of `VOCAB_BLOCK`
 * vocabulary rows. One product with a 151936-long reduction streams W from memory once per few output rows
 * (12 GFLOP/s on wasm); blocks of contiguous rows of both operands run at full speed.
 */
function softmaxTimesW(pT: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [V, n] = pT.shape;
  if (V <= VOCAB_BLOCK) return tf.matMul(pT, w, true, false);
  return tf.tidy(() => {
    let acc: tf.Tensor2D | null = null;
    for (let s = 0; s < V; s += VOCAB_BLOCK) {
      const k = Math.min(VOCAB_BLOCK, V - s);
      const part = tf.matMul(
        tf.slice(pT, [s, 0], [k, n]),
        tf.slice(w, [s, 0], [k, w.shape[1]]),
        true,
        false,
      ) as tf.Tensor2D;
      acc = acc ? (tf.add(acc, part) as tf.Tensor2D) : part;
    }
    return acc as tf.Tensor2D;
  });
}

/** Transposed logits `W h^T`: `h [n, D]`, `w [V, D]` → `[V, n]` (only the small `h` is transposed). */
function logitsT(h: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(w, h, false, true);
}

/**
 * Per-position log-prob of `targets` straight from the last hidden state `[B, T, D]` (→ `[B, T]`), without keeping
 * the `[B·T, V]` logits for backward: target logit = `h · W[target]`, normaliser = `chunkedLogSumExp`.
 * @example const lp = tokenLogprobsFromHidden(params, cfg, hidden, targets);
 */
export function tokenLogprobsFromHidden(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  hidden: tf.Tensor3D,
  targets: number[][],
  chunk = 256,
): tf.Tensor2D {
  const [B, T, D] = hidden.shape;
  const w = lmHeadWeight(params, cfg);
  checkTargets(targets, B, T, w.shape[0]);
  return tf.tidy(() => {
    const h = tf.reshape(hidden, [B * T, D]) as tf.Tensor2D;
    const picked = tf.sum(tf.mul(h, gatherRows(w, targets.flat())), -1);
    return tf.reshape(tf.sub(picked, chunkedLogSumExp(h, w, chunk)), [B, T]) as tf.Tensor2D;
  });
}

/** Shifted targets: position t predicts `labels[t+1]`; -100 (and the last position) get weight 0 and target 0. */
export function shiftLabels(labels: number[][]): { targets: number[][]; weights: number[][]; count: number } {
  let count = 0;
  const targets = labels.map((row) => row.slice(1).map((t) => (t === IGNORE_INDEX ? 0 : t)));
  const weights = labels.map((row) =>
    row.slice(1).map((t) => {
      const keep = t === IGNORE_INDEX ? 0 : 1;
      count += keep;
      return keep;
    }),
  );
  return { targets, weights, count };
}

export interface LossOptions {
  /** Divide the summed NLL by this instead of the number of kept tokens (HF `num_items_in_batch`). */
  numItemsInBatch?: number;
}

/** `-sum(lp * w) / denom`; 0 when nothing is kept (HF would give NaN). */
function meanNll(lp: tf.Tensor2D, weights: number[][], denom: number): tf.Scalar {
  return tf.tidy(
    () => tf.div(tf.neg(tf.sum(tf.mul(lp, tf.tensor2d(weights)))), Math.max(denom, 1)) as tf.Scalar,
  );
}

/**
 * HF causal-LM loss from logits `[B, T, V]` and labels `[B][T]` (-100 = ignored): shift by one, mean NLL.
 * @example causalLmLoss(logits, [[-100, 5, 7]]) // mean of -logp(5 | pos 0), -logp(7 | pos 1)
 */
export function causalLmLoss(logits: tf.Tensor3D, labels: number[][], opts: LossOptions = {}): tf.Scalar {
  const [B, T, V] = logits.shape;
  const { targets, weights, count } = shiftLabels(labels);
  return tf.tidy(() => {
    const lp = tokenLogprobs(tf.slice(logits, [0, 0, 0], [B, T - 1, V]), targets);
    return meanNll(lp, weights, opts.numItemsInBatch ?? count);
  });
}

/**
 * The same loss from the last hidden state `[B, T, D]` (cheaper: no `[B·T, V]` tensor kept for backward).
 * @example causalLmLossFromHidden(params, cfg, hidden, labels)
 */
export function causalLmLossFromHidden(
  params: Params,
  cfg: Qwen2_5_VLConfig,
  hidden: tf.Tensor3D,
  labels: number[][],
  opts: LossOptions = {},
): tf.Scalar {
  const [B, T, D] = hidden.shape;
  const { targets, weights, count } = shiftLabels(labels);
  return tf.tidy(() => {
    const lp = tokenLogprobsFromHidden(params, cfg, tf.slice(hidden, [0, 0, 0], [B, T - 1, D]), targets);
    return meanNll(lp, weights, opts.numItemsInBatch ?? count);
  });
}

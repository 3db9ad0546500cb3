// Token log-probabilities and the causal-LM loss of HF (shift by one, ignore -100, mean over kept tokens).
// `tokenLogprobs` works on logits; `tokenLogprobsFromHidden` never keeps a `[N, V]` tensor for backward:
// it recomputes each chunk's logits in the gradient (tf.customGrad), so training memory is O(chunk·V).
// `causalLmLossFromHidden` under a gradient tape is a fused linear cross-entropy: the forward computes the loss
// AND its gradients dh, dW from one softmax per row chunk (3 LM-head products, no recompute), over kept rows only.
// `causalLmLossFromHidden` (via `Qwen2_5_VL.loss`) is THE LM loss: the SFT trainer, the demo and bench/ all use it;
// `causalLmLoss` on full logits is kept as the test reference. Kernels: lm_head.ts.
// Mirrors HF ForCausalLMLoss (transformers 4.50 loss_utils) and CrossEntropyLoss(ignore_index=-100).
//
// Shape legend: B batch, T positions, N = B·T rows, D hidden, V vocab rows.
import * as tf from '@tensorflow/tfjs-core';
import type { Qwen2_5_VLConfig } from './config.js';
import { gatherRows, type Params } from './layers.js';
import { chunkedLogSumExp, fusedLinearCe } from './lm_head.js';
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

/** True while a gradient tape records (inside tf.grad / variableGrads, outside any kernel). */
function tapeRecording(): boolean {
  const st = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  return st.gradientDepth > 0 && st.kernelDepth === 0;
}

/**
 * The same loss from the last hidden state `[B, T, D]` (cheaper: no `[B·T, V]` tensor kept for backward).
 * Only rows with a kept label are projected onto the vocabulary (ignored rows add nothing to the loss or its
 * gradient). Under a gradient tape the loss is one tf.customGrad over `(hidden rows, W)` whose forward already
 * computes dh and dW (fused linear cross-entropy, {@link fusedLinearCe}); the backward only scales them by dy.
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
  const w = lmHeadWeight(params, cfg);
  checkTargets(targets, B, T - 1, w.shape[0]);
  const denom = Math.max(opts.numItemsInBatch ?? count, 1);
  const rows: number[] = [];
  const kept: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T - 1; t++) {
      if (weights[b][t]) {
        rows.push(b * (T - 1) + t);
        kept.push(targets[b][t]);
      }
    }
  const N = B * (T - 1);
  const coef = kept.map(() => 1 / denom);
  return tf.tidy(() => {
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - 1, D]), [N, D]) as tf.Tensor2D;
    if (rows.length === 0) return tf.mul(tf.add(tf.sum(h), tf.sum(w)), 0) as tf.Scalar;
    const pick = (x: tf.Tensor2D) =>
      rows.length === N ? x : (tf.gather(x, tf.tensor1d(rows, 'int32')) as tf.Tensor2D);
    if (!tapeRecording()) return fusedLinearCe(pick(h), w, kept, coef, false).loss;
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [hh, ww, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
      const r = fusedLinearCe(pick(hh), ww, kept, coef, true);
      const dh = r.dh as tf.Tensor2D;
      const dhAll =
        rows.length === N ? dh : tf.scatterND(tf.tensor2d(rows, [rows.length, 1], 'int32'), dh, [N, D]);
      // Saved tensors are kept by the engine until backprop ends (shared, not copied, on cpu / wasm / webgpu).
      save([dhAll, r.dw as tf.Tensor2D]);
      return {
        value: r.loss,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((g) => scaleByDy(g, dy)),
      };
    });
    return op(h, w) as tf.Scalar;
  });
}

/**
 * `g · dy` for a scalar `dy`; when `dy` is exactly 1 (the loss is the differentiated output) on cpu / wasm, a
 * shared clone instead of a `[V, D]` multiply (webgpu cannot read `dy` synchronously, so it always multiplies).
 */
function scaleByDy(g: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const one = tf.getBackend() !== 'webgpu' && dy.size === 1 && dy.dataSync()[0] === 1;
  return one ? tf.clone(g) : tf.mul(g, dy);
}

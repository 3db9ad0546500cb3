// LM-head kernels of the losses (model/loss.ts): the row-chunked logsumexp with its recomputing gradient
// (`chunkedLogSumExp`), and the fused linear cross-entropy (`fusedLinearCe`: loss, dh and dW from one softmax per row
// chunk). Neither keeps a `[N, V]` tensor for backward. Shape legend: N rows, D hidden, V vocab rows.
import * as tf from '@tensorflow/tfjs-core';
import { ownedWasmView } from '../backend/wasm.js';

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
        // dW is one [V, D] accumulator (added in place on wasm); each chunk's temporaries die with its tidy.
        let dw: tf.Tensor2D | null = null;
        const dh = starts.map((s) => {
          const n = Math.min(chunk, N - s);
          const [pT, dhc] = tf.tidy(() => {
            const p = tf.exp(tf.sub(logitsT(part(hs, s), ws), tf.slice(lse2, [0, s], [1, n]))) as tf.Tensor2D;
            return [p, tf.mul(softmaxTimesW(p, ws), part(dy2, s)) as tf.Tensor2D];
          });
          const dwc = tf.tidy(
            () => tf.matMul(pT, tf.mul(part(hs, s), part(dy2, s)) as tf.Tensor2D) as tf.Tensor2D,
          );
          pT.dispose();
          dw = dw ? addInto(dw, dwc) : dwc;
          return dhc;
        });
        return [tf.concat(dh, 0), dw as unknown as tf.Tensor2D];
      },
    };
  });
  return op(h, w) as tf.Tensor1D;
}

/**
 * `acc + x` into `acc`'s buffer when the wasm backend lets us write it (acc owned by nobody else), else a new
 * tensor; `acc` and `x` are consumed either way. Saves the third `[V, D]` buffer of `acc = add(acc, x)`.
 * @example dw = addInto(dw, chunkGrad);
 */
export function addInto<T extends tf.Tensor>(acc: T, x: tf.Tensor): T {
  const a = ownedWasmView(acc);
  if (a && x.dtype === 'float32' && a.length === x.size) {
    const b = tf.backend() as unknown as { typedArrayFromHeap(t: tf.Tensor): Float32Array };
    const xv = b.typedArrayFromHeap(x);
    for (let i = 0; i < a.length; i++) a[i] += xv[i];
    x.dispose();
    return acc;
  }
  const out = tf.add(acc, x) as T;
  tf.dispose([acc, x]);
  return out;
}

/**
 * `p − onehot(targets)` for the softmax `p [n, V]` (row i has target `targets[i]`): the cross-entropy gradient
 * w.r.t. the logits. In place on wasm (n writes); `p` is consumed.
 */
function subTargetOneHot(p: tf.Tensor2D, targets: number[]): tf.Tensor2D {
  const V = p.shape[1];
  const v = ownedWasmView(p);
  if (v) {
    targets.forEach((t, i) => {
      v[i * V + t] -= 1;
    });
    return p;
  }
  const out = tf.tidy(() => tf.sub(p, tf.oneHot(tf.tensor1d(targets, 'int32'), V, 1, 0, 'float32')));
  p.dispose();
  return out as tf.Tensor2D;
}

/**
 * From `g = P − Y [n, V]`, `w [V, D]` and `hc = c ⊙ h [n, D]`: `dh = g W [n, D]` (unscaled) and `dW += gᵀ hc`,
 * both per block of `VOCAB_BLOCK` vocabulary columns of g (a strided slice; no `[n, V]` transpose). On wasm each
 * dW block is added in place into one `[V, D]` buffer; elsewhere the blocks are concatenated. `dw` is consumed.
 */
function headGradBlocks(
  g: tf.Tensor2D,
  w: tf.Tensor2D,
  hc: tf.Tensor2D,
  dw: tf.Tensor2D | null,
): { dh: tf.Tensor2D; dw: tf.Tensor2D } {
  const [n, V] = g.shape;
  const D = w.shape[1];
  const first = dw === null;
  let acc = dw ?? (tf.getBackend() === 'wasm' ? (tf.zeros([V, D]) as tf.Tensor2D) : null);
  const inPlace = acc !== null && ownedWasmView(acc) !== null;
  let dh: tf.Tensor2D | null = null;
  const blocks: tf.Tensor2D[] = [];
  for (let s = 0; s < V; s += VOCAB_BLOCK) {
    const k = Math.min(VOCAB_BLOCK, V - s);
    const [dhb, dwb] = tf.tidy(() => {
      const gb = tf.slice(g, [0, s], [n, k]) as tf.Tensor2D;
      return [
        tf.matMul(gb, tf.slice(w, [s, 0], [k, D]) as tf.Tensor2D) as tf.Tensor2D,
        tf.matMul(gb, hc, true, false) as tf.Tensor2D,
      ];
    });
    dh = dh ? addInto(dh, dhb) : dhb;
    // Views after the allocations above (a heap growth detaches older views).
    const [to, from] = inPlace ? [ownedWasmView(acc as tf.Tensor2D), ownedWasmView(dwb)] : [null, null];
    if (inPlace) {
      if (!to || !from) throw new Error('headGradBlocks: lost the wasm heap view of the dW accumulator');
      if (first) to.set(from, s * D);
      else for (let j = 0, o = s * D; j < from.length; j++) to[o + j] += from[j];
      dwb.dispose();
    } else blocks.push(dwb);
  }
  if (blocks.length) {
    const all = tf.concat(blocks, 0) as tf.Tensor2D;
    tf.dispose(blocks);
    acc = acc ? addInto(acc, all) : all;
  }
  return { dh: dh as tf.Tensor2D, dw: acc as tf.Tensor2D };
}

/** Most rows the fused loss turns into `[rows, V]` probabilities at once (512 × 151936 floats = 311 MB). */
const FUSED_MAX_ROWS = 512;

interface FusedCe {
  loss: tf.Scalar;
  dh: tf.Tensor2D | null;
  dw: tf.Tensor2D | null;
}

/**
 * Fused linear cross-entropy over rows `h [K, D]` with targets `t [K]` and per-row coefficients `c [K]`:
 * `loss = Σ_i c_i (lse_i − h_i·W[t_i])` where `lse_i = logsumexp(h_i Wᵀ)`, and with `withGrads` also
 * `dh = c ⊙ (P − Y) W` `[K, D]` and `dW = (P − Y)ᵀ (c ⊙ h)` `[V, D]` from the SAME softmax P of each row chunk:
 * three LM-head products per row (logits, dh, dW), one softmax, no recompute, one `[V, D]` accumulator.
 * The normaliser comes from the softmax: `max P = exp(max z − lse)`, so `lse = max z − log(max P)` (≥ 1/V).
 * @example fusedLinearCe(h, w, [3, 1], [0.5, 0.5], true) // { loss, dh [2, D], dw [V, D] }
 */
export function fusedLinearCe(
  h: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: number[],
  coef: number[],
  withGrads: boolean,
): FusedCe {
  const K = h.shape[0];
  if (targets.length !== K || coef.length !== K)
    throw new Error(`fusedLinearCe: ${K} rows but ${targets.length} targets and ${coef.length} coefficients`);
  const chunks = Math.max(1, Math.ceil(K / FUSED_MAX_ROWS));
  const chunk = Math.max(1, Math.ceil(K / chunks));
  const losses: tf.Tensor[] = [];
  const dhs: tf.Tensor2D[] = [];
  let dw: tf.Tensor2D | null = null;
  for (let s = 0; s < K; s += chunk) {
    const n = Math.min(chunk, K - s);
    const tc = targets.slice(s, s + n);
    const [hc, cc] = tf.tidy(() => [
      tf.slice(h, [s, 0], [n, h.shape[1]]) as tf.Tensor2D,
      tf.tensor2d(coef.slice(s, s + n), [n, 1]),
    ]);
    // z [n, V] (from W hᵀ [V, n]: the weight is never transposed), P = softmax(z), lse = max z − log max P.
    // Disposed as soon as used: at most two [n, V] tensors live at once.
    const lt = logitsT(hc, w);
    const z = tf.transpose(lt) as tf.Tensor2D;
    lt.dispose();
    const zMax = tf.max(z, -1);
    const p = tf.softmax(z) as tf.Tensor2D;
    z.dispose();
    losses.push(
      tf.tidy(() => {
        const lse = tf.sub(zMax, tf.log(tf.max(p, -1)));
        const picked = tf.sum(tf.mul(hc, tf.gather(w, tf.tensor1d(tc, 'int32'))), -1);
        return tf.sum(tf.mul(tf.sub(lse, picked), tf.reshape(cc, [n])));
      }),
    );
    zMax.dispose();
    if (withGrads) {
      const g = subTargetOneHot(p, tc); // consumes p
      const hcC = tf.tidy(() => tf.mul(hc, cc) as tf.Tensor2D);
      const r = headGradBlocks(g, w, hcC, dw);
      tf.dispose([g, hcC]);
      dhs.push(tf.tidy(() => tf.mul(r.dh, cc) as tf.Tensor2D));
      r.dh.dispose();
      dw = r.dw;
    } else p.dispose();
    tf.dispose([hc, cc]);
  }
  const loss = (
    losses.length === 1 ? losses[0] : tf.tidy(() => losses.reduce((a, b) => tf.add(a, b)))
  ) as tf.Scalar;
  if (losses.length > 1) tf.dispose(losses);
  const dh = withGrads ? (tf.tidy(() => tf.concat(dhs, 0)) as tf.Tensor2D) : null;
  tf.dispose(dhs);
  return { loss, dh, dw };
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

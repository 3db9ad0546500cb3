// Loss math on literal arrays: token log-probs, HF causal-LM loss (shift, ignore -100, mean), the hidden-state
// path vs the logits path, the chunked logsumexp's gradient vs tf.logSumExp's, and leak checks.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/layers.js';
import { chunkedLogSumExp } from '../../src/model/lm_head.js';
import {
  causalLmLoss,
  causalLmLossFromHidden,
  shiftLabels,
  tokenLogprobs,
  tokenLogprobsFromHidden,
} from '../../src/model/loss.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose } from '../helpers.js';
import { setupBackend } from './fixture.js';

beforeAll(async () => {
  await setupBackend();
});

const randn = (rng: Rng, shape: number[], scale = 1): tf.Tensor =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
    shape,
  );

describe('tokenLogprobs', () => {
  it('literal: uniform row gives -ln V, peaked row matches log-softmax by hand', async () => {
    const logits = tf.tensor3d([
      [
        [0, 0, 0, 0],
        [2, 0, 0, 0],
      ],
    ]);
    const lp = tokenLogprobs(logits, [[3, 0]]);
    const z = Math.log(Math.exp(2) + 3);
    expectClose(await lp.data(), [-Math.log(4), 2 - z], 1e-6, 'literal logprobs');
    tf.dispose([logits, lp]);
  });
  it('stays finite for huge logits (no overflow)', async () => {
    const logits = tf.tensor3d([[[1e30, 0, -1e30]]]);
    const lp = tokenLogprobs(logits, [[0]]);
    expect(Array.from(await lp.data())).toEqual([0]);
    tf.dispose([logits, lp]);
  });
  it('rejects out-of-range targets, naming the id', () => {
    const logits = tf.zeros([1, 1, 3]) as tf.Tensor3D;
    expect(() => tokenLogprobs(logits, [[-100]])).toThrow(/target id -100/);
    logits.dispose();
  });
});

describe('causalLmLoss', () => {
  it('shifts by one, ignores -100 and averages over kept tokens (hand-computed)', async () => {
    // V=2, logits per position: [0,0], [ln3, 0], [0, 0]; labels: x, 0, -100 → one kept target (pos 0 predicts 0).
    const logits = tf.tensor3d([
      [
        [0, 0],
        [Math.log(3), 0],
        [0, 0],
      ],
    ]);
    const loss = causalLmLoss(logits, [[-100, 0, -100]]);
    expectClose(await loss.data(), [Math.log(2)], 1e-6, 'loss one token');
    const loss2 = causalLmLoss(logits, [[-100, 0, 1]]);
    expectClose(await loss2.data(), [(Math.log(2) + Math.log(4)) / 2], 1e-6, 'loss two tokens');
    const sum = causalLmLoss(logits, [[-100, 0, 1]], { numItemsInBatch: 4 });
    expectClose(await sum.data(), [(Math.log(2) + Math.log(4)) / 4], 1e-6, 'loss / num_items_in_batch');
    tf.dispose([logits, loss, loss2, sum]);
  });
  it('all labels ignored gives 0, not NaN', async () => {
    const logits = tf.zeros([1, 3, 4]) as tf.Tensor3D;
    const loss = causalLmLoss(logits, [[1, -100, -100]]);
    const [v] = await loss.data();
    expect(v === 0).toBe(true); // ±0
    tf.dispose([logits, loss]);
  });
  it('shiftLabels', () => {
    expect(shiftLabels([[5, -100, 7]])).toEqual({ targets: [[0, 7]], weights: [[0, 1]], count: 1 });
  });
});

describe('hidden-state path', () => {
  const cfg = { tie_word_embeddings: true } as Qwen2_5_VLConfig;
  it('equals the logits path in value and gradient (tied head), chunk smaller than N', async () => {
    const rng = new Rng(0);
    const w = tf.variable(randn(rng, [50, 8], 0.5));
    const h = tf.variable(randn(rng, [2, 5, 8]));
    const params: Params = { 'model.embed_tokens.weight': w };
    const labels = [
      [-100, 3, 4, 49, 0],
      [1, 2, -100, 7, 7],
    ];
    const before = tf.memory().numTensors;
    const viaLogits = tf.variableGrads(
      () =>
        causalLmLoss(
          tf.reshape(tf.matMul(tf.reshape(h, [10, 8]), w, false, true), [2, 5, 50]) as tf.Tensor3D,
          labels,
        ),
      [w, h],
    );
    const viaHidden = tf.variableGrads(() => {
      const lp = tokenLogprobsFromHidden(
        params,
        cfg,
        tf.slice(h, [0, 0, 0], [2, 4, 8]) as tf.Tensor3D,
        shiftLabels(labels).targets,
        3,
      );
      const ref = causalLmLossFromHidden(params, cfg, h as tf.Tensor3D, labels);
      lp.dispose();
      return ref;
    }, [w, h]);
    expectClose(await viaHidden.value.data(), await viaLogits.value.data(), 1e-6, 'loss hidden vs logits');
    for (const k of Object.keys(viaLogits.grads)) {
      expectClose(await viaHidden.grads[k].data(), await viaLogits.grads[k].data(), 1e-6, `grad ${k}`);
    }
    tf.dispose([
      viaLogits.value,
      viaHidden.value,
      ...Object.values(viaLogits.grads),
      ...Object.values(viaHidden.grads),
    ]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, h]);
  });

  it('chunkedLogSumExp: value and gradient equal tf.logSumExp of the full logits for any chunk', async () => {
    const rng = new Rng(1);
    const h = randn(rng, [7, 4]) as tf.Tensor2D;
    const w = randn(rng, [11, 4]) as tf.Tensor2D;
    const dy = randn(rng, [7]);
    const ref = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.logSumExp(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, false, true), -1), dy)),
    )([h, w]);
    for (const chunk of [1, 3, 7, 100]) {
      const [gh, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(chunkedLogSumExp(a as tf.Tensor2D, b as tf.Tensor2D, chunk), dy)),
      )([h, w]);
      expectClose(await gh.data(), await ref[0].data(), 1e-5, `d/dh chunk ${chunk}`);
      expectClose(await gw.data(), await ref[1].data(), 1e-5, `d/dw chunk ${chunk}`);
      tf.dispose([gh, gw]);
    }
    const lse = chunkedLogSumExp(h, w, 2);
    const full = tf.logSumExp(tf.matMul(h, w, false, true), -1);
    expectClose(await lse.data(), await full.data(), 1e-6, 'chunked lse value');
    tf.dispose([h, w, dy, ...ref, lse, full]);
  });
  it('chunkedLogSumExp: a vocabulary of several 4096-row blocks (dh summed per block) matches the full logits', async () => {
    const rng = new Rng(2);
    const h = randn(rng, [5, 8]) as tf.Tensor2D;
    const w = randn(rng, [2 * 4096 + 7, 8]) as tf.Tensor2D;
    const dy = randn(rng, [5]);
    const f = (lse: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(lse(a as tf.Tensor2D, b as tf.Tensor2D), dy)))([
        h,
        w,
      ]);
    const ref = f((a, b) => tf.logSumExp(tf.matMul(a, b, false, true), -1));
    const before = tf.memory().numTensors;
    const [gh, gw] = f((a, b) => chunkedLogSumExp(a, b, 3));
    expect(tf.memory().numTensors).toBe(before + 2);
    // float32 sums over 8199 vocabulary rows in a different order: 1.4e-6 on cpu, 1.4e-5 on wasm (XNNPACK vs stock)
    expectClose(await gh.data(), await ref[0].data(), 5e-5, 'd/dh, 3 vocabulary blocks');
    expectClose(await gw.data(), await ref[1].data(), 5e-5, 'd/dw, 3 vocabulary blocks');
    tf.dispose([h, w, dy, ...ref, gh, gw]);
  });
});

// Model-level invariants on a small random model (V=300, so it is fast): activation recomputation gives the same
// gradients, a frozen vision tower gets no gradients, left/right padding and batching do not change real rows,
// images in one batch never attend to each other, no leaks after a gradient step, loading single/sharded folders,
// and clear errors for bad inputs.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import { KVCache } from '../../src/model/kv_cache.js';
import { type ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { visionForward } from '../../src/model/vision.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose, FIXTURE } from '../helpers.js';
import { fixtureConfig, fixtureFile, setupBackend } from './fixture.js';

const [IMG, VS, VE] = [290, 292, 293];
let cfg: Qwen2_5_VLConfig;
let model: Qwen2_5_VL;

beforeAll(async () => {
  await setupBackend();
  const base = await fixtureConfig();
  cfg = {
    ...base,
    vocab_size: 300,
    image_token_id: IMG,
    video_token_id: 291,
    vision_start_token_id: VS,
    vision_end_token_id: VE,
    bos_token_id: 294,
    eos_token_id: 295,
  };
  model = Qwen2_5_VL.init(cfg, 7);
});
afterAll(() => model.dispose());

const pixels = (rng: Rng, n: number): tf.Tensor2D =>
  tf.tensor2d(
    Float32Array.from({ length: n * 1176 }, () => rng.normal()),
    [n, 1176],
  );

/** One sample with a 4×4-patch image (4 merged tokens) and one with a 4×8 image (8 tokens), left padded. */
function imageBatch(): { inputs: ModelInputs; labels: number[][] } {
  const a = [5, VS, IMG, IMG, IMG, IMG, VE, 6, 7, 8];
  const b = [9, VS, ...Array(8).fill(IMG), VE, 10, 11];
  const ids = [[0, 0, 0, ...a], b];
  const mask = [[0, 0, 0, ...a.map(() => 1)], b.map(() => 1)];
  const labels = ids.map((r, i) => r.map((t, j) => (mask[i][j] === 0 || t === IMG ? -100 : t)));
  const inputs = {
    inputIds: ids,
    attentionMask: mask,
    pixelValues: pixels(new Rng(1), 16 + 32),
    imageGridThw: [
      [1, 4, 4],
      [1, 4, 8],
    ],
  };
  return { inputs, labels };
}

async function gradsOf(inputs: ModelInputs, labels: number[][], recompute: boolean, vars: tf.Variable[]) {
  let forwardBytes = 0;
  const { value, grads } = tf.variableGrads(() => {
    const loss = model.loss(inputs, labels, { recompute });
    forwardBytes = tf.memory().numBytes; // what the tape keeps alive for backward
    return loss;
  }, vars);
  const out: Record<string, Float32Array> = {};
  for (const [k, g] of Object.entries(grads)) out[k] = (await g.data()) as Float32Array;
  const loss = (await value.data())[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out, forwardBytes };
}

describe('training forward', () => {
  it('recompute: true gives the same loss and gradients; no tensor leak after a gradient step', async () => {
    const { inputs, labels } = imageBatch();
    const before = tf.memory().numTensors;
    const plain = await gradsOf(inputs, labels, false, model.variables());
    const again = await gradsOf(inputs, labels, true, model.variables());
    expect(tf.memory().numTensors).toBe(before);
    expect(again.loss).toBe(plain.loss);
    let worst = 0;
    for (const k of Object.keys(plain.grads))
      worst = Math.max(worst, expectClose(again.grads[k], plain.grads[k], 1e-7, `recompute grad ${k}`));
    console.log(
      `recompute: loss ${plain.loss}, worst grad diff ${worst}, bytes alive after forward ${plain.forwardBytes} → ${again.forwardBytes}`,
    );
    expect(again.forwardBytes).toBeLessThan(plain.forwardBytes);
    inputs.pixelValues?.dispose();
  });

  it('freezing the vision tower = not passing its variables; every passed param gets a nonzero gradient', async () => {
    const { inputs, labels } = imageBatch();
    const text = model.variables('lm');
    expect(text.some((v) => v.name.includes('visual'))).toBe(false);
    const r = await gradsOf(inputs, labels, false, text);
    expect(Object.keys(r.grads).length).toBe(text.length);
    for (const [k, g] of Object.entries(r.grads))
      expect(
        g.some((x) => x !== 0),
        `${k} has a zero gradient`,
      ).toBe(true);
    expect(model.variables('vision').length + text.length).toBe(model.variables().length);
    inputs.pixelValues?.dispose();
  });
});

describe('padding and batching invariants', () => {
  it('left padding, right padding and the unpadded sample agree on real rows', async () => {
    const seq = [3, 4, 5, 6, 7];
    const run = async (ids: number[][], mask: number[][]): Promise<Float32Array> => {
      const { logits } = model.forward({ inputIds: ids, attentionMask: mask });
      const d = (await logits.data()) as Float32Array;
      logits.dispose();
      return d;
    };
    const V = cfg.vocab_size;
    const alone = await run([seq], [[1, 1, 1, 1, 1]]);
    const batch = await run(
      [
        [0, 0, ...seq],
        [...seq, 0, 0],
      ],
      [
        [0, 0, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 0, 0],
      ],
    );
    expectClose(batch.subarray(2 * V, 7 * V), alone, 1e-5, 'left-padded row vs alone');
    expectClose(batch.subarray(7 * V, 12 * V), alone, 1e-5, 'right-padded row vs alone');
    expect(Array.from(batch).every(Number.isFinite)).toBe(true);
  });

  it('images of different sizes in one call equal each image alone (no cross-image attention)', async () => {
    const px = pixels(new Rng(2), 16 + 32 + 16);
    const grids = [
      [1, 4, 4],
      [1, 4, 8],
      [2, 2, 4],
    ];
    const all = visionForward(model.params, cfg.vision_config, px, grids);
    const parts = [0, 16, 48].map((start, i) => {
      const n = grids[i].reduce((a, b) => a * b, 1);
      return tf.tidy(() =>
        visionForward(model.params, cfg.vision_config, tf.slice(px, [start, 0], [n, 1176]), [grids[i]]),
      );
    });
    const joined = tf.concat(parts, 0);
    expectClose(await all.data(), await joined.data(), 1e-6, 'batched vs per-image vision');
    tf.dispose([px, all, joined, ...parts]);
  });

  it('cached decoding equals the full forward over prompt + new tokens', async () => {
    const { inputs } = imageBatch();
    const cache = new KVCache();
    const ids = (inputs.inputIds as number[][]).map((r) => [...r]);
    const mask = (inputs.attentionMask as number[][]).map((r) => [...r]);
    model.forward(inputs, { cache, lastOnly: true, recompute: true }).logits.dispose(); // recompute is ignored with a cache
    const step = model.forward(
      {
        inputIds: [
          [12, 13],
          [14, 15],
        ],
      },
      { cache },
    );
    const full = model.forward({
      ...inputs,
      inputIds: ids.map((r, b) => [
        ...r,
        ...[
          [12, 13],
          [14, 15],
        ][b],
      ]),
      attentionMask: mask.map((r) => [...r, 1, 1]),
    });
    const tail = tf.slice(full.logits, [0, ids[0].length, 0], [2, 2, cfg.vocab_size]);
    expectClose(await step.logits.data(), await tail.data(), 1e-5, 'two cached tokens vs full forward');
    expect(cache.length).toBe(ids[0].length + 2);
    tf.dispose([step.logits, full.logits, tail, inputs.pixelValues as tf.Tensor]);
    cache.dispose();
  });
});

describe('input forms and log-prob helpers', () => {
  it('tensor ids/mask give the same logits as arrays; model.tokenLogprobs equals log-softmax of the logits', async () => {
    const ids = [
      [0, 3, 4, 5],
      [6, 7, 8, 9],
    ];
    const mask = [
      [0, 1, 1, 1],
      [1, 1, 1, 1],
    ];
    const a = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    const idT = tf.tensor2d(ids, undefined, 'int32');
    const maskT = tf.tensor2d(mask, undefined, 'int32');
    const b = model.forward({ inputIds: idT, attentionMask: maskT }).logits;
    expectClose(await b.data(), await a.data(), 0, 'tensor vs array inputs');
    const targets = [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ];
    const lp = model.tokenLogprobs({ inputIds: ids, attentionMask: mask }, targets);
    const ref = tf.tidy(() => {
      const ls = tf.logSoftmax(a);
      return tf.stack(
        targets.flatMap((row, bi) => row.map((t, i) => tf.reshape(tf.slice(ls, [bi, i, t], [1, 1, 1]), []))),
      );
    });
    expectClose(await lp.data(), await ref.data(), 1e-5, 'model.tokenLogprobs vs logSoftmax');
    tf.dispose([a, b, idT, maskT, lp, ref]);
  });
});

describe('errors and loading', () => {
  it('image pad count vs feature rows: the message names both numbers', () => {
    const px = pixels(new Rng(3), 16);
    expect(() =>
      model.forward({ inputIds: [[VS, IMG, IMG, VE]], pixelValues: px, imageGridThw: [[1, 4, 4]] }),
    ).toThrow(/2 <\|image_pad\|> tokens .* but 4 feature rows/);
    px.dispose();
  });

  it('decode step with a cache of another batch size is rejected', () => {
    const cache = new KVCache();
    model.forward({ inputIds: [[1, 2]] }, { cache }).logits.dispose();
    expect(() => model.forward({ inputIds: [[1], [2]] }, { cache })).toThrow(
      /cache holds 1 rows but inputIds has 2/,
    );
    cache.dispose();
  });

  it('Qwen2_5_VL.load(fixture dir) parses the config and loads every tensor bit-exactly', async () => {
    const host = await fixtureFile('model.safetensors');
    const m = await Qwen2_5_VL.load(FIXTURE);
    expect(m.config.vision_config.fullatt_block_indexes).toEqual([1, 3]);
    expect(Object.keys(m.params).sort()).toEqual([...host.keys()].sort());
    for (const [k, t] of host)
      expect(
        Array.from(await m.params[k].data()).every((x, i) => x === t.data[i]),
        k,
      ).toBe(true);
    m.dispose();
  });
});

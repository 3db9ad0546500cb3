// Rope on plain arrays: inv_freq vs HF's float32 values, the spec §4.3 worked example, padding rules of
// getRopeIndex, the M-RoPE section mapping, rotate-half on literal vectors, and the vision merge order.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import {
  applyRotary,
  getRopeIndex,
  mergeOrderPositions,
  mropeCosSin,
  ropeInvFreq,
  visionRotaryAngles,
} from '../../src/model/rope.js';
import { expectClose } from '../helpers.js';
import { fixtureConfig, fixtureFile, get, setupBackend } from './fixture.js';

let cfg: Qwen2_5_VLConfig;
beforeAll(async () => {
  await setupBackend();
  cfg = await fixtureConfig();
});

const VS = 151652;
const PAD = 151655;
const VE = 151653;

describe('ropeInvFreq', () => {
  it('equals the HF float32 inv_freq of the fixture (text Dh=16, theta 1e6)', async () => {
    const ref = get(await fixtureFile('common.safetensors'), 'text.rope_inv_freq').data;
    expect(Array.from(ropeInvFreq(16, 1e6))).toEqual(Array.from(ref));
  });
  it('rejects odd dims', () => expect(() => ropeInvFreq(7, 1e4)).toThrow(/even/));
});

describe('getRopeIndex', () => {
  it('spec §4.3 worked example: 15 text, 2×3 image, 10 text → delta -3', () => {
    const ids = [...Array(14).fill(1), VS, ...Array(6).fill(PAD), VE, ...Array(9).fill(2)];
    const r = getRopeIndex([ids], null, [[1, 4, 6]], cfg);
    const [t, h, w] = r.positionIds.map((s) => s[0]);
    expect(t.slice(0, 15)).toEqual([...Array(15).keys()]);
    expect(t.slice(15, 21)).toEqual(Array(6).fill(15));
    expect(h.slice(15, 21)).toEqual([15, 15, 15, 16, 16, 16]);
    expect(w.slice(15, 21)).toEqual([15, 16, 17, 15, 16, 17]);
    expect(t.slice(21)).toEqual([18, 19, 20, 21, 22, 23, 24, 25, 26, 27]);
    expect(r.ropeDeltas).toEqual([-3]);
  });

  it('text only: left padding gets 1 in pads and a negative delta; streams are equal', () => {
    const r = getRopeIndex(
      [
        [0, 0, 5, 6],
        [5, 6, 7, 8],
      ],
      [
        [0, 0, 1, 1],
        [1, 1, 1, 1],
      ],
      null,
      cfg,
    );
    expect(r.positionIds[0]).toEqual([
      [1, 1, 0, 1],
      [0, 1, 2, 3],
    ]);
    expect(r.positionIds[1]).toEqual(r.positionIds[0]);
    expect(r.ropeDeltas).toEqual([-2, 0]);
  });

  it('text only: a one-token row keeps HF quirk (max includes the pad value 1)', () => {
    expect(getRopeIndex([[0, 0, 5]], [[0, 0, 1]], null, cfg).ropeDeltas).toEqual([-1]);
  });

  it('image path with right padding: pads get 1, delta counts the padded length', () => {
    const ids = [[7, VS, PAD, VE, 8, 0, 0]];
    const r = getRopeIndex(ids, [[1, 1, 1, 1, 1, 0, 0]], [[1, 2, 2]], cfg);
    expect(r.positionIds[0][0]).toEqual([0, 1, 2, 3, 4, 1, 1]);
    expect(r.ropeDeltas).toEqual([5 - 7]);
  });

  it('images are counted across the batch in reading order', () => {
    const ids = [
      [VS, PAD, VE, 1],
      [VS, PAD, PAD, VE],
    ];
    const r = getRopeIndex(
      ids,
      null,
      [
        [1, 2, 2],
        [1, 2, 4],
      ],
      cfg,
    );
    expect(r.positionIds[2][1]).toEqual([0, 1, 2, 3]);
    expect(r.positionIds[1][1]).toEqual([0, 1, 1, 3]);
  });

  it('errors name the culprit', () => {
    expect(() => getRopeIndex([[VS, PAD, VE]], null, [], cfg)).toThrow(/only 0 images/);
    expect(() =>
      getRopeIndex(
        [[VS, PAD, VE]],
        null,
        [
          [1, 2, 2],
          [1, 2, 2],
        ],
        cfg,
      ),
    ).toThrow(/2 images but the batch has 1/);
    expect(() => getRopeIndex([[1, 2]], [[1]], null, cfg)).toThrow(/same \[B, T\] shape/);
    expect(() => getRopeIndex([[VS, 151656, VE]], null, [[1, 2, 2]], cfg)).toThrow(
      /videos are not supported/,
    );
  });
});

describe('M-RoPE tables', () => {
  it('sections [2,3,3]: freq j<2 uses t, 2..4 uses h, 5..7 uses w; second half repeats', () => {
    const inv = ropeInvFreq(16, 1e6);
    const { cos, sin, shape } = mropeCosSin([[[1]], [[2]], [[3]]], inv, [2, 3, 3]);
    expect(shape).toEqual([1, 1, 16]);
    const streams = [0, 0, 1, 1, 1, 2, 2, 2];
    for (let j = 0; j < 8; j++) {
      const a = Math.fround((streams[j] + 1) * inv[j]);
      expect(cos[j]).toBeCloseTo(Math.cos(a), 7);
      expect(sin[j + 8]).toBeCloseTo(Math.sin(a), 7);
    }
  });
  it('rejects sections that do not sum to Dh/2', () => {
    expect(() => mropeCosSin([[[0]], [[0]], [[0]]], ropeInvFreq(16, 1e6), [2, 2, 2])).toThrow(
      /must sum to head_dim\/2 = 8/,
    );
  });
});

describe('applyRotary (rotate-half)', () => {
  it('pairs dim i with i + Dh/2 on a literal vector', async () => {
    const x = tf.tensor2d([[1, 2, 3, 4]]);
    const cos = tf.tensor2d([[0.5, 0.25, 0.5, 0.25]]);
    const sin = tf.tensor2d([[0.1, 0.2, 0.1, 0.2]]);
    const y = applyRotary(x, cos, sin);
    // [x0 c0 - x2 s0, x1 c1 - x3 s1, x2 c0 + x0 s0, x3 c1 + x1 s1]
    expectClose(await y.data(), [0.5 - 0.3, 0.5 - 0.8, 1.5 + 0.1, 1 + 0.4], 1e-6, 'rotate-half');
    tf.dispose([x, cos, sin, y]);
  });
});

describe('vision positions', () => {
  it('merge order groups 2×2 patches', () => {
    expect(mergeOrderPositions(2, 4, 2)).toEqual([
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
      [0, 2],
      [0, 3],
      [1, 2],
      [1, 3],
    ]);
    expect(() => mergeOrderPositions(3, 4, 2)).toThrow(/not divisible/);
  });
  it('angles are [θh, θw] per patch and frames repeat', () => {
    const inv = new Float32Array([1, 0.5]);
    const a = visionRotaryAngles([[2, 2, 2]], 2, inv);
    expect(a.length).toBe(2 * 4 * 4);
    expect(Array.from(a.slice(12, 16))).toEqual([1, 0.5, 1, 0.5]); // patch (1,1)
    expect(Array.from(a.slice(16, 32))).toEqual(Array.from(a.slice(0, 16)));
  });
});

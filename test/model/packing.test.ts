// Sequence packing in the model: packedCausalMask (hand-checked), packedRopeIndex (HF fixture positions per segment),
// and the forward on packed rows [seqA | seqB | pad] against each sequence run alone (text only, and rows mixing
// images and text), on the tiny HF fixture model. Also: a plain causal row is NOT equivalent (the check can fail),
// bad segmentIds and segmentIds with a KV cache are rejected, and no tensor leaks.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MASK_MIN, packedCausalMask } from '../../src/model/attention.js';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import { KVCache } from '../../src/model/kv_cache.js';
import { type ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { packedRopeIndex } from '../../src/model/rope.js';
import { expectClose, maxDiff } from '../helpers.js';
import {
  type CasesJson,
  casesJson,
  fixtureConfig,
  fixtureParams,
  get,
  loadCase,
  setupBackend,
} from './fixture.js';

let cfg: Qwen2_5_VLConfig;
let model: Qwen2_5_VL;
let meta: CasesJson;
/** Fixture sequences without their padding: text rows A, B; image rows M0 (2 images), M1 (1 image), O (1 image). */
const seq: Record<string, number[]> = {};
/** Patches of each image sequence `[N, 1176]` and its grids. */
const pixels: Record<string, { data: Float32Array; grids: number[][] }> = {};

const real = (ids: number[], mask: number[]): number[] => ids.filter((_, t) => mask[t] === 1);

beforeAll(async () => {
  await setupBackend();
  cfg = await fixtureConfig();
  model = new Qwen2_5_VL(cfg, await fixtureParams());
  meta = await casesJson();
  const text = meta.cases.text_only_batch;
  seq.A = real(text.input_ids[0], text.attention_mask[0]);
  seq.B = real(text.input_ids[1], text.attention_mask[1]);
  const multi = meta.cases.multi_image_batch;
  seq.M0 = real(multi.input_ids[0], multi.attention_mask[0]);
  seq.M1 = real(multi.input_ids[1], multi.attention_mask[1]);
  seq.O = meta.cases.one_image.input_ids[0];
  const mp = get(await loadCase('multi_image_batch'), 'pixel_values').data as Float32Array;
  const W = 1176;
  pixels.M0 = { data: mp.slice(0, 64 * W), grids: multi.image_grid_thw!.slice(0, 2) };
  pixels.M1 = { data: mp.slice(64 * W), grids: multi.image_grid_thw!.slice(2) };
  pixels.O = {
    data: get(await loadCase('one_image'), 'pixel_values').data as Float32Array,
    grids: meta.cases.one_image.image_grid_thw!,
  };
});
afterAll(() => model.dispose());

/** Packs named sequences into rows padded with 0 (mask 0, segment -1); images in reading order. */
function pack(rows: string[][]): { inputs: ModelInputs; spans: { name: string; b: number; t0: number }[] } {
  const T = Math.max(...rows.map((r) => r.reduce((n, s) => n + seq[s].length, 0)));
  const spans: { name: string; b: number; t0: number }[] = [];
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  const segmentIds: number[][] = [];
  const imgs: string[] = [];
  rows.forEach((r, b) => {
    const [ids, mask, segs] = [[] as number[], [] as number[], [] as number[]];
    r.forEach((name, k) => {
      spans.push({ name, b, t0: ids.length });
      ids.push(...seq[name]);
      mask.push(...seq[name].map(() => 1));
      segs.push(...seq[name].map(() => k));
      if (pixels[name]) imgs.push(name);
    });
    const pad = T - ids.length;
    inputIds.push([...ids, ...new Array(pad).fill(0)]);
    attentionMask.push([...mask, ...new Array(pad).fill(0)]);
    segmentIds.push([...segs, ...new Array(pad).fill(-1)]);
  });
  const inputs: ModelInputs = { inputIds, attentionMask, segmentIds };
  if (imgs.length) {
    const data = Float32Array.from(imgs.flatMap((n) => Array.from(pixels[n].data)));
    inputs.pixelValues = tf.tensor2d(data, [data.length / 1176, 1176]);
    inputs.imageGridThw = imgs.flatMap((n) => pixels[n].grids);
  }
  return { inputs, spans };
}

type Output = 'logits' | 'hidden';

/** Logits `[B*T*V]` or last hidden state `[B*T*D]` of a forward, read to the host. */
async function run(
  inputs: ModelInputs,
  what: Output,
): Promise<{ data: Float32Array; T: number; width: number }> {
  const out = what === 'logits' ? model.forward(inputs).logits : model.hidden(inputs).hidden;
  const [, T, width] = out.shape;
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return { data, T, width };
}

/** Output of one sequence run alone (batch 1, no padding, no segmentIds). */
async function alone(name: string, what: Output): Promise<Float32Array> {
  const { inputs } = pack([[name]]);
  delete inputs.segmentIds;
  const { data } = await run(inputs, what);
  inputs.pixelValues?.dispose();
  return data;
}

/** Runs the packed rows and compares every sequence's output with its solo run (1e-5); returns the worst diff. */
async function checkPacked(rows: string[][], what: Output, label: string): Promise<number> {
  const { inputs, spans } = pack(rows);
  const before = tf.memory().numTensors;
  const { data, T, width } = await run(inputs, what);
  expect(tf.memory().numTensors, `${label}: tensors leaked by the packed forward`).toBe(before);
  let worst = 0;
  for (const { name, b, t0 } of spans) {
    const part = data.subarray((b * T + t0) * width, (b * T + t0 + seq[name].length) * width);
    const ref = await alone(name, what);
    worst = Math.max(worst, expectClose(part, ref, 1e-5, `${label} ${what}: ${name} (row ${b}, at ${t0})`));
  }
  inputs.pixelValues?.dispose();
  return worst;
}

describe('packedCausalMask', () => {
  it('is causal, block-diagonal per segment, and masks padding (hand-checked)', async () => {
    const m = packedCausalMask([[1, 1, 1, 1, 0]], [[0, 0, 1, 1, -1]]);
    expect(m.shape).toEqual([1, 1, 5, 5]);
    const X = MASK_MIN;
    const want = [
      [0, X, X, X, X],
      [0, 0, X, X, X],
      [X, X, 0, X, X],
      [X, X, 0, 0, X],
      [X, X, X, X, X],
    ];
    expect(Array.from(await m.data())).toEqual(want.flat().map(Math.fround));
    m.dispose();
  });

  it('names a shape mismatch', () => {
    expect(() => packedCausalMask([[1, 1]], [[0]])).toThrow(/same \[B, T\] = \[1, 2\] shape/);
  });
});

describe('packedRopeIndex', () => {
  it('restarts text positions per segment; padding gets 1', () => {
    const r = packedRopeIndex([[5, 6, 7, 8, 9, 0]], [[1, 1, 1, 1, 1, 0]], [[0, 0, 1, 1, 1, -1]], null, cfg);
    for (const s of r.positionIds) expect(s).toEqual([[0, 1, 0, 1, 2, 1]]);
  });

  it("gives each packed image sequence HF's own 3-D positions (fixture position_ids)", async () => {
    const { inputs, spans } = pack([
      ['M0', 'O'],
      ['M1', 'A'],
    ]);
    inputs.pixelValues?.dispose();
    const r = packedRopeIndex(
      inputs.inputIds as number[][],
      inputs.attentionMask as number[][],
      inputs.segmentIds!,
      inputs.imageGridThw!,
      cfg,
    );
    /** HF positions `[3][n]` of a fixture row's real tokens. */
    const hf = async (c: 'multi_image_batch' | 'one_image' | 'text_only_batch', b: number) => {
      const m = meta.cases[c];
      const p = get(await loadCase(c), 'position_ids');
      const [B, T] = [m.input_ids.length, m.input_ids[0].length];
      return [0, 1, 2].map((s) =>
        Array.from(p.data)
          .slice((s * B + b) * T, (s * B + b + 1) * T)
          .filter((_, t) => m.attention_mask[b][t] === 1),
      );
    };
    const refs: Record<string, number[][]> = {
      M0: await hf('multi_image_batch', 0),
      M1: await hf('multi_image_batch', 1),
      O: await hf('one_image', 0),
      A: await hf('text_only_batch', 0),
    };
    for (const { name, b, t0 } of spans) {
      const n = seq[name].length;
      const ours = r.positionIds.map((s) => s[b].slice(t0, t0 + n));
      expect(ours, `positions of ${name}`).toEqual(refs[name]);
    }
    expect(r.positionIds[1][1].slice(seq.M1.length + seq.A.length)).toEqual([1, 1, 1, 1, 1]);
  });

  it('rejects non-contiguous segments, -1 on real tokens, and an image split across segments', () => {
    const ids = [[5, 6, 7]];
    expect(() => packedRopeIndex(ids, null, [[0, 1, 0]], null, cfg)).toThrow(
      /token 2 has segment 0 after segment 1/,
    );
    expect(() => packedRopeIndex(ids, null, [[0, -1, 0]], null, cfg)).toThrow(/-1 only on padding/);
    const I = cfg.image_token_id;
    const split = [[cfg.vision_start_token_id, I, I, I, I, I, I, 9]];
    expect(() => packedRopeIndex(split, null, [[0, 0, 0, 0, 1, 1, 1, 1]], [[1, 4, 6]], cfg)).toThrow(
      /row 0 segment 0 has 4 tokens but its text and images take 7 positions/,
    );
  });
});

describe('packed forward equals each sequence alone (fixture model; cpu, or OVR_TEST_BACKEND)', () => {
  it('text only: logits of [A | B | pad] and [B | A | pad] within 1e-5; no leak', async () => {
    const worst = await checkPacked(
      [
        ['A', 'B'],
        ['B', 'A'],
      ],
      'logits',
      'text',
    );
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('the check is sensitive: without segmentIds the second sequence differs', async () => {
    const { inputs } = pack([['A', 'B']]);
    delete inputs.segmentIds;
    const { data, width } = await run(inputs, 'logits');
    const d = maxDiff(data.subarray(seq.A.length * width), await alone('B', 'logits'));
    console.log(`plain causal row: B differs from B alone by ${d.abs.toExponential(3)}`);
    expect(d.abs).toBeGreaterThan(1e-3);
  });

  // Hidden states (the LM head is row-wise, and the text test covers logits): keeps this test at a few seconds.
  it('rows mixing images and text: last hidden state of [M0 | O] and [M1 | A | pad] within 1e-5; no leak', async () => {
    const worst = await checkPacked(
      [
        ['M0', 'O'],
        ['M1', 'A'],
      ],
      'hidden',
      'images',
    );
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('rejects segmentIds with a KV cache (generation), naming both', () => {
    const cache = new KVCache();
    const before = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: [[5, 6]], segmentIds: [[0, 0]] }, { cache })).toThrow(
      /segmentIds are for packed training rows and cannot be used with a KV cache/,
    );
    expect(tf.memory().numTensors).toBe(before);
    cache.dispose();
  });
});

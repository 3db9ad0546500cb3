// Loads the tiny HF parity fixture (../shared/fixtures/qwen2_5_vl_tiny) for the model tests, and picks the
// backend from OVR_TEST_BACKEND / OVR_BACKEND (cpu by default; ../backend/select.ts).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { type HostTensor, readSafetensors } from '../../src/io/safetensors.js';
import { parseConfig, type Qwen2_5_VLConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/layers.js';
import { type ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { testBackendName } from '../backend/select.js';
import { FIXTURE } from '../helpers.js';

export const CASES = ['text_only_batch', 'one_image', 'multi_image_batch'] as const;
export type CaseName = (typeof CASES)[number];

/** Sets the test backend (OVR_TEST_BACKEND, else OVR_BACKEND, default cpu: ../backend/select.ts) via initBackend. */
export async function setupBackend(): Promise<string> {
  const name = testBackendName('cpu');
  const info = await initBackend({ backend: name, log: () => {} });
  console.log(`model tests on backend ${tf.getBackend()} (${info.reason})`);
  return info.name;
}

const cache = new Map<string, Promise<Map<string, HostTensor>>>();
/** All tensors of one fixture file, read once per test process. */
export function fixtureFile(file: string): Promise<Map<string, HostTensor>> {
  let p = cache.get(file);
  if (!p) {
    p = readSafetensors(path.join(FIXTURE, file));
    cache.set(file, p);
  }
  return p;
}

/** The tensors of `case_<name>.safetensors`. */
export const loadCase = (name: CaseName): Promise<Map<string, HostTensor>> =>
  fixtureFile(`case_${name}.safetensors`);

/** `cases.json` parsed. */
export async function casesJson(): Promise<CasesJson> {
  return JSON.parse(await readFile(path.join(FIXTURE, 'cases.json'), 'utf8')) as CasesJson;
}

export interface CaseMeta {
  input_ids: number[][];
  attention_mask: number[][];
  image_grid_thw: number[][] | null;
  rope_deltas: number[];
  loss: number;
  num_loss_tokens: number;
  argmax: number[][];
  grad_l2_norm: Record<string, number | null>;
  generation?: { new_tokens: number[][]; max_new_tokens: number };
}
export interface CasesJson {
  logit_columns: number[];
  cases: Record<CaseName, CaseMeta>;
}

/** The fixture's parsed config. */
export async function fixtureConfig(): Promise<Qwen2_5_VLConfig> {
  return parseConfig(JSON.parse(await readFile(path.join(FIXTURE, 'config.json'), 'utf8')));
}

/** Fixture weights as plain tensors (caller disposes). */
export async function fixtureParams(): Promise<Params> {
  const host = await fixtureFile('model.safetensors');
  const out: Params = {};
  for (const [k, t] of host) out[k] = tf.tensor(t.data as Float32Array, t.shape, 'float32');
  return out;
}

/**
 * The fixture model. `trainable` wraps the weights in tf.Variables (named `p/<key>`) so gradients can be taken;
 * otherwise the params are plain tensors. The caller disposes the model.
 * @example const model = await fixtureModel({ trainable: true });
 */
export async function fixtureModel(opts: { trainable?: boolean } = {}): Promise<Qwen2_5_VL> {
  const cfg = await fixtureConfig();
  const raw = await fixtureParams();
  if (!opts.trainable) return new Qwen2_5_VL(cfg, raw);
  const vars: Record<string, tf.Variable> = {};
  for (const [k, t] of Object.entries(raw)) vars[k] = tf.variable(t, true, `p/${k}`);
  tf.dispose(Object.values(raw));
  return new Qwen2_5_VL(cfg, vars);
}

/**
 * Model inputs of a fixture case: ids and mask from cases.json, plus `pixel_values` [N, C*Tp*P*P] and the grids when
 * the case has images. The caller disposes `pixelValues`.
 * @example const inputs = await caseInputs('one_image', meta.cases.one_image);
 */
export async function caseInputs(name: CaseName, m: CaseMeta): Promise<ModelInputs> {
  const inputs: ModelInputs = { inputIds: m.input_ids, attentionMask: m.attention_mask };
  if (m.image_grid_thw) {
    const px = get(await loadCase(name), 'pixel_values');
    inputs.pixelValues = tf.tensor2d(px.data as Float32Array, px.shape as [number, number]);
    inputs.imageGridThw = m.image_grid_thw;
  }
  return inputs;
}

/** A host tensor's data as a plain float array. */
export function get(file: Map<string, HostTensor>, key: string): HostTensor {
  const t = file.get(key);
  if (!t) throw new Error(`fixture tensor ${key} missing`);
  return t;
}

/** Rows of `x [B, T, ...]` (flattened) where mask[b][t] == 1, concatenated. */
export function realRows(x: ArrayLike<number>, mask: number[][], width: number): Float32Array {
  const out: number[] = [];
  const T = mask[0].length;
  mask.forEach((m, b) => {
    m.forEach((v, t) => {
      if (v === 1) for (let j = 0; j < width; j++) out.push(x[(b * T + t) * width + j]);
    });
  });
  return Float32Array.from(out);
}

/**
 * Host-side (float64) statistics of logits `[B*T, V]`: values at `cols`, logsumexp, argmax, top-1 − top-2 margin and
 * the log-prob of the next input id. Independent of the code under test (plain JS loops).
 */
export function logitStats(x: ArrayLike<number>, V: number, cols: number[], ids: number[][]) {
  const rows = x.length / V;
  const T = ids[0].length;
  const columns = new Float32Array(rows * cols.length);
  const lse = new Float64Array(rows);
  const argmax = new Int32Array(rows);
  const margin = new Float64Array(rows);
  const nextLogprob = new Float64Array(ids.length * (T - 1));
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let [a, b, ia] = [-Infinity, -Infinity, 0];
    for (let j = 0; j < V; j++) {
      const v = x[o + j];
      if (v > a) [b, a, ia] = [a, v, j];
      else if (v > b) b = v;
    }
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(x[o + j] - a);
    lse[r] = a + Math.log(sum);
    argmax[r] = ia;
    margin[r] = a - b;
    cols.forEach((col, k) => {
      columns[r * cols.length + k] = x[o + col];
    });
    const [bi, t] = [Math.floor(r / T), r % T];
    if (t < T - 1) nextLogprob[bi * (T - 1) + t] = x[o + ids[bi][t + 1]] - lse[r];
  }
  return { columns, lse, argmax, margin, nextLogprob };
}

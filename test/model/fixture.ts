// Loads the tiny HF parity fixture (../shared/fixtures/qwen2_5_vl_tiny) for the model tests, and picks the
// backend from OVR_TEST_BACKEND (cpu by default).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { type HostTensor, readSafetensors } from '../../src/io/safetensors.js';
import { parseConfig, type Qwen2_5_VLConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/layers.js';
import { FIXTURE } from '../helpers.js';

export const CASES = ['text_only_batch', 'one_image', 'multi_image_batch'] as const;
export type CaseName = (typeof CASES)[number];

/** Sets the backend named by OVR_TEST_BACKEND (cpu | wasm | webgpu), default cpu. */
export async function setupBackend(): Promise<string> {
  const name = process.env.OVR_TEST_BACKEND ?? 'cpu';
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  if (name === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend(name))) throw new Error(`OVR_TEST_BACKEND=${name}: backend failed to initialise`);
  await tf.ready();
  return name;
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
  mask.forEach((m, b) =>
    m.forEach((v, t) => {
      if (v === 1) for (let j = 0; j < width; j++) out.push(x[(b * T + t) * width + j]);
    }),
  );
  return Float32Array.from(out);
}

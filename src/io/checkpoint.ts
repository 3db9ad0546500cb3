// HF-layout weight checkpoints <-> tfjs Variables, given the expected names and shapes: load (strict, one tensor at a
// time), save (legacy names, sorted, single file or shards, plus config.json). Knows no model: model/weights.ts passes
// Qwen2.5-VL's shapes and Hub config. Mirrors HF `from_pretrained`/`save_pretrained`: legacy Hub names (`model.*`,
// `visual.*`, `lm_head.*`), the >= 4.52 names (`model.language_model.*`, `model.visual.*`) accepted on load, tied
// `lm_head.weight` absent. Spec: ../shared/spec/qwen2_5_vl.md §6.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { withWriteContext } from './files.js';
import {
  type HostTensor,
  SafetensorsCheckpoint,
  type TensorSource,
  writeSafetensorsDir,
} from './safetensors.js';

/** Parameters by legacy HF name. */
export type Weights = Record<string, tf.Variable>;

/** Progress report after each loaded tensor. */
export type LoadWeightsProgress = { name: string; index: number; total: number; bytes: number };

export type LoadWeightsOptions = {
  /** Default true: every missing / unexpected key is an error. false: they are skipped (missing ones are absent). */
  strict?: boolean;
  onProgress?: (p: LoadWeightsProgress) => void;
};

/**
 * Legacy (Hub) name for a checkpoint key: `model.language_model.X` -> `model.X`, `model.visual.X` -> `visual.X`.
 * @example toLegacyName('model.language_model.layers.0.mlp.up_proj.weight') // 'model.layers.0.mlp.up_proj.weight'
 */
export function toLegacyName(name: string): string {
  if (name.startsWith('model.language_model.')) return `model.${name.slice('model.language_model.'.length)}`;
  if (name.startsWith('model.visual.')) return name.slice('model.'.length);
  return name;
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

type Plan = { load: Map<string, string>; dropTiedHead?: string; problems: string[] };

/**
 * Matches checkpoint keys (either naming) to the expected legacy names. Pure: names and shapes in, plan out.
 * `load` maps legacy name -> checkpoint key. Mis-shaped keys are always problems; missing/unexpected only when strict.
 */
export function planLoad(
  expected: Map<string, number[]>,
  present: Map<string, { shape: number[]; dtype: string }>,
  tied: boolean,
  strict: boolean,
): Plan {
  const load = new Map<string, string>();
  const problems: string[] = [];
  const unexpected: string[] = [];
  const seen = new Set<string>();
  let dropTiedHead: string | undefined;
  for (const [key, info] of present) {
    const legacy = toLegacyName(key);
    if (expected.has(legacy)) seen.add(legacy);
    if (tied && legacy === 'lm_head.weight') {
      dropTiedHead = key;
      continue;
    }
    const want = expected.get(legacy);
    if (!want) {
      unexpected.push(key);
      continue;
    }
    if (load.has(legacy)) {
      problems.push(`duplicate: "${load.get(legacy)}" and "${key}" are both ${legacy}; keep one naming`);
    } else if (!sameShape(want, info.shape)) {
      problems.push(`mis-shaped: ${key} expected ${fmtShape(want)} got ${fmtShape(info.shape)}`);
    } else if (info.dtype === 'U8' || info.dtype === 'I32' || info.dtype === 'I64') {
      problems.push(`wrong dtype: ${key} is ${info.dtype}, parameters must be F32/F16/BF16`);
    } else {
      load.set(legacy, key);
    }
  }
  const missing = [...expected.keys()].filter((k) => !seen.has(k));
  if (strict) {
    for (const k of missing) problems.push(`missing: ${k} ${fmtShape(expected.get(k)!)}`);
    for (const k of unexpected) problems.push(`unexpected: ${k} ${fmtShape(present.get(k)!.shape)}`);
  }
  return { load, dropTiedHead, problems };
}

/** Throws naming the tensor when a float weight holds NaN or ±Inf (a damaged file or a diverged run's save). */
export function assertFinite(t: HostTensor, name: string, source: string): void {
  if (!(t.data instanceof Float32Array)) return;
  const d = t.data;
  let bad = 0;
  let first = -1;
  for (let i = 0; i < d.length; i++) {
    if (d[i] - d[i] !== 0) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad > 0) {
    throw new Error(
      `${source}: tensor ${name} has ${bad} non-finite value(s) (NaN or Inf; first at flat index ${first}, ` +
        `value ${d[first]}). The file is damaged or was saved after training diverged: load an earlier checkpoint.`,
    );
  }
}

function variableFrom(t: HostTensor): tf.Variable {
  // tidy disposes the temporary tensor; the Variable keeps its data.
  return tf.tidy(() => tf.variable(tf.tensor(t.data as Float32Array, t.shape, 'float32'), true));
}

const bytesOf = (t: HostTensor): Buffer => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

async function checkTiedHead(
  ck: SafetensorsCheckpoint,
  head: string,
  embed: string | undefined,
): Promise<void> {
  const h = await ck.read(head);
  const e = embed ? await ck.read(embed) : undefined;
  const same = e !== undefined && sameShape(h.shape, e.shape) && Buffer.compare(bytesOf(h), bytesOf(e)) === 0;
  if (!same) {
    throw new Error(
      `${ck.source}: tie_word_embeddings is true but ${head} differs from the embedding: ` +
        'set tie_word_embeddings false in config.json, or drop lm_head.weight from the checkpoint',
    );
  }
}

/** What a checkpoint must hold: legacy name -> shape, and whether the LM head is tied to the embedding. */
export interface WeightLayout {
  shapes: Map<string, number[]>;
  tied: boolean;
}

/**
 * Loads a checkpoint folder / file / sharded index into float32 Variables keyed by legacy HF names, one tensor at a time.
 * Strict by default: one error lists every missing, unexpected and mis-shaped key.
 * @example const params = await readWeights('ckpt', { shapes: paramShapes(cfg), tied: cfg.tie_word_embeddings });
 */
export async function readWeights(
  dir: string,
  layout: WeightLayout,
  opts: LoadWeightsOptions = {},
): Promise<Weights> {
  const ck = await SafetensorsCheckpoint.open(dir);
  const out: Weights = {};
  try {
    const present = new Map(ck.names.map((n) => [n, ck.info(n)!]));
    const plan = planLoad(layout.shapes, present, layout.tied, opts.strict ?? true);
    if (plan.problems.length > 0) {
      throw new Error(`${ck.source}: checkpoint does not match the config:\n  ${plan.problems.join('\n  ')}`);
    }
    if (plan.dropTiedHead)
      await checkTiedHead(ck, plan.dropTiedHead, plan.load.get('model.embed_tokens.weight'));
    let index = 0;
    for (const [legacy, key] of plan.load) {
      const t = await ck.read(key);
      assertFinite(t, key, ck.source);
      out[legacy] = variableFrom(t);
      opts.onProgress?.({ name: legacy, index: index++, total: plan.load.size, bytes: t.data.byteLength });
    }
    return out;
  } catch (e) {
    disposeWeights(out);
    throw e;
  } finally {
    await ck.close();
  }
}

/** Disposes every Variable of a param record. */
export function disposeWeights(params: Record<string, tf.Tensor>): void {
  for (const v of Object.values(params)) v.dispose();
}

export type SaveWeightsOptions = { dtype?: 'BF16' | 'F32'; maxShardBytes?: number };

/**
 * Writes `params` in HF layout (legacy names, sorted, `model.safetensors` or shards + index) plus `config.json`
 * (`hubConfig(torch_dtype)`). Every expected param must be present with the right shape. Tensors are read one at a
 * time with `await t.data()` (works on webgpu).
 * @example await writeWeights('out/ckpt', params, layout, (d) => toHubConfig(cfg, d), { dtype: 'BF16' });
 */
export async function writeWeights(
  dir: string,
  params: Record<string, tf.Tensor>,
  layout: WeightLayout,
  hubConfig: (torchDtype: 'bfloat16' | 'float32') => Record<string, unknown>,
  opts: SaveWeightsOptions = {},
): Promise<string[]> {
  const byLegacy = new Map<string, tf.Tensor>();
  const present = new Map<string, { shape: number[]; dtype: string }>();
  for (const [k, t] of Object.entries(params)) {
    if (t.isDisposed) throw new Error(`saveWeights: param ${k} is disposed`);
    present.set(k, { shape: t.shape, dtype: t.dtype === 'float32' ? 'F32' : 'I32' });
  }
  const plan = planLoad(layout.shapes, present, layout.tied, true);
  if (plan.problems.length > 0)
    throw new Error(`saveWeights: params do not match the config:\n  ${plan.problems.join('\n  ')}`);
  for (const [legacy, key] of plan.load) byLegacy.set(legacy, params[key]);
  const sources: TensorSource[] = [...byLegacy].map(([name, t]) => ({
    name,
    dtype: 'float32',
    shape: t.shape,
    data: async () => (await t.data()) as Float32Array,
  }));
  const dtype = opts.dtype ?? 'BF16';
  const files = await writeSafetensorsDir(dir, sources, { dtype, maxShardBytes: opts.maxShardBytes });
  const hub = hubConfig(dtype === 'BF16' ? 'bfloat16' : 'float32');
  const cfgFile = path.join(dir, 'config.json');
  await withWriteContext(cfgFile, 'model config', () =>
    writeFile(cfgFile, `${JSON.stringify(hub, null, 2)}\n`),
  );
  return [...files, 'config.json'];
}

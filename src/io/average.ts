// Checkpoint averaging ("model soup" / the OVR paper's final model: the uniform average of several intermediate RL
// checkpoints, §4.1): uniform or weighted elementwise mean of HF checkpoint folders (model.safetensors or shards +
// index, e.g. `runDir/checkpoint-*`) or of PEFT adapter folders (adapter_config.json + adapter_model.safetensors).
// Host-side only, one tensor at a time: every input's header is checked before anything is written, then each output
// tensor is read from all inputs, summed in float64 and rounded once to float32 (so the mean of two f32 inputs is
// the exactly rounded mean).
//
// Adapters: the saved `lora_A` and `lora_B` tensors are averaged separately (what averaging the adapter files
// means); the result's delta B·A is NOT the average of the inputs' deltas B_i·A_i (merge each adapter into the base
// and average the merged checkpoints for that).
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { HostTensor } from './safetensors.js';
import {
  SafetensorsCheckpoint,
  SafetensorsFile,
  type TensorSource,
  writeSafetensorsDir,
  writeSafetensorsFrom,
} from './safetensors.js';

/** What kind of folder is averaged. */
export type AverageKind = 'checkpoint' | 'adapter';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** Non-weight files of an HF model folder copied from the first input (when present). */
const MODEL_SIDE_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'preprocessor_config.json',
  'chat_template.json',
  'chat_template.jinja',
];

/** Options of {@link averageCheckpoints}. */
export interface AverageOptions {
  /** One non-negative weight per input (normalised by their sum); default uniform. */
  weights?: readonly number[];
  /** Output float dtype. Default 'F32' (exact mean); 'BF16' halves the size. */
  dtype?: 'F32' | 'BF16';
  /** Shard the output above this many bytes (checkpoints only). Default: one file. */
  maxShardBytes?: number;
}

/** What was written. */
export interface AverageReport {
  kind: AverageKind;
  out: string;
  tensors: number;
  params: number;
  /** Normalised weights, one per input. */
  weights: number[];
  files: string[];
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

const article = (k: AverageKind) => (k === 'adapter' ? 'an adapter' : 'a checkpoint');

/** 'adapter' when `dir` holds adapter_model.safetensors, else 'checkpoint'. */
export async function detectKind(dir: string): Promise<AverageKind> {
  return (await exists(path.join(dir, ADAPTER_WEIGHTS))) ? 'adapter' : 'checkpoint';
}

/** Checks and normalises the weights: one per input, finite, >= 0, positive sum. */
export function normaliseWeights(n: number, weights?: readonly number[]): number[] {
  if (!weights) return new Array(n).fill(1 / n);
  if (weights.length !== n) {
    throw new Error(
      `average: ${weights.length} weights for ${n} inputs; give one weight per input, in order`,
    );
  }
  weights.forEach((w, i) => {
    if (!(Number.isFinite(w) && w >= 0))
      throw new Error(`average: weight ${i + 1} is ${w}; weights must be >= 0`);
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) throw new Error('average: the weights sum to 0; give at least one positive weight');
  return weights.map((w) => w / sum);
}

type Reader = {
  source: string;
  names: string[];
  info: (n: string) => { dtype: string; shape: number[] } | undefined;
  read: (n: string) => Promise<HostTensor>;
  close: () => Promise<void>;
};

async function openReader(dir: string, kind: AverageKind): Promise<Reader> {
  if (kind === 'adapter') {
    const f = await SafetensorsFile.open(path.join(dir, ADAPTER_WEIGHTS));
    return {
      source: f.path,
      names: [...f.names].sort(),
      info: (n) => f.info(n),
      read: (n) => f.read(n),
      close: () => f.close(),
    };
  }
  const ck = await SafetensorsCheckpoint.open(dir);
  return {
    source: ck.source,
    names: ck.names,
    info: (n) => ck.info(n),
    read: (n) => ck.read(n),
    close: () => ck.close(),
  };
}

const FLOAT = new Set(['F32', 'F16', 'BF16']);

/** Same tensor names, shapes and dtype class in every input; throws naming the key and both files. */
export function checkCompatible(readers: readonly Reader[]): void {
  const [first, ...rest] = readers;
  const names = new Set(first.names);
  for (const r of rest) {
    for (const n of r.names) {
      if (!names.has(n))
        throw new Error(`average: tensor "${n}" is in ${r.source} but not in ${first.source}`);
    }
    for (const n of first.names) {
      const a = first.info(n)!;
      const b = r.info(n);
      if (!b) throw new Error(`average: tensor "${n}" is in ${first.source} but missing from ${r.source}`);
      if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
        throw new Error(
          `average: tensor "${n}" has shape [${a.shape}] in ${first.source} but [${b.shape}] in ${r.source}`,
        );
      }
      if (FLOAT.has(a.dtype) !== FLOAT.has(b.dtype)) {
        throw new Error(
          `average: tensor "${n}" is ${a.dtype} in ${first.source} but ${b.dtype} in ${r.source}`,
        );
      }
    }
  }
}

/** Weighted mean of one tensor across inputs (float64 sums, one rounding); non-float tensors must be identical. */
async function meanOf(
  readers: readonly Reader[],
  name: string,
  w: readonly number[],
): Promise<HostTensor['data']> {
  const parts: HostTensor[] = [];
  for (const r of readers) parts.push(await r.read(name));
  const first = parts[0];
  if (first.dtype !== 'float32') {
    parts.forEach((p, i) => {
      if (p.data.some((x, j) => x !== first.data[j])) {
        throw new Error(
          `average: integer tensor "${name}" differs between ${readers[0].source} and ${readers[i].source}; cannot average it`,
        );
      }
    });
    return first.data;
  }
  const uniform = w.every((x) => x === w[0]);
  const out = new Float32Array(first.data.length);
  for (let j = 0; j < out.length; j++) {
    let s = 0;
    // NOTE: uniform weights divide the exact float64 sum by n instead of multiplying by 1/n (one rounding only).
    for (let i = 0; i < parts.length; i++) s += uniform ? parts[i].data[j] : w[i] * parts[i].data[j];
    out[j] = uniform ? s / parts.length : s;
  }
  return out;
}

/** Architecture keys of two config files must agree (dtype / paths / versions may differ). */
async function checkSideConfig(
  dirs: readonly string[],
  file: string,
  ignore: readonly string[],
): Promise<void> {
  const read = async (d: string) => {
    const p = path.join(d, file);
    if (!(await exists(p))) return undefined;
    const j = JSON.parse(await readFile(p, 'utf8')) as Record<string, unknown>;
    for (const k of ignore) delete j[k];
    return JSON.stringify(j, Object.keys(j).sort());
  };
  const first = await read(dirs[0]);
  for (const d of dirs.slice(1)) {
    const other = await read(d);
    if (first !== undefined && other !== undefined && other !== first) {
      throw new Error(
        `average: ${path.join(d, file)} differs from ${path.join(dirs[0], file)}; only checkpoints of the same model (same adapter config) can be averaged`,
      );
    }
  }
}

/**
 * Averages checkpoint or adapter folders into `out` (HF layout: model.safetensors + config.json and tokenizer files
 * from the first input; or adapter_model.safetensors + adapter_config.json). All inputs must be the same kind with
 * the same tensor names and shapes; nothing is written when they are not.
 * @example await averageCheckpoints(['run/checkpoint-00000100', 'run/checkpoint-00000200'], 'avg');
 */
export async function averageCheckpoints(
  inputs: readonly string[],
  out: string,
  opts: AverageOptions = {},
): Promise<AverageReport> {
  if (inputs.length < 1) throw new Error('average: give at least one checkpoint folder');
  const w = normaliseWeights(inputs.length, opts.weights);
  const kinds = await Promise.all(inputs.map(detectKind));
  const kind = kinds[0];
  kinds.forEach((k, i) => {
    if (k !== kind)
      throw new Error(
        `average: ${inputs[i]} is ${article(k)} folder but ${inputs[0]} is ${article(kind)} folder`,
      );
  });
  if (kind === 'adapter') {
    await checkSideConfig(inputs, ADAPTER_CONFIG, ['base_model_name_or_path', 'revision', 'inference_mode']);
  } else {
    await checkSideConfig(inputs, 'config.json', ['torch_dtype', '_name_or_path', 'transformers_version']);
  }
  const readers: Reader[] = [];
  try {
    for (const d of inputs) readers.push(await openReader(d, kind));
    checkCompatible(readers);
    const names = readers[0].names;
    const sources: TensorSource[] = names.map((n) => {
      const info = readers[0].info(n)!;
      const dtype = FLOAT.has(info.dtype) ? 'float32' : info.dtype === 'U8' ? 'uint8' : 'int32';
      return { name: n, dtype, shape: info.shape, data: () => meanOf(readers, n, w) };
    });
    await mkdir(out, { recursive: true });
    const wopts = { dtype: opts.dtype ?? 'F32', metadata: { averaged_from: String(inputs.length) } } as const;
    const files: string[] = [];
    if (kind === 'adapter') {
      await writeSafetensorsFrom(path.join(out, ADAPTER_WEIGHTS), sources, wopts);
      files.push(ADAPTER_WEIGHTS);
      await copyFile(path.join(inputs[0], ADAPTER_CONFIG), path.join(out, ADAPTER_CONFIG));
      files.push(ADAPTER_CONFIG);
    } else {
      files.push(
        ...(await writeSafetensorsDir(out, sources, { ...wopts, maxShardBytes: opts.maxShardBytes })),
      );
      for (const f of MODEL_SIDE_FILES) {
        if (await exists(path.join(inputs[0], f))) {
          await copyFile(path.join(inputs[0], f), path.join(out, f));
          files.push(f);
        }
      }
    }
    const params = sources.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    return { kind, out, tensors: names.length, params, weights: w, files };
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}

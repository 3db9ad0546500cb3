// safetensors writing: one file (atomic temp + rename, data fetched one tensor at a time) or an HF checkpoint folder
// (single `model.safetensors` or `model-0000k-of-0000n` shards + index). Floats as F32 or BF16, int32 as I32, uint8 as U8.
import { type FileHandle, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { withWriteContext, writeError } from './files.js';
import { BYTES, CHUNK, f32ToBf16Bits, type HostTensor, INDEX_FILE, numel } from './safetensors_format.js';

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** What the writer needs before the data: used to build the header, then `data` is fetched one tensor at a time. */
export type TensorSource = {
  name: string;
  dtype: HostTensor['dtype'];
  shape: number[];
  data: () => Promise<HostTensor['data']>;
};
export type WriteOptions = { dtype?: 'F32' | 'BF16'; metadata?: Record<string, string> };

const outDtype = (t: { dtype: HostTensor['dtype'] }, f: 'F32' | 'BF16'): 'F32' | 'BF16' | 'I32' | 'U8' =>
  t.dtype === 'float32' ? f : t.dtype === 'int32' ? 'I32' : 'U8';

/** Header bytes (JSON padded with spaces to a multiple of 8) and the per-tensor order, tensors sorted by name. */
export function buildHeader(
  tensors: readonly { name: string; dtype: HostTensor['dtype']; shape: number[] }[],
  opts: WriteOptions = {},
): { bytes: Uint8Array; order: string[] } {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const h: Record<string, unknown> = { __metadata__: { format: 'pt', ...(opts.metadata ?? {}) } };
  let off = 0;
  for (const t of sorted) {
    if (t.name === '__metadata__' || t.name in h)
      throw new Error(`cannot write tensor name "${t.name}" (reserved or duplicated)`);
    const dt = outDtype(t, opts.dtype ?? 'F32');
    const bytes = numel(t.shape) * BYTES[dt];
    h[t.name] = { dtype: dt, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(h));
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, order: sorted.map((t) => t.name) };
}

function encode(t: TensorSource, data: HostTensor['data'], f: 'F32' | 'BF16'): Uint8Array {
  if (data.length !== numel(t.shape)) {
    throw new Error(
      `tensor "${t.name}": data has ${data.length} values but shape [${t.shape.join(',')}] needs ${numel(t.shape)}`,
    );
  }
  const bytes = data instanceof Float32Array && f === 'BF16' ? f32ToBf16Bits(data) : data;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Writes all of `buf`. A write(2) may write fewer bytes than asked without an error (a disk filling up does exactly
 * that); the next call then reports the cause (ENOSPC), so a short write is never taken for a complete one.
 */
async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    off += bytesWritten;
  }
}

/** Writes one safetensors file atomically (temp file + rename), fetching each tensor's data only when it is written. */
export async function writeSafetensorsFrom(
  file: string,
  tensors: readonly TensorSource[],
  opts: WriteOptions = {},
): Promise<void> {
  const { bytes, order } = buildHeader(tensors, opts);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  await withWriteContext(file, 'safetensors file', () => mkdir(path.dirname(file), { recursive: true }));
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fh = await withWriteContext(file, 'safetensors file', () => open(tmp, 'w'));
  try {
    await writeAll(fh, bytes);
    for (const name of order) {
      const t = byName.get(name)!;
      const data = await t.data();
      if (HOST_OF(data) !== t.dtype)
        throw new Error(`tensor "${name}": declared ${t.dtype} but data is ${data.constructor.name}`);
      const buf = encode(t, data, opts.dtype ?? 'F32');
      for (let off = 0; off < buf.length; off += CHUNK)
        await writeAll(fh, buf.subarray(off, Math.min(buf.length, off + CHUNK)));
    }
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw writeError(e, file, 'safetensors file');
  }
  await withWriteContext(file, 'safetensors file', async () => {
    await fh.close();
    await rename(tmp, file);
  });
}

const HOST_OF = (d: HostTensor['data']): HostTensor['dtype'] =>
  d instanceof Float32Array ? 'float32' : d instanceof Int32Array ? 'int32' : 'uint8';

const toSources = (tensors: Map<string, HostTensor> | Record<string, HostTensor>): TensorSource[] =>
  (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).map(([name, t]) => ({
    name,
    dtype: t.dtype,
    shape: t.shape,
    data: async () => t.data,
  }));

/**
 * Writes host tensors to one safetensors file: floats as F32 (default) or BF16 (round-to-nearest-even), int32 as I32,
 * uint8 as U8; sorted by name; `__metadata__ {"format":"pt"}`; atomic.
 * @example await writeSafetensors('out.safetensors', { w: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } });
 */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  opts: WriteOptions = {},
): Promise<void> {
  await writeSafetensorsFrom(file, toSources(tensors), opts);
}

/** HF shard file name. @example shardName(0, 2) // 'model-00001-of-00002.safetensors' */
export const shardName = (i: number, n: number): string =>
  `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** Groups name-sorted tensors into shards of at most maxShardBytes (a bigger tensor gets a shard of its own). */
export function planShards(
  sizes: readonly { name: string; bytes: number }[],
  maxShardBytes: number,
): string[][] {
  const sorted = [...sizes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shards: string[][] = [];
  let cur: string[] = [];
  let used = 0;
  for (const t of sorted) {
    if (cur.length > 0 && used + t.bytes > maxShardBytes) {
      shards.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(t.name);
    used += t.bytes;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  return shards;
}

/**
 * Writes a checkpoint folder in HF layout: `model.safetensors` when everything fits in `maxShardBytes` (default
 * Infinity), else `model-0000k-of-0000n.safetensors` + `model.safetensors.index.json` (`metadata.total_size`,
 * `weight_map`). Stale weight files of another layout in `dir` are removed after the new files are in place.
 * @example await writeSafetensorsDir('ckpt', sources, { dtype: 'BF16', maxShardBytes: 5e9 });
 */
export async function writeSafetensorsDir(
  dir: string,
  tensors: readonly TensorSource[],
  opts: WriteOptions & { maxShardBytes?: number } = {},
): Promise<string[]> {
  const f = opts.dtype ?? 'F32';
  const sizes = tensors.map((t) => ({ name: t.name, bytes: numel(t.shape) * BYTES[outDtype(t, f)] }));
  const max = opts.maxShardBytes ?? Number.POSITIVE_INFINITY;
  if (!(max > 0)) throw new Error(`maxShardBytes must be > 0, got ${max}`);
  const shards = planShards(sizes, max);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const files =
    shards.length === 1 ? ['model.safetensors'] : shards.map((_, i) => shardName(i, shards.length));
  for (let i = 0; i < shards.length; i++) {
    await writeSafetensorsFrom(
      path.join(dir, files[i]),
      shards[i].map((n) => byName.get(n)!),
      opts,
    );
    written.push(files[i]);
  }
  if (shards.length > 1) {
    const weight_map: Record<string, string> = {};
    for (let i = 0; i < shards.length; i++) for (const n of shards[i]) weight_map[n] = files[i];
    const sorted = Object.fromEntries(Object.entries(weight_map).sort(([a], [b]) => (a < b ? -1 : 1)));
    const total_size = sizes.reduce((a, s) => a + s.bytes, 0);
    const tmp = path.join(dir, `${INDEX_FILE}.tmp-${process.pid}`);
    await withWriteContext(path.join(dir, INDEX_FILE), 'shard index', async () => {
      await writeFile(tmp, `${JSON.stringify({ metadata: { total_size }, weight_map: sorted }, null, 2)}\n`);
      await rename(tmp, path.join(dir, INDEX_FILE));
    });
    written.push(INDEX_FILE);
  }
  await removeStale(dir, new Set(written));
  return written;
}

async function removeStale(dir: string, keep: Set<string>): Promise<void> {
  for (const f of await readdir(dir)) {
    const ours =
      f === 'model.safetensors' || f === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f);
    if (ours && !keep.has(f)) await rm(path.join(dir, f), { force: true });
  }
}

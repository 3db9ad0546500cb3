// safetensors read/write (single file or HF-sharded), host-side only: no tfjs here.
// Follows the format of huggingface/safetensors: u64 LE header length n, n bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw little-endian data.
// Reads are validated before any large allocation; a malformed file gives ONE error naming the file and the tensor.
// Spec: ../shared/spec/qwen2_5_vl.md §6.2.
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A tensor in host memory. Floats are always float32 in memory (F16/BF16 are widened on read). */
export type HostTensor = {
  dtype: 'float32' | 'int32' | 'uint8';
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
};

/** safetensors dtypes this module reads. */
export type StDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
const BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };

/** One header entry, validated. `begin`/`end` are absolute file offsets. */
export type TensorInfo = { name: string; dtype: StDtype; shape: number[]; begin: number; end: number };

/** Largest header we accept (the reference implementation uses the same 100 MB limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const CHUNK = 1 << 28; // 256 MB per read() call: fs.read is limited to 2 GB.

if (os.endianness() !== 'LE') throw new Error('ovr safetensors io assumes a little-endian host');

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------------------------
// Header parsing (pure)

function checkEntry(
  file: string,
  name: string,
  e: unknown,
): { dtype: StDtype; shape: number[]; b: number; e: number } {
  const bad = (why: string) => new Error(`${file}: tensor "${name}": ${why}`);
  if (typeof e !== 'object' || e === null)
    throw bad('header entry must be an object {dtype, shape, data_offsets}');
  const { dtype, shape, data_offsets: off } = e as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in BYTES)) {
    throw bad(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(BYTES).join(', ')})`);
  }
  const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!Array.isArray(shape) || !shape.every(isInt))
    throw bad(`shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isInt) || off[0] > off[1]) {
    throw bad(`data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 <= begin <= end`);
  }
  const want = numel(shape) * BYTES[dtype as StDtype];
  if (want !== off[1] - off[0]) {
    throw bad(
      `shape [${shape.join(',')}] x ${dtype} needs ${want} bytes but data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]}`,
    );
  }
  return { dtype: dtype as StDtype, shape: [...shape], b: off[0], e: off[1] };
}

/**
 * Validates a parsed header against the data section size: known dtypes, byte counts that match the shapes, and
 * offsets that tile [0, dataBytes) exactly (no overlap, gap or overrun). Returns the tensors sorted by offset.
 * @example parseHeader('m.safetensors', JSON.parse(text), fileSize - 8 - n, 8 + n)
 */
export function parseHeader(
  file: string,
  header: unknown,
  dataBytes: number,
  dataStart: number,
): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error(`${file}: safetensors header must be a JSON object`);
  }
  const metadata: Record<string, string> = {};
  const list: (TensorInfo & { b: number; e: number })[] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof e !== 'object' || e === null)
        throw new Error(`${file}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(e)) {
        if (typeof v !== 'string')
          throw new Error(`${file}: __metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const c = checkEntry(file, name, e);
    list.push({
      name,
      dtype: c.dtype,
      shape: c.shape,
      b: c.b,
      e: c.e,
      begin: dataStart + c.b,
      end: dataStart + c.e,
    });
  }
  list.sort((x, y) => x.b - y.b || x.e - y.e);
  let pos = 0;
  let prev = '';
  for (const t of list) {
    if (t.e > dataBytes) {
      throw new Error(
        `${file}: tensor "${t.name}": data_offsets [${t.b}, ${t.e}] run past the data section (${dataBytes} bytes): the file is truncated or the header is wrong`,
      );
    }
    if (t.b < pos)
      throw new Error(
        `${file}: tensor "${t.name}": data_offsets [${t.b}, ${t.e}] overlap tensor "${prev}" (which ends at ${pos})`,
      );
    if (t.b > pos)
      throw new Error(
        `${file}: tensor "${t.name}": data is not contiguous: gap of ${t.b - pos} bytes before it (previous tensor ends at ${pos})`,
      );
    pos = t.e;
    prev = t.name;
  }
  if (pos !== dataBytes) {
    throw new Error(
      `${file}: ${dataBytes - pos} trailing bytes after the last tensor${prev ? ` "${prev}"` : ''}: data is not contiguous (the header does not cover the data section)`,
    );
  }
  return {
    tensors: list.map(({ name, dtype, shape, begin, end }) => ({ name, dtype, shape, begin, end })),
    metadata,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding (pure)

let f16Table: Uint32Array | undefined;
/** float32 bits for every float16 bit pattern: subnormals, +-inf and NaN (payload kept) included. */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    let m = h & 0x3ff;
    if (e === 31) t[h] = (s | 0x7f800000 | (m << 13)) >>> 0;
    else if (e !== 0) t[h] = (s | ((e + 112) << 23) | (m << 13)) >>> 0;
    else if (m === 0) t[h] = s >>> 0;
    else {
      // subnormal m * 2^-24: normalise the mantissa.
      let ex = 113;
      while ((m & 0x400) === 0) {
        m <<= 1;
        ex--;
      }
      t[h] = (s | (ex << 23) | ((m & 0x3ff) << 13)) >>> 0;
    }
  }
  f16Table = t;
  return t;
}

/**
 * Widens 16-bit floats to float32 IN PLACE: the n raw 16-bit values sit in the upper half of `out`'s buffer
 * (bytes [2n, 4n)); each write to out[i] only clobbers raw values already consumed, so peak memory is one f32 copy.
 */
function widen16InPlace(out: Float32Array, kind: 'BF16' | 'F16'): void {
  const n = out.length;
  const raw = new Uint16Array(out.buffer, out.byteOffset + 2 * n, n);
  const bits = new Uint32Array(out.buffer, out.byteOffset, n);
  if (kind === 'BF16') {
    for (let i = 0; i < n; i++) bits[i] = raw[i] << 16;
  } else {
    const t = f16ToF32Table();
    for (let i = 0; i < n; i++) bits[i] = t[raw[i]];
  }
}

/** float32 -> bfloat16 bits, round-to-nearest-even; NaN stays NaN (quiet bit set), +-inf stays inf. */
export function f32ToBf16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x0040;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Lazy single-file reader

async function readAt(
  fh: FileHandle,
  into: Uint8Array,
  pos: number,
  file: string,
  name: string,
): Promise<void> {
  for (let off = 0; off < into.length; ) {
    const len = Math.min(CHUNK, into.length - off);
    const { bytesRead } = await fh.read(into, off, len, pos + off);
    if (bytesRead === 0)
      throw new Error(`${file}: tensor "${name}": unexpected end of file (the file changed or is truncated)`);
    off += bytesRead;
  }
}

/**
 * A safetensors file opened for on-demand reads: the header is parsed and validated at open, each tensor is read
 * from the file descriptor when asked for, so a 7 GB checkpoint never needs two copies in memory.
 * @example
 * const f = await SafetensorsFile.open('model.safetensors');
 * try { const w = await f.read('model.norm.weight'); } finally { await f.close(); }
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly byName: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  /** Opens and validates `file` (throws one clear error for malformed headers/offsets). */
  static async open(file: string): Promise<SafetensorsFile> {
    const fh = await open(file, 'r').catch((e: Error) => {
      throw new Error(`cannot open safetensors file ${file}: ${e.message}`);
    });
    try {
      const { tensors, metadata } = await readHeader(fh, file);
      return new SafetensorsFile(file, fh, new Map(tensors.map((t) => [t.name, t])), metadata);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Tensor names in file (offset) order. */
  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** Header entry of `name`, or undefined. */
  info(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  /** Reads one tensor: F32/F16/BF16 -> float32, I32/I64 -> int32 (I64 outside int32 range throws), U8 -> uint8. */
  async read(name: string): Promise<HostTensor> {
    const t = this.byName.get(name);
    if (!t) throw new Error(`${this.path}: no tensor named "${name}"`);
    return decodeTensor(t, (buf) => readAt(this.fh, buf, t.begin, this.path, name), this.path);
  }

  /** Closes the file descriptor. */
  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function readHeader(
  fh: FileHandle,
  file: string,
): Promise<{ tensors: TensorInfo[]; metadata: Record<string, string> }> {
  const size = (await fh.stat()).size;
  if (size < 8)
    throw new Error(
      `${file}: only ${size} bytes: too short for a safetensors file (needs an 8-byte header length)`,
    );
  const lenBuf = new Uint8Array(8);
  await readAt(fh, lenBuf, 0, file, '(header length)');
  const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(
      `${file}: header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file or corrupted`,
    );
  }
  const n = Number(n64);
  if (8 + n > size)
    throw new Error(
      `${file}: header length ${n} runs past the end of the file (${size} bytes): truncated or not safetensors`,
    );
  const hbuf = new Uint8Array(n);
  await readAt(fh, hbuf, 8, file, '(header)');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbuf));
  } catch (e) {
    throw new Error(`${file}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  return parseHeader(file, header, size - 8 - n, 8 + n);
}

async function decodeTensor(
  t: TensorInfo,
  fill: (buf: Uint8Array) => Promise<void>,
  file: string,
): Promise<HostTensor> {
  const n = numel(t.shape);
  const shape = [...t.shape];
  switch (t.dtype) {
    case 'F32': {
      const data = new Float32Array(n);
      await fill(new Uint8Array(data.buffer));
      return { dtype: 'float32', shape, data };
    }
    case 'BF16':
    case 'F16': {
      const data = new Float32Array(n);
      await fill(new Uint8Array(data.buffer, 2 * n, 2 * n));
      widen16InPlace(data, t.dtype);
      return { dtype: 'float32', shape, data };
    }
    case 'I32': {
      const data = new Int32Array(n);
      await fill(new Uint8Array(data.buffer));
      return { dtype: 'int32', shape, data };
    }
    case 'I64': {
      const raw = new BigInt64Array(n);
      await fill(new Uint8Array(raw.buffer));
      const data = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = raw[i];
        if (v > 2147483647n || v < -2147483648n) {
          throw new Error(
            `${file}: tensor "${t.name}": I64 value ${v} at flat index ${i} does not fit in int32`,
          );
        }
        data[i] = Number(v);
      }
      return { dtype: 'int32', shape, data };
    }
    case 'U8': {
      const data = new Uint8Array(n);
      await fill(data);
      return { dtype: 'uint8', shape, data };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Single file or sharded checkpoint

/** HF index file name for sharded checkpoints. */
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * A lazy reader over a single `.safetensors` file, a sharded `model.safetensors.index.json`, or a directory holding
 * either (the index wins). Each tensor is read on demand from the shard that holds it.
 * @example
 * const ck = await SafetensorsCheckpoint.open('models/qwen2.5-vl-3b');
 * for (const name of ck.names) use(await ck.read(name));
 * await ck.close();
 */
export class SafetensorsCheckpoint {
  private constructor(
    readonly source: string,
    private readonly files: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
  ) {}

  static async open(pathOrDir: string): Promise<SafetensorsCheckpoint> {
    const resolved = await resolveCheckpoint(pathOrDir);
    if (!resolved.endsWith('.json')) {
      const f = await SafetensorsFile.open(resolved);
      return new SafetensorsCheckpoint(resolved, [f], new Map(f.names.map((n) => [n, f])));
    }
    const weightMap = await readIndex(resolved);
    const dir = path.dirname(resolved);
    const files: SafetensorsFile[] = [];
    try {
      const where = new Map<string, SafetensorsFile>();
      for (const shard of [...new Set(Object.values(weightMap))].sort()) {
        const f = await SafetensorsFile.open(path.join(dir, shard));
        files.push(f);
        for (const n of f.names) {
          if (weightMap[n] !== shard) {
            throw new Error(
              `${f.path}: tensor "${n}" is in this shard but ${INDEX_FILE} maps it to ${weightMap[n] ?? 'nothing'}: fix the index`,
            );
          }
          where.set(n, f);
        }
      }
      for (const [n, shard] of Object.entries(weightMap)) {
        if (!where.has(n))
          throw new Error(
            `${resolved}: weight_map lists tensor "${n}" in ${shard}, but that shard does not contain it`,
          );
      }
      return new SafetensorsCheckpoint(resolved, files, where);
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
  }

  /** All tensor names (sorted). */
  get names(): string[] {
    return [...this.where.keys()].sort();
  }

  info(name: string): TensorInfo | undefined {
    return this.where.get(name)?.info(name);
  }

  async read(name: string): Promise<HostTensor> {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.source}: no tensor named "${name}"`);
    return f.read(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

async function resolveCheckpoint(p: string): Promise<string> {
  const st = await stat(p).catch(() => undefined);
  if (!st) throw new Error(`checkpoint not found: ${p}`);
  if (!st.isDirectory()) return p;
  for (const f of [INDEX_FILE, 'model.safetensors']) {
    if (await stat(path.join(p, f)).catch(() => undefined)) return path.join(p, f);
  }
  throw new Error(`${p}: no ${INDEX_FILE} or model.safetensors in this directory`);
}

async function readIndex(file: string): Promise<Record<string, string>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the shard index: ${(e as Error).message}`);
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
    throw new Error(`${file}: missing "weight_map" object`);
  for (const [n, s] of Object.entries(wm)) {
    if (typeof s !== 'string' || s.includes('/') || s.includes('\\') || s.startsWith('.')) {
      throw new Error(
        `${file}: weight_map["${n}"] must be a shard file name in the same folder, got ${JSON.stringify(s)}`,
      );
    }
  }
  return wm as Record<string, string>;
}

/**
 * Reads every tensor of a single file, sharded index, or checkpoint directory into memory.
 * @example const t = await readSafetensors('model.safetensors'); t.get('model.norm.weight')!.data
 */
export async function readSafetensors(pathOrDir: string): Promise<Map<string, HostTensor>> {
  const ck = await SafetensorsCheckpoint.open(pathOrDir);
  try {
    const out = new Map<string, HostTensor>();
    for (const n of ck.names) out.set(n, await ck.read(n));
    return out;
  } finally {
    await ck.close();
  }
}

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

/** Writes one safetensors file atomically (temp file + rename), fetching each tensor's data only when it is written. */
export async function writeSafetensorsFrom(
  file: string,
  tensors: readonly TensorSource[],
  opts: WriteOptions = {},
): Promise<void> {
  const { bytes, order } = buildHeader(tensors, opts);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(bytes);
    for (const name of order) {
      const t = byName.get(name)!;
      const data = await t.data();
      if (HOST_OF(data) !== t.dtype)
        throw new Error(`tensor "${name}": declared ${t.dtype} but data is ${data.constructor.name}`);
      const buf = encode(t, data, opts.dtype ?? 'F32');
      for (let off = 0; off < buf.length; off += CHUNK)
        await fh.write(buf.subarray(off, Math.min(buf.length, off + CHUNK)));
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, file);
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
    await writeFile(tmp, `${JSON.stringify({ metadata: { total_size }, weight_map: sorted }, null, 2)}\n`);
    await rename(tmp, path.join(dir, INDEX_FILE));
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

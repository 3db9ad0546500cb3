// safetensors reading: a lazy single-file reader, a sharded-checkpoint reader (HF `model.safetensors.index.json`),
// and `readSafetensors` (everything into memory). Reads are validated before any large allocation; a malformed file
// gives ONE error naming the file and the tensor. Format and header checks live in safetensors_format.ts.
import { type FileHandle, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { readJsonFile } from './files.js';
import { runFolderHint } from './run_folder.js';
import {
  CHUNK,
  type HostTensor,
  INDEX_FILE,
  MAX_HEADER_BYTES,
  numel,
  parseHeader,
  type TensorInfo,
  widen16InPlace,
} from './safetensors_format.js';

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
  throw new Error(`${p}: no ${INDEX_FILE} or model.safetensors in this directory.${runFolderHint(p)}`);
}

async function readIndex(file: string): Promise<Record<string, string>> {
  const json = await readJsonFile(file, 'shard index');
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

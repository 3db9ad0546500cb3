// safetensors format: shared types, header validation, and the 16-bit float conversions (pure, host-side only).
// Follows huggingface/safetensors: u64 LE header length n, n bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw little-endian data.
// Readers (safetensors_read.ts) and writers (safetensors_write.ts) build on this file; import the public API from
// safetensors.ts. Spec: ../shared/spec/qwen2_5_vl.md §6.2.
import os from 'node:os';

/** A tensor in host memory. Floats are always float32 in memory (F16/BF16 are widened on read). */
export type HostTensor = {
  dtype: 'float32' | 'int32' | 'uint8';
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
};

/** safetensors dtypes this module reads. */
export type StDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
/** Bytes per element of each dtype. */
export const BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };

/** One header entry, validated. `begin`/`end` are absolute file offsets. */
export type TensorInfo = { name: string; dtype: StDtype; shape: number[]; begin: number; end: number };

/** Largest header we accept (the reference implementation uses the same 100 MB limit). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Bytes per read()/write() call (256 MB): fs.read is limited to 2 GB. */
export const CHUNK = 1 << 28;

if (os.endianness() !== 'LE') throw new Error('ovr safetensors io assumes a little-endian host');

/** Element count of a shape. @example numel([2, 3]) // 6 */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

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
export function widen16InPlace(out: Float32Array, kind: 'BF16' | 'F16'): void {
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

/** HF index file name for sharded checkpoints. */
export const INDEX_FILE = 'model.safetensors.index.json';

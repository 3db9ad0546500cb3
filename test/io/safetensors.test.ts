// safetensors: fixture parity (bit-exact bf16 widening), F16/I64 decoding, writer layout, sharding, malformed files.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  f32ToBf16Bits,
  type HostTensor,
  planShards,
  readSafetensors,
  SafetensorsFile,
  shardName,
  writeSafetensors,
  writeSafetensorsDir,
} from '../../src/io/safetensors.js';
import { FIXTURE } from '../helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ovr-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Independent minimal parser used as the reference: header JSON + data section bytes. */
function rawParse(file: string): { header: Record<string, any>; data: Buffer; n: number } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')), data: buf.subarray(8 + n), n };
}

/** Crafts a file from a header (object or raw string) and a data section; `n` overrides the length prefix. */
function craft(name: string, header: unknown, data: Uint8Array | number, n?: number): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(n ?? json.length));
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const file = path.join(tmp, name);
  writeFileSync(file, Buffer.concat([len, json, body]));
  return file;
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

describe('fixture checkpoint', () => {
  it('BF16 tensors widen to exactly u16 << 16 (all 80, bit-exact)', async () => {
    const file = path.join(FIXTURE, 'model.safetensors');
    const got = await readSafetensors(file);
    const { header, data } = rawParse(file);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(got.size).toBe(80);
    expect([...got.keys()].sort()).toEqual(names.sort());
    let checked = 0;
    for (const name of names) {
      const {
        dtype,
        shape,
        data_offsets: [b, e],
      } = header[name];
      expect(dtype).toBe('BF16');
      const u16 = new Uint16Array(data.buffer.slice(data.byteOffset + b, data.byteOffset + e));
      const t = got.get(name)!;
      expect(t.shape).toEqual(shape);
      expect(t.dtype).toBe('float32');
      const bits = bitsOf(t.data as Float32Array);
      for (let i = 0; i < u16.length; i++) {
        if (bits[i] !== (u16[i] << 16) >>> 0) throw new Error(`${name}[${i}]: ${bits[i]} != ${u16[i]} << 16`);
      }
      checked += u16.length;
    }
    expect(checked).toBe(9_903_008);
  });

  it('sharded/ reads the same tensors bit-exactly; metadata format pt', async () => {
    const single = await readSafetensors(path.join(FIXTURE, 'model.safetensors'));
    const sharded = await readSafetensors(path.join(FIXTURE, 'sharded'));
    expect([...sharded.keys()].sort()).toEqual([...single.keys()].sort());
    for (const [k, t] of single) {
      expect(Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(sharded.get(k)!.data.buffer)), k).toBe(0);
    }
    const f = await SafetensorsFile.open(path.join(FIXTURE, 'model.safetensors'));
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.info('model.norm.weight')?.shape).toEqual([64]);
    await f.close();
  });

  it('reads I32 and F32 tensors of the case files', async () => {
    const c = await readSafetensors(path.join(FIXTURE, 'common.safetensors'));
    expect(c.get('logit_columns')!.dtype).toBe('int32');
    expect(c.get('logit_columns')!.shape).toEqual([512]);
    expect(c.get('text.rope_inv_freq')!.data[0]).toBe(1); // theta^0
  });
});

describe('decoding', () => {
  it('F16: normals, subnormals, +-0, +-inf, NaN', async () => {
    const h = [0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555];
    const want = [
      1,
      -2,
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      65504,
      Infinity,
      -Infinity,
      NaN,
      -0,
      0.333251953125,
    ];
    const file = craft(
      'f16.safetensors',
      { x: { dtype: 'F16', shape: [h.length], data_offsets: [0, 2 * h.length] } },
      new Uint8Array(new Uint16Array(h).buffer),
    );
    const t = (await readSafetensors(file)).get('x')!;
    expect(Array.from(t.data)).toEqual(want);
    expect(Object.is(t.data[9], -0)).toBe(true);
  });

  it('I64 -> int32, and out-of-range I64 is rejected naming the tensor', async () => {
    const ok = craft(
      'i64.safetensors',
      { ids: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } },
      new Uint8Array(new BigInt64Array([-5n, 2147483647n, -2147483648n]).buffer),
    );
    const t = (await readSafetensors(ok)).get('ids')!;
    expect(t.dtype).toBe('int32');
    expect(Array.from(t.data)).toEqual([-5, 2147483647, -2147483648]);
    const bad = craft(
      'i64big.safetensors',
      { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } },
      new Uint8Array(new BigInt64Array([1n, 2147483648n]).buffer),
    );
    expect(await errorOf(readSafetensors(bad))).toMatch(
      /i64big\.safetensors: tensor "ids": I64 value 2147483648 at flat index 1 does not fit in int32/,
    );
  });

  it('U8 and zero-sized tensors', async () => {
    const file = craft(
      'u8.safetensors',
      {
        a: { dtype: 'U8', shape: [2, 2], data_offsets: [0, 4] },
        e: { dtype: 'F32', shape: [0, 3], data_offsets: [4, 4] },
      },
      new Uint8Array([1, 2, 3, 255]),
    );
    const m = await readSafetensors(file);
    expect(m.get('a')).toEqual({ dtype: 'uint8', shape: [2, 2], data: new Uint8Array([1, 2, 3, 255]) });
    expect(m.get('e')!.data.length).toBe(0);
  });
});

describe('writer', () => {
  it('BF16 rounds to nearest even, keeps NaN, signed zero and inf', () => {
    const x = new Float32Array([
      1,
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      1 + 2 ** -8 + 2 ** -20,
      -0,
      Infinity,
      3.4028234663852886e38,
      NaN,
      -1.5,
    ]);
    const got = Array.from(f32ToBf16Bits(x));
    // 1+2^-8 is halfway between 0x3f80 and 0x3f81 -> even 0x3f80; 1+3*2^-8 halfway 0x3f81/0x3f82 -> 0x3f82; f32 max -> inf.
    expect(got.slice(0, 7).concat(got.slice(8))).toEqual([
      0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x8000, 0x7f80, 0x7f80, 0xbfc0,
    ]);
    expect(got[7] & 0x7f80).toBe(0x7f80);
    expect(got[7] & 0x7f).not.toBe(0);
  });

  it('layout: sorted names, __metadata__ format pt, header padded with spaces to 8, contiguous offsets', async () => {
    const file = path.join(tmp, 'layout.safetensors');
    await writeSafetensors(
      file,
      {
        zeta: { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) },
        alpha: { dtype: 'int32', shape: [1, 2], data: new Int32Array([7, -8]) },
        mid: { dtype: 'uint8', shape: [1], data: new Uint8Array([9]) },
      },
      { metadata: { step: '3' } },
    );
    const { header, n } = rawParse(file);
    const text = readFileSync(file)
      .subarray(8, 8 + n)
      .toString('utf8');
    expect(n % 8).toBe(0);
    expect(text).toMatch(/^\{"__metadata__":\{"format":"pt","step":"3"\},"alpha".*"mid".*"zeta".*\} *$/);
    expect(header.alpha).toEqual({ dtype: 'I32', shape: [1, 2], data_offsets: [0, 8] });
    expect(header.mid).toEqual({ dtype: 'U8', shape: [1], data_offsets: [8, 9] });
    expect(header.zeta).toEqual({ dtype: 'F32', shape: [3], data_offsets: [9, 21] });
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('F32 round-trips bit-exactly (NaN, -0, inf, subnormal); BF16 round-trips bf16-exact values', async () => {
    const x = new Float32Array([0.1, -0, Infinity, NaN, 1e-45, -3.5e38, 123.456]);
    const f = path.join(tmp, 'f32.safetensors');
    await writeSafetensors(f, new Map([['x', { dtype: 'float32', shape: [7], data: x } as HostTensor]]));
    expect(Array.from(bitsOf((await readSafetensors(f)).get('x')!.data as Float32Array))).toEqual(
      Array.from(bitsOf(x)),
    );
    const y = new Float32Array([1.5, -2.25, 0.0078125, -0]);
    const g = path.join(tmp, 'bf16.safetensors');
    await writeSafetensors(g, { y: { dtype: 'float32', shape: [2, 2], data: y } }, { dtype: 'BF16' });
    expect(rawParse(g).header.y.dtype).toBe('BF16');
    expect(Array.from(bitsOf((await readSafetensors(g)).get('y')!.data as Float32Array))).toEqual(
      Array.from(bitsOf(y)),
    );
  });

  it('rejects data that does not match the shape', async () => {
    const msg = await errorOf(
      writeSafetensors(path.join(tmp, 'bad.safetensors'), {
        w: { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) },
      }),
    );
    expect(msg).toContain('tensor "w": data has 3 values but shape [2,2] needs 4');
  });

  it('shards above maxShardBytes with HF names + index; rewriting as one file removes stale shards', async () => {
    const dir = path.join(tmp, 'sharded');
    const mk = (n: number, v: number) => ({
      dtype: 'float32' as const,
      shape: [n],
      data: new Float32Array(n).fill(v),
    });
    const ts = { a: mk(10, 1), b: mk(10, 2), c: mk(30, 3), d: mk(5, 4) };
    const src = Object.entries(ts).map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      data: async () => t.data,
    }));
    const files = await writeSafetensorsDir(dir, src, { maxShardBytes: 80 });
    expect(files).toEqual([
      shardName(0, 3),
      shardName(1, 3),
      shardName(2, 3),
      'model.safetensors.index.json',
    ]);
    expect(shardName(0, 3)).toBe('model-00001-of-00003.safetensors');
    const index = JSON.parse(readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(55 * 4);
    expect(index.weight_map).toEqual({
      a: shardName(0, 3),
      b: shardName(0, 3),
      c: shardName(1, 3),
      d: shardName(2, 3),
    });
    const back = await readSafetensors(dir);
    for (const [k, t] of Object.entries(ts)) expect(back.get(k)!.data, k).toEqual(t.data);
    await writeSafetensorsDir(dir, src, { dtype: 'BF16' });
    expect(readdirSync(dir).sort()).toEqual(['model.safetensors']);
    expect((await readSafetensors(dir)).get('c')!.data).toEqual(ts.c.data);
  });

  it('planShards: a tensor bigger than the limit gets its own shard', () => {
    const s = planShards(
      [
        { name: 'b', bytes: 50 },
        { name: 'a', bytes: 500 },
        { name: 'c', bytes: 60 },
      ],
      100,
    );
    expect(s).toEqual([['a'], ['b'], ['c']]);
    expect(planShards([], 10)).toEqual([[]]);
  });
});

describe('malformed files give one clear error naming file and tensor', () => {
  const t = (dtype: string, shape: number[], off: number[]) => ({ dtype, shape, data_offsets: off });
  const cases: [string, () => string, RegExp][] = [
    [
      'too short',
      () => {
        const f = path.join(tmp, 'short.safetensors');
        writeFileSync(f, Buffer.from([1, 2, 3]));
        return f;
      },
      /short\.safetensors: only 3 bytes: too short/,
    ],
    [
      'header length past EOF',
      () => craft('pasteof.safetensors', { x: t('F32', [1], [0, 4]) }, 4, 5000),
      /pasteof\.safetensors: header length 5000 runs past the end of the file/,
    ],
    [
      'header > 100 MB',
      () => craft('huge.safetensors', '{}', 0, 2 ** 40),
      /huge\.safetensors: header length 1099511627776 exceeds the 100000000-byte limit/,
    ],
    [
      'non-JSON header',
      () => craft('nonjson.safetensors', '{"x": {dtype', 0),
      /nonjson\.safetensors: header is not valid UTF-8 JSON/,
    ],
    [
      'header not an object',
      () => craft('arr.safetensors', '[1,2]', 0),
      /arr\.safetensors: safetensors header must be a JSON object/,
    ],
    [
      'unknown dtype',
      () => craft('dtype.safetensors', { w: t('Q4', [2], [0, 1]) }, 1),
      /dtype\.safetensors: tensor "w": unsupported dtype "Q4"/,
    ],
    [
      'shape/offset byte-count mismatch',
      () => craft('count.safetensors', { w: t('F32', [2, 3], [0, 20]) }, 20),
      /count\.safetensors: tensor "w": shape \[2,3\] x F32 needs 24 bytes but data_offsets \[0, 20\] span 20/,
    ],
    [
      'overlapping offsets',
      () => craft('overlap.safetensors', { a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, 12),
      /overlap\.safetensors: tensor "b": data_offsets \[4, 12\] overlap tensor "a"/,
    ],
    [
      'out-of-range offsets',
      () => craft('range.safetensors', { a: t('F32', [2], [0, 8]), b: t('F32', [1000000], [8, 4000008]) }, 8),
      /range\.safetensors: tensor "b": data_offsets \[8, 4000008\] run past the data section \(8 bytes\)/,
    ],
    [
      'non-contiguous data (gap)',
      () => craft('gap.safetensors', { a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, 12),
      /gap\.safetensors: tensor "b": data is not contiguous: gap of 4 bytes/,
    ],
    [
      'trailing bytes',
      () => craft('trail.safetensors', { a: t('F32', [1], [0, 4]) }, 9),
      /trail\.safetensors: 5 trailing bytes after the last tensor "a"/,
    ],
    [
      'bad offsets',
      () => craft('neg.safetensors', { a: t('F32', [1], [4, 0]) }, 4),
      /neg\.safetensors: tensor "a": data_offsets \[4,0\] must be \[begin, end\]/,
    ],
    [
      'bad shape',
      () => craft('shape.safetensors', { a: t('F32', [-1], [0, 4]) }, 4),
      /shape\.safetensors: tensor "a": shape \[-1\] must be a list of non-negative integers/,
    ],
    [
      'bad metadata',
      () => craft('meta.safetensors', { __metadata__: { step: 3 } }, 0),
      /meta\.safetensors: __metadata__\.step must be a string/,
    ],
  ];
  for (const [label, make, re] of cases) {
    it(label, async () => {
      const msg = await errorOf(readSafetensors(make()));
      expect(msg).toMatch(re);
      expect(msg.split('\n')).toHaveLength(1);
    });
  }

  it('missing file and empty directory', async () => {
    expect(await errorOf(readSafetensors(path.join(tmp, 'nope.safetensors')))).toMatch(
      /checkpoint not found: .*nope\.safetensors/,
    );
    const empty = mkdtempSync(path.join(tmp, 'empty-'));
    expect(await errorOf(readSafetensors(empty))).toMatch(
      /no model\.safetensors\.index\.json or model\.safetensors in this directory/,
    );
  });

  it('index that names a tensor its shard lacks, or a shard with unlisted tensors', async () => {
    const dir = mkdtempSync(path.join(tmp, 'idx-'));
    await writeSafetensors(path.join(dir, 'model-00001-of-00001.safetensors'), {
      a: { dtype: 'float32', shape: [1], data: new Float32Array(1) },
    });
    const idx = (wm: object) =>
      writeFileSync(
        path.join(dir, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: {}, weight_map: wm }),
      );
    idx({ a: 'model-00001-of-00001.safetensors', b: 'model-00001-of-00001.safetensors' });
    expect(await errorOf(readSafetensors(dir))).toMatch(
      /weight_map lists tensor "b" in model-00001-of-00001\.safetensors, but that shard does not contain it/,
    );
    idx({ z: 'model-00001-of-00001.safetensors' });
    expect(await errorOf(readSafetensors(dir))).toMatch(
      /tensor "a" is in this shard but model\.safetensors\.index\.json maps it to nothing/,
    );
    idx({ a: '../evil.safetensors' });
    expect(await errorOf(readSafetensors(dir))).toMatch(
      /weight_map\["a"\] must be a shard file name in the same folder/,
    );
  });
});

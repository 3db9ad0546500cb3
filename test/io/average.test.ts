// Checkpoint / adapter averaging: identical inputs give the input back bit for bit, two different inputs give the
// elementwise mean (expected values computed here from the input arrays, rounded once to f32), weights, sharded
// inputs, BF16 inputs, adapters, and clear errors (key, shape, kind, config) that write nothing.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/index.js';
import { averageCheckpoints, normaliseWeights } from '../../src/io/average.js';
import {
  type HostTensor,
  readSafetensors,
  writeSafetensors,
  writeSafetensorsDir,
} from '../../src/io/safetensors.js';
import { Rng } from '../../src/util/rng.js';
import { capture } from '../cli/run.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ovr-avg-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Spec = Record<string, number[]>;
const SPEC: Spec = {
  'model.norm.weight': [8],
  'model.layers.0.mlp.up_proj.weight': [6, 8],
  'lm_head.weight': [5, 8],
};

function randomTensors(seed: number, spec: Spec = SPEC): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [n, shape] of Object.entries(spec)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 3;
    out.set(n, { dtype: 'float32', shape, data });
  }
  return out;
}

async function writeCkpt(
  name: string,
  t: Map<string, HostTensor>,
  cfg: object = { hidden_size: 8 },
): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), t);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

describe('averageCheckpoints', () => {
  it('of two identical checkpoints equals the checkpoint, bit for bit, and copies config.json', async () => {
    const t = randomTensors(1);
    const a = await writeCkpt('same-a', t);
    const b = await writeCkpt('same-b', t);
    const rep = await averageCheckpoints([a, b], path.join(tmp, 'same-out'));
    expect(rep).toMatchObject({ kind: 'checkpoint', tensors: 3, params: 8 + 48 + 40, weights: [0.5, 0.5] });
    const got = await readSafetensors(path.join(tmp, 'same-out'));
    for (const [n, x] of t) expect(got.get(n)?.data).toEqual(x.data);
    expect(JSON.parse(readFileSync(path.join(tmp, 'same-out', 'config.json'), 'utf8'))).toEqual({
      hidden_size: 8,
    });
  });

  it('of two different checkpoints is the elementwise mean, exact in f32 (a sharded input too)', async () => {
    const ta = randomTensors(2);
    const tb = randomTensors(3);
    const a = await writeCkpt('diff-a', ta);
    const bDir = path.join(tmp, 'diff-b');
    const sources = [...tb].map(([name, x]) => ({
      name,
      dtype: x.dtype,
      shape: x.shape,
      data: async () => x.data,
    }));
    const shards = await writeSafetensorsDir(bDir, sources, { maxShardBytes: 200 });
    expect(shards.length).toBeGreaterThan(2); // index + shards: the sharded reader path is used
    writeFileSync(path.join(bDir, 'config.json'), JSON.stringify({ hidden_size: 8, torch_dtype: 'float32' }));
    await averageCheckpoints([a, bDir], path.join(tmp, 'diff-out'));
    const got = await readSafetensors(path.join(tmp, 'diff-out'));
    let maxErr = 0;
    for (const [n, x] of ta) {
      const y = tb.get(n)!.data;
      const want = Float32Array.from(x.data, (v, i) => Math.fround((v + y[i]) / 2));
      expect(got.get(n)?.data).toEqual(want);
      // the mean differs from both inputs (the test is not vacuous)
      expect(got.get(n)?.data).not.toEqual(x.data);
      for (let i = 0; i < want.length; i++)
        maxErr = Math.max(maxErr, Math.abs(got.get(n)!.data[i] - want[i]));
    }
    console.log(`average of two: max |diff| vs exact f32 mean = ${maxErr}`);
  });

  it('with weights computes sum w_i x_i / sum w_i; bf16 inputs are widened, bf16 output rounds', async () => {
    const ta = randomTensors(4);
    const tb = randomTensors(5);
    const a = await writeCkpt('w-a', ta);
    const b = await writeCkpt('w-b', tb);
    await averageCheckpoints([a, b], path.join(tmp, 'w-out'), { weights: [1, 3] });
    const got = await readSafetensors(path.join(tmp, 'w-out'));
    for (const [n, x] of ta) {
      const y = tb.get(n)!.data;
      expect(got.get(n)?.data).toEqual(
        Float32Array.from(x.data, (v, i) => Math.fround(0.25 * v + 0.75 * y[i])),
      );
    }
    await averageCheckpoints([a, b], path.join(tmp, 'w-bf16'), { dtype: 'BF16' });
    const bf = await readSafetensors(path.join(tmp, 'w-bf16'));
    expect(bf.get('lm_head.weight')?.shape).toEqual([5, 8]);
    // bf16 keeps 8 bits of mantissa: relative error <= 2^-8 against the f32 mean
    const exact = Float32Array.from(
      ta.get('lm_head.weight')!.data,
      (v, i) => (v + tb.get('lm_head.weight')!.data[i]) / 2,
    );
    bf.get('lm_head.weight')!.data.forEach((v, i) => {
      expect(Math.abs(v - exact[i])).toBeLessThanOrEqual(Math.abs(exact[i]) * 2 ** -8);
    });
  });

  it('averages PEFT adapter folders and copies adapter_config.json', async () => {
    const spec = {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [2, 8],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [8, 2],
    };
    const mk = async (name: string, seed: number) => {
      const dir = path.join(tmp, name);
      await mkdir(dir, { recursive: true });
      const t = randomTensors(seed, spec);
      await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), t);
      writeFileSync(
        path.join(dir, 'adapter_config.json'),
        JSON.stringify({
          peft_type: 'LORA',
          r: 2,
          lora_alpha: 4,
          target_modules: ['q_proj'],
          base_model_name_or_path: name,
        }),
      );
      return { dir, t };
    };
    const a = await mk('ad-a', 6);
    const b = await mk('ad-b', 7);
    const rep = await averageCheckpoints([a.dir, b.dir], path.join(tmp, 'ad-out'));
    expect(rep.kind).toBe('adapter');
    expect(rep.files).toEqual(['adapter_model.safetensors', 'adapter_config.json']);
    const got = await readSafetensors(path.join(tmp, 'ad-out', 'adapter_model.safetensors'));
    for (const [n, x] of a.t) {
      const y = b.t.get(n)!.data;
      expect(got.get(n)?.data).toEqual(Float32Array.from(x.data, (v, i) => Math.fround((v + y[i]) / 2)));
    }
    const c = await mk('ad-c', 8);
    writeFileSync(
      path.join(c.dir, 'adapter_config.json'),
      JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 4, target_modules: ['q_proj'] }),
    );
    await expect(averageCheckpoints([a.dir, c.dir], path.join(tmp, 'ad-bad'))).rejects.toThrow(
      /ad-c\/adapter_config.json differs/,
    );
    await expect(
      averageCheckpoints([a.dir, await writeCkpt('ck-x', randomTensors(1))], path.join(tmp, 'mix')),
    ).rejects.toThrow(/ck-x is a checkpoint folder but .*ad-a is an adapter folder/);
  });

  it('names the key and the file on mismatched keys or shapes, and writes nothing', async () => {
    const a = await writeCkpt('m-a', randomTensors(1));
    const extra = randomTensors(1, { ...SPEC, 'model.extra.weight': [2] });
    const b = await writeCkpt('m-b', extra);
    const out = path.join(tmp, 'm-out');
    await expect(averageCheckpoints([a, b], out)).rejects.toThrow(
      /tensor "model.extra.weight" is in .*m-b\/model.safetensors but not in .*m-a\/model.safetensors/,
    );
    const shaped = randomTensors(1, { ...SPEC, 'lm_head.weight': [4, 8] });
    const c = await writeCkpt('m-c', shaped);
    await expect(averageCheckpoints([a, c], out)).rejects.toThrow(
      /tensor "lm_head.weight" has shape \[5,8\] in .*m-a.* but \[4,8\] in .*m-c/,
    );
    const missing = randomTensors(1, { 'model.norm.weight': [8], 'lm_head.weight': [5, 8] });
    const d = await writeCkpt('m-d', missing);
    await expect(averageCheckpoints([a, d], out)).rejects.toThrow(
      /"model.layers.0.mlp.up_proj.weight" is in .*m-a.* but missing from .*m-d/,
    );
    const e = await writeCkpt('m-e', randomTensors(1), { hidden_size: 16 });
    await expect(averageCheckpoints([a, e], out)).rejects.toThrow(/m-e\/config.json differs/);
    expect(existsSync(out)).toBe(false);
  });

  it('checks the weights', () => {
    expect(normaliseWeights(2, [1, 3])).toEqual([0.25, 0.75]);
    expect(() => normaliseWeights(3, [1, 2])).toThrow(/2 weights for 3 inputs/);
    expect(() => normaliseWeights(2, [1, -1])).toThrow(/weight 2 is -1/);
    expect(() => normaliseWeights(2, [0, 0])).toThrow(/sum to 0/);
  });
});

describe('ovr-train average', () => {
  it('averages positional folders with --out and --weights, and rejects a single input', async () => {
    const a = await writeCkpt('cli-a', randomTensors(10));
    const b = await writeCkpt('cli-b', randomTensors(11));
    const out = path.join(tmp, 'cli-out');
    const r = await capture(() => main(['average', '--out', out, a, '--weights', '3,1', b]));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/averaged 2 checkpoints \(weights 0.7500, 0.2500\): 3 tensors, 96 values/);
    const one = await capture(() => main(['average', '--out', out, a]));
    expect(one.code).toBe(2);
    expect(one.err).toMatch(/at least two checkpoint folders/);
    const bad = await capture(() => main(['average', '--out', out, '--dtype', 'f16', a, b]));
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--dtype/);
  });
});

// LoRA adapter sync against a real `ovr-train serve` process on loopback (tiny random model in F32, cpu backend on both
// sides): a random adapter with nonzero B, saved in PEFT layout, loaded at runtime through /load_lora_adapter (sglang
// client, lora_path per request) and /v1/load_lora_adapter (vllm client, model = adapter name), gives exactly the
// ids and log-probs of the in-process model with that adapter attached; requests that name no adapter get the base
// model; a broken folder is refused with 400 naming the problem while the previous adapter keeps serving; and
// `serve --adapter DIR` serves the adapter from the start.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { processor } from '../../src/data/processor.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import { attachAdapter, detachAdapter, type LoraAdapter } from '../../src/model/lora.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, saveAdapter } from '../../src/model/peft.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { saveWeights } from '../../src/model/weights.js';
import { LocalEngine } from '../../src/rollout/local.js';
import { SglangEngine } from '../../src/rollout/sglang.js';
import type { RolloutRequest, RolloutResult, RolloutSampling } from '../../src/rollout/types.js';
import { VllmEngine } from '../../src/rollout/vllm.js';
import { randomAdapter, sampling } from './helpers.js';
import { type Proc, startServe } from './procs.js';

let dir: string;
let server: Proc | undefined;
let model: Qwen2_5_VL;
let tok: QwenTokenizer;
let local: LocalEngine;
let lora: LoraAdapter;
let reqs: RolloutRequest[];

/** Max |Δ log-prob| between two results with the same ids (ids and finish reasons must match). */
function maxDiff(got: RolloutResult, want: RolloutResult): number {
  expect(got.samples.map((s) => s.tokens)).toEqual(want.samples.map((s) => s.tokens));
  expect(got.samples.map((s) => s.finishReason)).toEqual(want.samples.map((s) => s.finishReason));
  return Math.max(
    0,
    ...got.samples.flatMap((s, r) => s.logprobs.map((l, t) => Math.abs(l - want.samples[r].logprobs[t]))),
  );
}

function expectSame(got: RolloutResult, want: RolloutResult, label: string): void {
  const d = maxDiff(got, want);
  console.log(`${label}: ${got.samples.length} rows, max |logprob diff| vs local ${d}`);
  expect(d).toBe(0);
}

/** The local engine's rows with `a` attached (or the base model without). */
async function localWith(a: LoraAdapter | null, s: RolloutSampling): Promise<RolloutResult> {
  if (!a) return local.generate(reqs, s);
  attachAdapter(model.params, a);
  try {
    return await local.generate(reqs, s);
  } finally {
    detachAdapter(model.params);
  }
}

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ovr-adapter-'));
  model = await loadModel('tiny', { seed: 0 });
  await saveWeights(path.join(dir, 'base'), model.params, model.config, { dtype: 'F32' });
  lora = randomAdapter(model, 1);
  await saveAdapter(path.join(dir, 'lora1'), lora);
  tok = await defaultTokenizer();
  local = new LocalEngine({ model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
  const enc = async (q: string) =>
    (await processor([[{ role: 'user', content: q }]], { tokenizer: tok, addGenerationPrompt: true }))
      .inputIds[0];
  reqs = [{ promptIds: await enc('What is 2+3?') }, { promptIds: await enc('Name a colour.') }];
  server = await startServe(path.join(dir, 'base'), { extra: ['--quiet'] });
}, 180_000);

afterAll(async () => {
  await server?.kill();
  lora?.dispose();
  model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('LoRA adapter sync to ovr-train serve', () => {
  it('sglang client: base before, exactly the adapter after /load_lora_adapter; no lora_path = base', async () => {
    const url = (server as Proc).url;
    const engine = new SglangEngine({ url });
    const s = sampling();
    const g = sampling({ temperature: 0, n: 1, maxNewTokens: 5 });
    expectSame(await engine.generate(reqs, s), await localWith(null, s), 'sglang base');
    await engine.syncWeights({ dir: path.join(dir, 'lora1'), kind: 'adapter', version: 1 });
    expect(engine.servedVersion).toBe(1);
    for (const x of [s, g]) {
      const got = await engine.generate(reqs, x);
      expect(got.version).toBe(1);
      expectSame(got, await localWith(lora, x), `sglang adapter T=${x.temperature}`);
    }
    // the adapter changes the greedy first token's log-prob measurably
    const baseG = await localWith(null, g);
    const adapted = (await engine.generate(reqs, g)).samples.map((r) => r.logprobs[0]);
    const dl = Math.max(...adapted.map((l, i) => Math.abs(l - baseG.samples[i].logprobs[0])));
    console.log(`first-token logprob change from the adapter: ${dl}`);
    expect(dl).toBeGreaterThan(1e-3);
    // a request naming no adapter still gets the base model
    expectSame(
      await new SglangEngine({ url }).generate(reqs, s),
      await localWith(null, s),
      'sglang no lora_path',
    );
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(['base', 'policy-v1']);
    const unknown = await post(`${url}/generate`, { input_ids: reqs[0].promptIds, lora_path: 'nope' });
    expect(unknown.status, JSON.stringify(unknown.json)).toBe(404);
    expect(JSON.stringify(unknown.json)).toContain("'nope' is not served here");
  });

  it('a broken adapter folder is refused with 400 naming the problem; the previous adapter keeps serving', async () => {
    const url = (server as Proc).url;
    const s = sampling();
    const want = await localWith(lora, s);
    const wrongRank = path.join(dir, 'wrong-rank');
    await mkdir(wrongRank);
    await copyFile(path.join(dir, 'lora1', ADAPTER_WEIGHTS), path.join(wrongRank, ADAPTER_WEIGHTS));
    const cfg = JSON.parse(await readFile(path.join(dir, 'lora1', ADAPTER_CONFIG), 'utf8'));
    await writeFile(path.join(wrongRank, ADAPTER_CONFIG), JSON.stringify({ ...cfg, r: 8 }));
    const missing = path.join(dir, 'missing-weights');
    await mkdir(missing);
    await copyFile(path.join(dir, 'lora1', ADAPTER_CONFIG), path.join(missing, ADAPTER_CONFIG));
    for (const [bad, what] of [
      [wrongRank, /mis-shaped: .*lora_A\.weight \[4,\d+\], want \[8,\d+\] \(r 8\)/],
      [missing, /adapter_model\.safetensors/],
      [path.join(dir, 'nowhere'), /adapter_config\.json not found/],
    ] as const) {
      const r = await post(`${url}/load_lora_adapter`, { lora_name: 'bad', lora_path: bad });
      console.log(`refused ${path.basename(bad)}: HTTP ${r.status} ${String(r.json.message).slice(0, 200)}`);
      expect(r.status).toBe(400);
      expect(r.json.success).toBe(false);
      expect(String(r.json.message)).toMatch(what);
      expect(String(r.json.message)).toContain(bad);
      expect(String(r.json.message)).toContain('still serving adapter policy-v1');
    }
    const engine = new VllmEngine({ url, model: 'policy-v1' });
    expectSame(await engine.generate(reqs, s), want, 'after refused loads (vllm, model policy-v1)');
  });

  it('vllm client: /v1/load_lora_adapter replaces the adapter; model = its name gives exactly its rows', async () => {
    const url = (server as Proc).url;
    const second = randomAdapter(model, 2);
    try {
      await saveAdapter(path.join(dir, 'lora2'), second);
      const engine = new VllmEngine({ url });
      const s = sampling();
      expectSame(await engine.generate(reqs, s), await localWith(null, s), 'vllm base');
      await engine.syncWeights({ dir: path.join(dir, 'lora2'), kind: 'adapter', version: 2 });
      expectSame(await engine.generate(reqs, s), await localWith(second, s), 'vllm adapter 2');
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['base', 'policy-v2']);
      // one adapter at a time: the first is gone
      const old = await post(`${url}/v1/completions`, { model: 'policy-v1', prompt: reqs[0].promptIds });
      expect(old.status).toBe(404);
      // unloading a replaced name is a no-op; unloading the current one serves the base model only
      expect((await post(`${url}/v1/unload_lora_adapter`, { lora_name: 'policy-v1' })).json.success).toBe(
        true,
      );
      expect((await post(`${url}/v1/unload_lora_adapter`, { lora_name: 'policy-v2' })).json.message).toBe(
        'unloaded adapter policy-v2',
      );
      const after = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(after.data.map((m) => m.id)).toEqual(['base']);
      const same = await post(`${url}/load_lora_adapter`, {
        lora_name: 'base',
        lora_path: path.join(dir, 'lora2'),
      });
      expect(same.status).toBe(400);
    } finally {
      second.dispose();
    }
  });

  it('serve --adapter DIR serves the adapter from the start (requests that name it)', async () => {
    const other = await startServe(path.join(dir, 'base'), {
      extra: ['--quiet', '--adapter', path.join(dir, 'lora1'), '--adapter-name', 'mine'],
    });
    try {
      const s = sampling();
      const engine = new VllmEngine({ url: other.url, model: 'mine' });
      expectSame(
        await engine.generate(reqs, s),
        await localWith(lora, s),
        'serve --adapter (vllm, model mine)',
      );
      const viaSglang = await post(`${other.url}/generate`, {
        input_ids: reqs[0].promptIds,
        sampling_params: { max_new_tokens: 3, temperature: 0 },
        return_logprob: true,
        lora_path: 'mine',
      });
      const g = sampling({ temperature: 0, n: 1, maxNewTokens: 3 });
      const want = await localWith(lora, g);
      const lp = (viaSglang.json.meta_info as { output_token_logprobs: number[][] }).output_token_logprobs;
      expect(lp.map((x) => x[0])).toEqual(want.samples[0].logprobs);
    } finally {
      await other.kill();
    }
  }, 180_000);
});

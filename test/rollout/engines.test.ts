// Rollout clients against a real `ovr-train serve` process on loopback (tiny random model saved in F32, cpu backend on
// both sides): the sglang and vllm clients return exactly the ids and log-probs of the in-process engine for the
// same seed (text and image prompts); a weight update written to disk and synced changes the server's log-probs
// exactly as the trainer's model changes; plain-text chat completions (the LLM-judge use) work.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { processor } from '../../src/data/processor.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { saveWeights } from '../../src/model/weights.js';
import { LocalEngine } from '../../src/rollout/local.js';
import { SglangEngine } from '../../src/rollout/sglang.js';
import type { RolloutRequest, RolloutResult } from '../../src/rollout/types.js';
import { VllmEngine } from '../../src/rollout/vllm.js';
import { FIXTURE } from '../helpers.js';
import { sampling } from './helpers.js';
import { type Proc, startServe } from './procs.js';

let dir: string;
let server: Proc;
let model: Qwen2_5_VL;
let tok: QwenTokenizer;
let local: LocalEngine;

const IMAGE = path.join(FIXTURE, 'images', 'img_h56_w84.png');

async function textRequest(q: string): Promise<RolloutRequest> {
  const enc = await processor([[{ role: 'user', content: q }]], {
    tokenizer: tok,
    addGenerationPrompt: true,
  });
  return { promptIds: enc.inputIds[0] };
}

async function imageRequest(q: string): Promise<RolloutRequest> {
  const msgs = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: q }] }];
  const enc = await processor([msgs], { tokenizer: tok, addGenerationPrompt: true, images: [IMAGE] });
  return {
    promptIds: enc.inputIds[0],
    pixels: { data: enc.pixelValues as Float32Array, gridThw: enc.imageGridThw ?? [] },
    images: [IMAGE],
  };
}

function expectSame(got: RolloutResult, want: RolloutResult, label: string): void {
  expect(
    got.samples.map((s) => s.tokens),
    `${label}: ids`,
  ).toEqual(want.samples.map((s) => s.tokens));
  expect(
    got.samples.map((s) => s.finishReason),
    `${label}: finish`,
  ).toEqual(want.samples.map((s) => s.finishReason));
  const d = Math.max(
    0,
    ...got.samples.flatMap((s, r) => s.logprobs.map((l, t) => Math.abs(l - want.samples[r].logprobs[t]))),
  );
  console.log(`${label}: ${got.samples.length} rows, max |logprob diff| vs local ${d}`);
  expect(d).toBe(0);
}

beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ovr-rollout-'));
  model = await loadModel('tiny', { seed: 0 });
  await saveWeights(path.join(dir, 'v0'), model.params, model.config, { dtype: 'F32' });
  tok = await defaultTokenizer();
  local = new LocalEngine({ model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
  server = await startServe(path.join(dir, 'v0'));
}, 180_000);

afterAll(async () => {
  await server?.kill();
  model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rollout engines vs ovr-train serve', () => {
  it('sglang client: sampled and greedy rows equal the local engine (text, batch of 2 x n 2)', async () => {
    const reqs = [await textRequest('What is 2+3?'), await textRequest('Name a colour.')];
    const engine = new SglangEngine({ url: server.url });
    for (const s of [
      sampling(),
      sampling({ temperature: 0, n: 1 }),
      sampling({ topK: 5, topP: 0.9, temperature: 0.7 }),
    ]) {
      const want = await local.generate(reqs, s);
      const got = await engine.generate(reqs, s);
      expect(got.version).toBe(0);
      expectSame(got, want, `sglang T=${s.temperature} topK=${s.topK ?? 0}`);
    }
  });

  it('sglang client with processor_output image inputs equals the local engine', async () => {
    const reqs = [await imageRequest('What colour is this?'), await textRequest('Hi')];
    const s = sampling({ maxNewTokens: 4 });
    expectSame(
      await new SglangEngine({ url: server.url }).generate(reqs, s),
      await local.generate(reqs, s),
      'sglang image',
    );
  });

  it('vllm client: token-id completions and an image chat equal the local engine', async () => {
    const engine = new VllmEngine({ url: server.url, decode: (ids) => tok.decode(ids) });
    const text = [await textRequest('What is 2+3?'), await textRequest('Name a colour.')];
    const s = sampling();
    expectSame(await engine.generate(text, s), await local.generate(text, s), 'vllm completions');
    // one image prompt per chat call: its rows equal the local engine's for that prompt alone
    const img = [await imageRequest('What colour is this?')];
    expectSame(await engine.generate(img, s), await local.generate(img, s), 'vllm chat image');
  });

  it('plain-text chat completions (judge use): max_tokens, temperature, seed; same seed, same reply', async () => {
    const ask = async (seed: number) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'v0',
          messages: [
            { role: 'system', content: 'Judge.' },
            { role: 'user', content: 'Is 2+2=4? Answer yes or no.' },
          ],
          max_tokens: 5,
          temperature: 0.8,
          seed,
        }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as {
        choices: { message: { content: string }; finish_reason: string }[];
        usage: { completion_tokens: number };
      };
    };
    const a = await ask(3);
    const b = await ask(3);
    expect(typeof a.choices[0].message.content).toBe('string');
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.usage.completion_tokens).toBeLessThanOrEqual(5);
    const bad = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ messages: [] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('messages');
  });

  it('sync: after an update written to disk and loaded, the served log-probs change exactly as the trainer model', async () => {
    const reqs = [await textRequest('What is 2+3?')];
    const s = sampling({ temperature: 0, n: 1, maxNewTokens: 5 });
    const engine = new SglangEngine({ url: server.url });
    const before = await engine.generate(reqs, s);
    // one real SGD step on the LM loss of a fixed sequence, in the test process (the trainer's side)
    const ids = [...reqs[0].promptIds, ...before.samples[0].tokens];
    tf.tidy(() => {
      const vars = model.variables('lm');
      const { grads } = tf.variableGrads(() => model.loss({ inputIds: [ids] }, [ids]), vars);
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 50)));
    });
    await saveWeights(path.join(dir, 'v1'), model.params, model.config, { dtype: 'F32' });
    const t0 = performance.now();
    await engine.syncWeights({ dir: path.join(dir, 'v1'), kind: 'full', version: 1 });
    console.log(
      `sync of the tiny model (F32, ${(model.variables().reduce((a, v) => a + v.size, 0) / 1e6).toFixed(1)}M params): ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(engine.servedVersion).toBe(1);
    const after = await engine.generate(reqs, s);
    expect(after.version).toBe(1);
    expectSame(after, await local.generate(reqs, s), 'after sync');
    const dl = after.samples[0].logprobs[0] - before.samples[0].logprobs[0];
    console.log(
      `first-token logprob ${before.samples[0].logprobs[0]} -> ${after.samples[0].logprobs[0]} (change ${dl})`,
    );
    expect(Math.abs(dl)).toBeGreaterThan(1e-3);
    // a broken folder is refused and the engine keeps serving version 1
    await expect(
      engine.syncWeights({ dir: path.join(dir, 'missing'), kind: 'full', version: 2 }),
    ).rejects.toThrow(
      /POST \/update_weights_from_disk failed after 1 attempt: HTTP 400: .*still serving version 1/,
    );
    expect(engine.servedVersion).toBe(1);
    expectSame(await engine.generate(reqs, s), after, 'after refused sync');
  });
});

// generate() on the tiny HF fixture: greedy ids and per-step log-probs vs transformers 4.50 (KV cache, 8 new tokens),
// batched (left-padded) == per-prompt, N samples from one prefill == the prompt repeated N times, seeded
// reproducibility, EOS / stop-string / length stopping, input errors and a leak check.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { type GenerateOptions, generate } from '../../src/model/generate.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { Rng } from '../../src/util/rng.js';
import { expectClose, shared } from '../helpers.js';
import {
  type CasesJson,
  caseInputs,
  casesJson,
  fixtureModel,
  get,
  loadCase,
  setupBackend,
} from './fixture.js';

let model: Qwen2_5_VL;
let meta: CasesJson;
let tok: QwenTokenizer;

beforeAll(async () => {
  await setupBackend();
  model = await fixtureModel();
  meta = await casesJson();
  tok = await loadTokenizer(shared('data', 'tokenizer', 'qwen2.5'));
});
afterAll(() => model?.dispose());

const greedy: GenerateOptions = { greedy: true, maxNewTokens: 8 };

describe('generate: HF parity (greedy, KV cache)', () => {
  for (const name of ['text_only_batch', 'one_image'] as const) {
    it(`${name}: ids equal generation.new_tokens and log-probs equal HF's per-step log-softmax`, async () => {
      const inputs = await caseInputs(name, meta.cases[name]);
      const out = await generate(model, inputs, greedy);
      inputs.pixelValues?.dispose();
      const gen = meta.cases[name].generation;
      expect(out.tokens).toEqual(gen?.new_tokens);
      expect(out.finishReasons.every((r) => r === 'length')).toBe(true);
      // expected log-prob = logit[token] - logsumexp, both from the fixture's step tensors [8, B, 512] / [8, B]
      const c = await loadCase(name);
      const cols = get(c, 'generation.step_logits_columns_subset').data;
      const lse = get(c, 'generation.step_logsumexp').data;
      const B = out.tokens.length;
      const expected = out.tokens.map((row, b) =>
        row.map((id, s) => cols[(s * B + b) * 512 + meta.logit_columns.indexOf(id)] - lse[s * B + b]),
      );
      expectClose(out.logprobs.flat(), expected.flat(), 1e-4, `${name} step logprobs`);
    });
  }

  it('batched left-padded greedy equals each prompt alone', async () => {
    const m = meta.cases.text_only_batch;
    const batched = await generate(model, { inputIds: m.input_ids, attentionMask: m.attention_mask }, greedy);
    for (let b = 0; b < m.input_ids.length; b++) {
      const ids = m.input_ids[b].filter((_, t) => m.attention_mask[b][t] === 1);
      const alone = await generate(model, { inputIds: [ids] }, greedy);
      expect(alone.tokens[0]).toEqual(batched.tokens[b]);
      expectClose(alone.logprobs[0], batched.logprobs[b], 1e-5, `prompt ${b} alone vs batched logprobs`);
    }
  });
});

describe('generate: sampling', () => {
  const m = () => meta.cases.text_only_batch;
  const sampling = (seed: number, numSamples = 1, topP = 1): GenerateOptions => ({
    temperature: 1,
    topP, // top-p costs ~60 ms/row on this flat random model; the reproducibility test exercises it
    maxNewTokens: 4,
    numSamples,
    rng: new Rng(seed).split('sampling'),
    eosIds: [],
  });

  it('is reproducible for a seed and differs across seeds', async () => {
    const inputs = { inputIds: m().input_ids, attentionMask: m().attention_mask };
    const a = await generate(model, inputs, sampling(0, 1, 0.95));
    const b = await generate(model, inputs, sampling(0, 1, 0.95));
    const c = await generate(model, inputs, sampling(1, 1, 0.95));
    expect(b.tokens).toEqual(a.tokens);
    expect(b.logprobs).toEqual(a.logprobs);
    expect(c.tokens).not.toEqual(a.tokens);
    expect(a.logprobs.flat().every((x) => x < 0 && Number.isFinite(x))).toBe(true);
  });

  it('N samples from one tiled prefill equal the prompt repeated N times (no shared prefill)', async () => {
    const N = 3;
    const shared1 = await generate(
      model,
      { inputIds: m().input_ids, attentionMask: m().attention_mask },
      sampling(7, N),
    );
    const repeatedIds = m().input_ids.flatMap((r) => Array.from({ length: N }, () => r));
    const repeatedMask = m().attention_mask.flatMap((r) => Array.from({ length: N }, () => r));
    const plain = await generate(
      model,
      { inputIds: repeatedIds, attentionMask: repeatedMask },
      sampling(7, 1),
    );
    expect(shared1.promptIndex).toEqual([0, 0, 0, 1, 1, 1]);
    expect(shared1.tokens).toEqual(plain.tokens);
    expectClose(shared1.logprobs.flat(), plain.logprobs.flat(), 1e-5, 'tiled vs repeated logprobs');
    expect(new Set(shared1.tokens.slice(0, N).map((t) => t.join())).size).toBeGreaterThan(1);
  });
});

describe('generate: stopping', () => {
  it('stops a row on an EOS id (kept) and the others on the budget', async () => {
    const m = meta.cases.text_only_batch;
    const out = await generate(
      model,
      { inputIds: m.input_ids, attentionMask: m.attention_mask },
      { ...greedy, eosIds: [59575] },
    );
    expect(out.tokens[0]).toEqual([59575]);
    expect(out.finishReasons).toEqual(['stop', 'length']);
    expect(out.tokens[1].length).toBe(8);
    expect(out.logprobs.map((l) => l.length)).toEqual([1, 8]);
  });

  it('stops on a stop string in the decoded text and cuts the text after it', async () => {
    const m = meta.cases.text_only_batch;
    const stopText = tok.decode([10833, 10833]);
    const out = await generate(
      model,
      { inputIds: m.input_ids, attentionMask: m.attention_mask },
      { ...greedy, maxNewTokens: 5, stopStrings: [stopText], decode: (ids) => tok.decode(ids) },
    );
    expect(out.finishReasons).toEqual(['length', 'stop']);
    expect(out.tokens[1]).toEqual([10833, 10833]);
    expect(out.texts?.[1]).toBe(stopText);
    expect(out.texts?.[0]).toBe(tok.decode(out.tokens[0]));
  });

  it('rejects right padding, sampling without rng and stop strings without decode', async () => {
    const opts = { ...greedy, maxNewTokens: 1 };
    await expect(generate(model, { inputIds: [[5, 6]], attentionMask: [[1, 0]] }, opts)).rejects.toThrow(
      /not left-padded/,
    );
    await expect(generate(model, { inputIds: [[5, 6]] }, { maxNewTokens: 1 })).rejects.toThrow(
      /needs an rng/,
    );
    await expect(generate(model, { inputIds: [[5]] }, { ...opts, stopStrings: ['x'] })).rejects.toThrow(
      /decode/,
    );
    await expect(generate(model, { inputIds: [[5]] }, { ...opts, numSamples: 0 })).rejects.toThrow(
      /numSamples/,
    );
  });
});

describe('generate: memory', () => {
  it('leaks no tensor (prefill, tiling, decode, early stop)', async () => {
    const m = meta.cases.text_only_batch;
    const inputs = { inputIds: m.input_ids, attentionMask: m.attention_mask };
    await generate(model, inputs, { ...greedy, maxNewTokens: 2 });
    const before = tf.memory().numTensors;
    await generate(model, inputs, {
      temperature: 1,
      maxNewTokens: 4,
      numSamples: 2,
      rng: new Rng(0),
      eosIds: [59575],
    });
    await generate(model, inputs, { ...greedy, maxNewTokens: 3 });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.skipIf(!process.env.OVR_SLOW)('generate: shared-prefill bench (OVR_SLOW=1)', () => {
  it('N samples from one prefill vs N independent runs', async () => {
    const N = 8;
    const ids = Array.from({ length: 256 }, (_, t) => 1000 + ((t * 7919) % 50000));
    const opts = (n: number, seed: number): GenerateOptions => ({
      temperature: 1,
      maxNewTokens: 8,
      numSamples: n,
      rng: new Rng(seed),
      eosIds: [],
    });
    let t0 = performance.now();
    await generate(model, { inputIds: [ids] }, opts(N, 0));
    const sharedMs = performance.now() - t0;
    t0 = performance.now();
    for (let s = 0; s < N; s++) await generate(model, { inputIds: [ids] }, opts(1, s));
    const independentMs = performance.now() - t0;
    console.log(
      `prompt 256 tok, N=${N}, 8 new: shared prefill ${sharedMs.toFixed(0)} ms, independent ${independentMs.toFixed(0)} ms, ratio ${(independentMs / sharedMs).toFixed(2)}x`,
    );
    expect(independentMs).toBeGreaterThan(sharedMs);
  });
});

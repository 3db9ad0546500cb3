// Full-model parity against HF transformers 4.50 (float32, eager) on the three fixture cases:
// rope index (exact), inputs_embeds, per-layer outputs, last hidden state, logits at logit_columns, logsumexp,
// top-2 margin, next-token log-probs (≤ 1e-4 on real rows), argmax (exact), loss (≤ 1e-5), gradients
// (≤ 1e-3 of the tensor's max |g|) and the per-parameter gradient L2 norms (1e-3 relative), plus leak checks.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen2_5_VLConfig } from '../../src/model/config.js';
import type { ModelInputs, Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { getRopeIndex } from '../../src/model/rope.js';
import type { Trace } from '../../src/model/vision.js';
import { expectClose, maxDiff } from '../helpers.js';
import {
  CASES,
  type CaseMeta,
  type CaseName,
  type CasesJson,
  caseInputs,
  casesJson,
  fixtureConfig,
  fixtureModel,
  get,
  loadCase,
  logitStats,
  realRows,
  setupBackend,
} from './fixture.js';

let cfg: Qwen2_5_VLConfig;
let model: Qwen2_5_VL;
let meta: CasesJson;

beforeAll(async () => {
  await setupBackend();
  cfg = await fixtureConfig();
  model = await fixtureModel({ trainable: true });
  meta = await casesJson();
});
afterAll(() => model.dispose());

/** Model inputs of a fixture case. */
async function inputsWithDispose(
  name: CaseName,
  m: CaseMeta,
): Promise<{ inputs: ModelInputs; dispose: () => void }> {
  const inputs = await caseInputs(name, m);
  return { inputs, dispose: () => inputs.pixelValues?.dispose() };
}

describe.each(CASES)('HF parity: %s', (name) => {
  it('position ids and rope deltas are exact', async () => {
    const m = meta.cases[name];
    const c = await loadCase(name);
    const r = getRopeIndex(m.input_ids, m.attention_mask, m.image_grid_thw, cfg);
    expect(r.positionIds.flat(2)).toEqual(Array.from(get(c, 'position_ids').data));
    expect(r.ropeDeltas).toEqual(m.rope_deltas);
  });

  it('embeddings, layers, hidden state, logits, logsumexp, margins, log-probs; no leak', async () => {
    const m = meta.cases[name];
    const c = await loadCase(name);
    const mask = m.attention_mask;
    const { inputs, dispose } = await inputsWithDispose(name, m);
    const before = tf.memory().numTensors;
    const trace: Trace = new Map();
    const { logits, ropeDeltas } = model.forward(inputs, { trace });
    expect(ropeDeltas).toEqual(m.rope_deltas);
    const D = cfg.hidden_size;
    const keys = ['text.inputs_embeds', 'text.layer0_out', 'text.layer1_out', 'text.last_hidden_state'];
    for (const k of keys) {
      const ours = realRows(await trace.get(k)!.data(), mask, D);
      expectClose(ours, realRows(get(c, k).data, mask, D), 1e-4, `${name} ${k} (real rows)`);
    }
    const s = logitStats(await logits.data(), logits.shape[2], meta.logit_columns, m.input_ids);
    const K = meta.logit_columns.length;
    const lpMask = mask.map((r) => r.slice(0, -1));
    expectClose(
      realRows(s.columns, mask, K),
      realRows(get(c, 'logits.columns_subset').data, mask, K),
      1e-4,
      `${name} logits at columns`,
    );
    expectClose(
      realRows(s.lse, mask, 1),
      realRows(get(c, 'logits.logsumexp').data, mask, 1),
      1e-4,
      `${name} logsumexp`,
    );
    expectClose(
      realRows(s.margin, mask, 1),
      realRows(get(c, 'logits.top2_margin').data, mask, 1),
      1e-4,
      `${name} top2 margin`,
    );
    expectClose(
      realRows(s.nextLogprob, lpMask, 1),
      realRows(get(c, 'logprob.next_token').data, lpMask, 1),
      1e-4,
      `${name} next-token logprobs`,
    );
    expect(realRows(s.argmax, mask, 1)).toEqual(realRows(m.argmax.flat(), mask, 1));
    tf.dispose([logits, ...trace.values()]);
    expect(tf.memory().numTensors).toBe(before);
    dispose();
  });

  it('loss ≤ 1e-5, gradients and gradient norms; no leak', async () => {
    const m = meta.cases[name];
    const c = await loadCase(name);
    const labels = toRows(get(c, 'labels').data, m.input_ids.length);
    const { inputs, dispose } = await inputsWithDispose(name, m);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => model.loss(inputs, labels), model.variables());
    expectClose(await value.data(), [m.loss], 1e-5, `${name} loss (hidden path)`);
    await compareGrads(name, c, grads);
    await compareNorms(name, m, grads);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    dispose();
  });
});

/** Gradients of the listed params vs the fixture (1e-3 of max |g|) and the embedding rows at logit_columns. */
async function compareGrads(
  name: CaseName,
  c: Map<string, never> | Awaited<ReturnType<typeof loadCase>>,
  grads: tf.NamedTensorMap,
): Promise<void> {
  for (const key of [...c.keys()].filter(
    (k) => k.startsWith('grad.') && !k.endsWith('rows_at_logit_columns'),
  )) {
    const pname = key.slice(5);
    const ref = get(c, key).data;
    const g = grads[`p/${pname}`];
    expect(g, `no gradient for ${pname}`).toBeDefined();
    const d = maxDiff(await g.data(), ref);
    console.log(
      `${name} grad ${pname}: max abs ${d.abs.toExponential(3)}, rel to max|g| ${d.rel.toExponential(3)}`,
    );
    expect(d.rel, `${pname} gradient`).toBeLessThanOrEqual(1e-3);
  }
  const rows = tf.tidy(() =>
    tf.gather(grads['p/model.embed_tokens.weight'], tf.tensor1d(meta.logit_columns, 'int32')),
  );
  const d = maxDiff(await rows.data(), get(c, 'grad.model.embed_tokens.weight.rows_at_logit_columns').data);
  console.log(
    `${name} grad embed_tokens rows@columns: max abs ${d.abs.toExponential(3)}, rel ${d.rel.toExponential(3)}`,
  );
  expect(d.rel).toBeLessThanOrEqual(1e-3);
  rows.dispose();
}

/** Every parameter's gradient L2 norm vs `cases.json` (1e-3 relative; null = no gradient). */
async function compareNorms(name: CaseName, m: CaseMeta, grads: tf.NamedTensorMap): Promise<void> {
  const lines: string[] = [];
  let worst = 0;
  for (const [pname, ref] of Object.entries(m.grad_l2_norm)) {
    const g = grads[`p/${pname}`];
    if (ref === null) {
      // No path from the loss: tfjs returns zeros (or nothing) where HF has None.
      if (g) expect(Math.max(...(await g.data()).map(Math.abs))).toBe(0);
      continue;
    }
    const data = await g.data();
    let s = 0;
    for (const x of data) s += x * x;
    const rel = Math.abs(Math.sqrt(s) - ref) / ref;
    worst = Math.max(worst, rel);
    lines.push(
      `${pname.padEnd(48)} ${Math.sqrt(s).toExponential(6)} ref ${ref.toExponential(6)} rel ${rel.toExponential(2)}`,
    );
  }
  console.log(`${name} gradient L2 norms (worst rel ${worst.toExponential(3)}):\n${lines.join('\n')}`);
  expect(worst).toBeLessThanOrEqual(1e-3);
}

function toRows(data: ArrayLike<number>, B: number): number[][] {
  const T = data.length / B;
  return Array.from({ length: B }, (_, b) => Array.from(data).slice(b * T, (b + 1) * T) as number[]);
}

// trainSft end to end on the tiny model (models/tiny with a 256-row vocabulary and a character-level test tokenizer,
// so a cpu step takes well under a second; the real Qwen tokenizer + full vocabulary run is in test/cli/sft.test.ts):
// loss falls on a fixed batch and exactly the trainable params change, flat numTensors, accumulation invariance,
// seed reproducibility, crash-and-resume equals an uninterrupted run, F32 checkpoints load back bit-exactly,
// question/solution rows + eval loss, image rows (vision tower trains), packing, and config errors.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/data/chat.js';
import type { TokenizeFn } from '../../src/data/dataset.js';
import { processImage } from '../../src/data/image.js';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { loadWeights } from '../../src/model/weights.js';
import { SftConfig } from '../../src/train/config.js';
import { lossTokens, type SftDeps, trainSft } from '../../src/train/sft.js';
import { listCheckpoints } from '../../src/train/state.js';
import { readStepLog } from '../../src/util/log.js';
import { testBackendName, useTestBackend } from '../backend/select.js';
import { expectClose, FIXTURE, maxDiff, ROOT } from '../helpers.js';

let tmp: string;
let modelJson: string;

/**
 * Character-level chat tokenizer for a 256-row vocabulary: role ids 1-3, end 4, text chars 10..249, and an image
 * part as vision_start (254) + t*h*w/4 image pads (252) + vision_end (255), as the processor expands it.
 */
const charTokenize: TokenizeFn = async (messages: ChatMessage[]) => {
  const inputIds: number[] = [];
  const labels: number[] = [];
  for (const m of messages) {
    const parts = typeof m.content === 'string' ? [{ type: 'text' as const, text: m.content }] : m.content;
    const body: number[] = [];
    for (const p of parts) {
      if (p.type === 'text') body.push(...[...p.text].map((ch) => 10 + (ch.codePointAt(0)! % 240)));
      else {
        const [t, h, w] = (await processImage(p.image as string)).gridThw;
        body.push(254, ...new Array((t * h * w) / 4).fill(252), 255);
      }
    }
    const train = m.role === 'assistant';
    inputIds.push(m.role === 'system' ? 1 : m.role === 'user' ? 2 : 3, ...body, 4);
    labels.push(-100, ...body.map((t) => (train ? t : -100)), train ? 4 : -100);
  }
  return { inputIds, labels };
};
const deps = (extra: SftDeps = {}): SftDeps => ({
  tokenize: charTokenize,
  padId: 0,
  progress: null,
  info: () => {},
  ...extra,
});

const chat = (q: string, a: string) =>
  JSON.stringify({
    messages: [
      { role: 'user', content: q },
      { role: 'assistant', content: a },
    ],
  });
const ROWS = [
  chat('1+1?', '2'),
  chat('What is 3 times 4?', 'It is 12.'),
  chat('Name a colour.', 'Blue'),
  chat('7-2?', 'The answer is 5.'),
  chat('Say hi', 'hi there'),
  chat('10/2?', '5'),
];

async function writeJsonl(name: string, lines: string[]): Promise<string> {
  const f = path.join(tmp, name);
  await writeFile(f, `${lines.join('\n')}\n`);
  return f;
}

function config(over: Record<string, unknown>, data: Record<string, unknown>): SftConfig {
  return SftConfig.parse({
    model: modelJson,
    lr: 3e-3,
    batchSize: 2,
    backend: testBackendName('cpu'),
    maxGradNorm: 1,
    ...over,
    data: { format: 'messages', ...data },
  });
}

beforeAll(async () => {
  await useTestBackend('cpu');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-sft-'));
  const json = JSON.parse(await readFile(path.join(ROOT, 'models', 'tiny', 'config.json'), 'utf8'));
  modelJson = path.join(tmp, 'tiny256.json');
  await writeFile(
    modelJson,
    JSON.stringify({
      ...json,
      vocab_size: 256,
      // special ids must fit the small vocabulary (the char tokenizer uses 1-4 and 10-249)
      bos_token_id: 250,
      eos_token_id: 251,
      image_token_id: 252,
      video_token_id: 253,
      vision_start_token_id: 254,
      vision_end_token_id: 255,
    }),
  );
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function paramsOf(p: Record<string, tf.Tensor>): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of Object.entries(p)) out.set(k, (await t.data()) as Float32Array);
  return out;
}
const bitEqual = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

describe('trainSft', () => {
  it("20 steps on a fixed batch: loss falls, every LM param changes, every visual.* is bit-identical ('lm'), numTensors flat", async () => {
    const train = await writeJsonl('fixed.jsonl', ROWS.slice(0, 2));
    const c = config(
      { outDir: path.join(tmp, 'fixed'), steps: 20, trainable: 'lm', warmupSteps: 2 },
      { train },
    );
    const model = await loadModel(c.model, { seed: c.seed });
    const before = await paramsOf(model.params);
    const r = await trainSft(c, deps({ model }));
    const after = await paramsOf(model.params);
    console.log('losses', r.losses.map((l) => l.toFixed(3)).join(' '));
    expect(r.losses).toHaveLength(20);
    expect(r.losses[19]).toBeLessThan(0.5 * r.losses[0]);
    const wrong = [...before]
      .filter(([k, v]) => bitEqual(v, after.get(k)!) !== k.startsWith('visual.'))
      .map(([k]) => k);
    expect(wrong, 'params that changed while frozen or stayed while trainable').toEqual([]);
    const log = readStepLog(path.join(c.outDir, 'log.jsonl'));
    const counts = log.map((x) => x.numTensors);
    console.log('numTensors per step', counts.join(' '));
    expect(log.map((x) => x.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(counts.slice(1)).size).toBe(1);
    for (const k of ['loss', 'lr', 'gradNorm', 'tokensPerSec']) expect(Number.isFinite(log[5][k])).toBe(true);
    // the final checkpoint is F32, so loadWeights gives back exactly the trained values
    const loaded = await loadWeights(r.checkpoint, model.config);
    for (const [k, v] of after) expect(bitEqual((await loaded[k].data()) as Float32Array, v), k).toBe(true);
    tf.dispose(Object.values(loaded));
    model.dispose();
  });

  it('batch 4 x accum 1 gives the same update as batch 1 x accum 4 (params within 1e-5)', async () => {
    const train = await writeJsonl('four.jsonl', ROWS.slice(0, 4));
    const run = async (batchSize: number, gradAccumSteps: number) => {
      const c = config(
        { outDir: path.join(tmp, `acc${batchSize}`), steps: 1, batchSize, gradAccumSteps },
        { train },
      );
      const model = await loadModel(c.model, { seed: c.seed });
      const r = await trainSft(c, deps({ model }));
      const p = await paramsOf(model.params);
      model.dispose();
      return { loss: r.losses[0], p };
    };
    const a = await run(4, 1);
    const b = await run(1, 4);
    let worst = 0;
    for (const [k, v] of a.p) {
      const w = b.p.get(k)!;
      for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i] - w[i]));
    }
    console.log(`loss ${a.loss} vs ${b.loss}; params max abs diff ${worst.toExponential(3)}`);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('the same seed gives the same loss curve; a crash after step 3 + resume gives exactly the uninterrupted losses', async () => {
    const train = await writeJsonl('six.jsonl', ROWS);
    const base = { steps: 6, saveEvery: 3, warmupSteps: 1, seed: 5 };
    const full = await trainSft(config({ ...base, outDir: path.join(tmp, 'full') }, { train }), deps());
    const again = await trainSft(config({ ...base, outDir: path.join(tmp, 'again') }, { train }), deps());
    expect(again.losses).toEqual(full.losses);
    const crashDir = path.join(tmp, 'crash');
    const crash = (l: string) => {
      if (l.includes('checkpoint-00000003')) throw new Error('simulated crash');
    };
    await expect(
      trainSft(config({ ...base, outDir: crashDir }, { train }), deps({ info: crash })),
    ).rejects.toThrow('simulated crash');
    const resumed = await trainSft(
      config({ ...base, outDir: crashDir, resume: 'latest' }, { train }),
      deps(),
    );
    console.log('uninterrupted', full.losses, 'resumed 4..6', resumed.losses);
    expect(resumed.steps).toBe(6);
    expect(resumed.losses).toEqual(full.losses.slice(3));
    const log = readStepLog(path.join(crashDir, 'log.jsonl'));
    expect(log.map((x) => x.loss)).toEqual(full.losses);
    expect((await listCheckpoints(crashDir)).map((x) => x.step)).toEqual([3, 6]);
    await expect(trainSft(config({ ...base, outDir: crashDir }, { train }), deps())).rejects.toThrow(
      /already holds a run \(.*checkpoint-00000006.*\): pass --resume latest/,
    );
    const changed = config({ ...base, outDir: crashDir, resume: 'latest', batchSize: 3 }, { train });
    await expect(trainSft(changed, deps())).rejects.toThrow(/batchSize was 2, now 3/);
  });

  it('trains on question/solution rows and logs eval loss every N steps', async () => {
    const qs = [
      { question: 'What is 2+2?', solution: '2+2=4', answer: '4' },
      { problem: 'What is 3+3?', solution: '3+3=<<3+3=6>>6', answer: '6' },
      { question: 'What is 5+1?', answer: '6' },
    ].map((x) => JSON.stringify(x));
    const train = await writeJsonl('qs.jsonl', qs);
    const evalFile = await writeJsonl('qs_eval.jsonl', qs.slice(0, 2));
    const c = config(
      { outDir: path.join(tmp, 'qs'), steps: 4, evalEvery: 2 },
      { train, eval: evalFile, format: 'question_solution', promptTemplate: 'qwen' },
    );
    const r = await trainSft(c, deps());
    expect(r.evalLosses.map((e) => e.step)).toEqual([2, 4]);
    expect(r.evalLosses[1].loss).toBeLessThan(r.evalLosses[0].loss);
    const evalRows = readStepLog(path.join(c.outDir, 'log.jsonl')).filter((x) => x.evalLoss !== undefined);
    expect(evalRows.map((x) => [x.step, x.evalLoss])).toEqual(r.evalLosses.map((e) => [e.step, e.loss]));
  });

  it("trains on image rows with trainable 'all': every param, vision tower included, changes", async () => {
    const row = (image: string, q: string, a: string) =>
      JSON.stringify({
        messages: [
          { role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] },
          { role: 'assistant', content: a },
        ],
        image,
      });
    const train = await writeJsonl('img.jsonl', [
      row('img_h70_w100.png', 'How wide?', '100'),
      row('img_h112_w56.png', 'How tall?', '112'),
    ]);
    const c = config(
      { outDir: path.join(tmp, 'img'), steps: 1, trainable: 'all' },
      { train, imageRoot: path.join(FIXTURE, 'images') },
    );
    const model = await loadModel(c.model, { seed: c.seed });
    const before = await paramsOf(model.params);
    const r = await trainSft(c, deps({ model }));
    const after = await paramsOf(model.params);
    console.log('image-row losses', r.losses);
    const unchanged = [...before].filter(([k, v]) => bitEqual(v, after.get(k)!)).map(([k]) => k);
    expect(unchanged).toEqual([]);
    model.dispose();
  });

  it('packs several sequences per row when packing is on (fewer steps per epoch)', async () => {
    const train = await writeJsonl('pack.jsonl', ROWS);
    const run = (packing: boolean) =>
      trainSft(
        config({ outDir: path.join(tmp, `pack-${packing}`), epochs: 1, packing, maxSeqLen: 64 }, { train }),
        deps(),
      );
    const plain = await run(false);
    const packed = await run(true);
    // 6 sequences of 8-27 tokens: 3 batches of 2 unpacked; packed rows of <= 64 tokens hold 2-4 sequences each
    console.log(`steps for one epoch: unpacked ${plain.steps}, packed ${packed.steps}`);
    expect(plain.steps).toBe(3);
    expect(packed.steps).toBeLessThan(3);
    expect(packed.losses.every(Number.isFinite)).toBe(true);
  });

  it('the trainer loss (fused model.loss) equals the full-logits reference causalLmLoss in value and gradients', async () => {
    const model = await loadModel(modelJson, { seed: 9 });
    const inputs = {
      inputIds: [
        [2, 20, 21, 3, 30, 31, 4],
        [2, 22, 3, 32, 4, 0, 0],
      ],
      attentionMask: [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 0, 0],
      ],
    };
    const labels = [
      [-100, -100, -100, -100, 30, 31, 4],
      [-100, -100, -100, 32, 4, -100, -100],
    ];
    const n = lossTokens(labels);
    const vars = Object.values(model.params) as tf.Variable[];
    const ref = tf.variableGrads(
      () => causalLmLoss(model.forward(inputs).logits, labels, { numItemsInBatch: n }),
      vars,
    );
    const got = tf.variableGrads(() => model.loss(inputs, labels, { numItemsInBatch: n }), vars);
    expectClose(
      await got.value.data(),
      await ref.value.data(),
      1e-6,
      'model.loss vs the full-logits reference',
    );
    let worst = 0;
    for (const v of vars) {
      const g = got.grads[v.name];
      const r = ref.grads[v.name];
      expect(!g, v.name).toBe(!r);
      if (g && r) worst = Math.max(worst, maxDiff(await g.data(), await r.data()).abs);
    }
    console.log(`gradients: max abs diff ${worst.toExponential(3)}`);
    expect(worst).toBeLessThanOrEqual(1e-6);
    tf.dispose([got.value, ref.value, ...Object.values(got.grads), ...Object.values(ref.grads)]);
    model.dispose();
  });

  it('counts loss tokens as the shifted HF loss does', () => {
    expect(
      lossTokens([
        [-100, 5, 6],
        [7, -100, 8],
      ]),
    ).toBe(3);
  });

  it('names the culprit for a bad model spec and an empty dataset', async () => {
    await expect(loadModel(path.join(tmp, 'nope'), { seed: 0 })).rejects.toThrow(
      /is not 'tiny', a config.json path or a model directory/,
    );
    const empty = await writeJsonl('empty.jsonl', ['']);
    await expect(
      trainSft(config({ outDir: path.join(tmp, 'e'), steps: 1 }, { train: empty }), deps()),
    ).rejects.toThrow(/has no rows/);
  });
});

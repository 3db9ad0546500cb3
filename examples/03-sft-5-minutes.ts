// 03 — A 5-minute SFT (the linguistic cold start) with the library trainer, on text-only renderings of the demo task.
// Run: npx tsx examples/03-sft-5-minutes.ts        (OVR_EXAMPLE_QUICK=1: 3 steps, as in the test suite)
// The same run from the shell: npx ovr-train sft --model tiny --data.train runs/examples/03/sft.jsonl --steps 60 ...
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { initBackend, makeProblems, readStepLog, SftConfig, trainSft, writeDemoJsonl } from '../src/index.js';

const quick = process.env.OVR_EXAMPLE_QUICK === '1';
const out = path.join('runs', 'examples', '03');
// Start fresh on every run (the trainers refuse to overwrite checkpoints unless told to resume).
await rm(path.join(out, 'run'), { recursive: true, force: true });
await initBackend();

// 1. Data: chat rows {messages: [user, assistant]} where the user turn describes the picture in words
//    ("The picture shows 2 small red circles ...") and the assistant writes a think/answer chain with reflection.
const train = path.join(out, 'sft.jsonl');
const rows = await writeDemoJsonl(train, makeProblems({ seed: 0, split: 'train', count: quick ? 16 : 256 }), {
  mode: 'text',
});
console.log(
  `wrote ${rows.length} rows to ${train}; first target: ${rows[0].messages[1].content.slice(0, 80)}...`,
);

// 2. Config: schema defaults < your values; the schema rejects typos and bad combinations with a fix-it message.
const cfg = SftConfig.parse({
  model: 'tiny', // a random tiny Qwen2.5-VL (models/tiny/config.json); or a folder with real weights
  outDir: path.join(out, 'run'),
  steps: quick ? 3 : 60, // 60 steps: about 5 minutes on 2 CPU cores
  batchSize: quick ? 2 : 8,
  lr: 2e-3,
  warmupSteps: quick ? 0 : 5,
  trainable: 'lm', // text-only data: the vision tower stays frozen
  data: { train },
});

// 3. Train: length-grouped batches, assistant-only loss, AdamW + warmup/cosine, clipping, checkpoints, JSONL log.
const result = await trainSft(cfg, { progress: quick ? null : undefined });
const losses = readStepLog(path.join(cfg.outDir, 'log.jsonl')).map((r) => r.loss as number);
console.log(`${result.steps} steps: loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
console.log(
  `checkpoint: ${result.checkpoint}  (try: npx ovr-train generate --model ${result.checkpoint} --prompt "...")`,
);

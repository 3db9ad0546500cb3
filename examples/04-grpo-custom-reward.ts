// 04 — A GRPO run with your own reward function (TRL-style signature).
// Run: npx tsx examples/04-grpo-custom-reward.ts   (OVR_EXAMPLE_QUICK=1: 2 steps, as in the test suite)
// A reward function gets the completions of one step plus context (gold answers, prompts, token ids) and returns
// one number per completion (or null = "no opinion", e.g. no gold answer).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GrpoConfig, initBackend, type RewardFunction, readStepLog, trainGrpo } from '../src/index.js';

const quick = process.env.OVR_EXAMPLE_QUICK === '1';
const out = path.join('runs', 'examples', '04');
// Start fresh on every run (the trainers refuse to overwrite checkpoints unless told to resume).
await rm(path.join(out, 'run'), { recursive: true, force: true });
await mkdir(out, { recursive: true });
await initBackend();

// 1. Prompts: JSONL rows with a question and a gold answer (images work too: an `image` field).
const train = path.join(out, 'prompts.jsonl');
const rows = ['Reply with a digit.', 'Say a number.', 'Write one digit.', 'Give me a digit.'].map((q, i) => ({
  id: `p${i}`,
  question: q,
  answer: '7',
}));
await writeFile(train, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);

// 2. The custom reward: 1 when the completion contains the gold answer, else 0 (null when there is no gold).
const containsGold: RewardFunction = (completions, { answers }) =>
  completions.map((c, i) => {
    const gold = answers[i];
    if (gold === null) return null;
    return c.includes(gold) ? 1 : 0;
  });

// 3. Config. A tiny random model knows nothing, so we keep the answer space small: one-token replies drawn from
//    the first 32 token ids (ASCII punctuation and the digits 0-9), so a random policy hits '7' now and then.
const cfg = GrpoConfig.parse({
  model: 'tiny',
  outDir: path.join(out, 'run'),
  seed: 0,
  steps: quick ? 2 : 40,
  lr: 2e-3,
  minLrRatio: 1,
  batchSize: 16,
  promptsPerStep: 2,
  numGenerations: 8,
  maxResponseLen: 1,
  data: { train, promptTemplate: 'qwen' },
  reward: { format: 'boxed', workers: 0 },
});

// 4. Train: rollouts (G samples per prompt, one prefill) -> rewards -> group advantages -> clipped policy loss.
const result = await trainGrpo(cfg, {
  rewardFn: containsGold,
  sampling: { allowedVocab: 32 },
  progress: quick ? null : undefined,
});
const rewards = readStepLog(result.logFile).map((r) => r.rewardMean as number);
console.log(`${result.steps} GRPO steps; reward per step: ${rewards.map((r) => r.toFixed(2)).join(' ')}`);
console.log(`rollouts (completion + reward per sample): ${result.rolloutsFile}`);

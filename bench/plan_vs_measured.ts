// Planner vs measurement: the peak of live tensor bytes (each buffer once, plan/measure.ts) of one real training step
// (forward + backward through the fused loss + global norm + AdamW, as the Trainer does it) against planMemory, on the
// tiny and small configs, full fine-tuning (LM) and LoRA (r 8, LM attention + MLP), with and without recompute.
// Usage: npx tsx bench/plan_vs_measured.ts [--backend cpu] [--json out.json]   (2nd step measured: moments exist)
//        npx tsx bench/plan_vs_measured.ts --cut7b [--seq 32] [--recompute]   7B cut to 2 layers, LoRA r 8, 2 steps (~10 GB RAM)
import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/index.js';
import { parseConfig, type Qwen2_5_VLConfig } from '../src/model/config.js';
import { attachAdapter, LM_TARGETS, LoraAdapter, LoraConfig } from '../src/model/lora.js';
import { Qwen2_5_VL } from '../src/model/qwen2_5_vl.js';
import { measurePeak } from '../src/plan/measure.js';
import { fmt, planMemory } from '../src/plan/memory.js';
import { accumulateGrads } from '../src/train/accumulate.js';
import { AdamW, globalNorm } from '../src/train/optim.js';

const arg = (k: string, d: string): string => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : d;
};
await initBackend({ backend: arg('backend', 'cpu') as 'cpu', log: () => {} });
const load = (f: string): Qwen2_5_VLConfig => parseConfig(JSON.parse(readFileSync(f, 'utf8')));
/** Qwen2.5-VL-7B cut to 2 decoder layers: real hidden size, heads, MLP, vocabulary, untied head, full vision tower. */
const cut7b = (): Qwen2_5_VLConfig => ({ ...load('models/qwen2.5-vl-7b/config.json'), num_hidden_layers: 2 });
const CUT = process.argv.includes('--cut7b');
const CONFIGS: [string, Qwen2_5_VLConfig, number, number][] = CUT
  ? [['7b-2L', cut7b(), 1, Number(arg('seq', '32'))]]
  : [
      ['tiny', load('models/tiny/config.json'), 2, 64],
      ['small', load('bench/configs/small.json'), 1, 256],
    ];
const MODES: [boolean, boolean][] = CUT
  ? [[true, process.argv.includes('--recompute')]]
  : [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ];

/** One measured step: returns the peak of live bytes during the second step (the first allocates the moments). */
async function measure(cfg: Qwen2_5_VLConfig, batch: number, seq: number, lora: boolean, recompute: boolean) {
  const model = Qwen2_5_VL.init(cfg, 0);
  let adapter: LoraAdapter | undefined;
  let vars: Record<string, tf.Variable>;
  if (lora) {
    adapter = LoraAdapter.init(cfg, LoraConfig.parse({ r: 8 }), 0);
    attachAdapter(model.params, adapter);
    vars = adapter.variables();
  } else {
    vars = Object.fromEntries(
      Object.entries(model.params).filter(([k]) => !k.startsWith('visual.')),
    ) as Record<string, tf.Variable>;
  }
  const opt = new AdamW(vars, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const ids = Array.from({ length: batch }, (_, b) =>
    Array.from({ length: seq }, (_, i) => (i * 31 + b * 7) % 150000),
  );
  const t0 = performance.now();
  const step = async () => {
    const { loss, grads } = accumulateGrads([() => model.loss({ inputIds: ids }, ids, { recompute })], vars);
    const norm = globalNorm(grads);
    await norm.data();
    opt.step(grads, 1e-5);
    tf.dispose([loss, norm, ...Object.values(grads)]);
  };
  await step();
  const { peak } = await measurePeak(step);
  console.log(
    `  2 steps in ${((performance.now() - t0) / 1000).toFixed(1)} s (model ${(model.variables().reduce((n, v) => n + v.size, 0) / 1e9).toFixed(2)}B params)`,
  );
  opt.dispose();
  adapter?.dispose();
  model.dispose();
  return peak;
}

const rows: Record<string, unknown>[] = [];
for (const [name, cfg, batch, seq] of CONFIGS) {
  for (const [lora, recompute] of MODES) {
    {
      const measured = await measure(cfg, batch, seq, lora, recompute);
      const plan = planMemory(cfg, {
        batch,
        seq,
        recompute,
        lora: lora ? { r: 8, targetModules: [...LM_TARGETS], vision: false } : undefined,
      });
      const err = plan.trainPeak / measured - 1;
      const row = {
        config: name,
        batch,
        seq,
        mode: lora ? 'lora r8' : 'full (lm)',
        recompute,
        planned: plan.trainPeak,
        measured,
        err,
      };
      rows.push(row);
      console.log(
        `${name.padEnd(6)} B${batch} T${seq} ${String(row.mode).padEnd(9)} recompute ${String(recompute).padEnd(5)} planned ${fmt(plan.trainPeak).padStart(10)} measured ${fmt(measured).padStart(10)}  ${(err * 100).toFixed(1)}%`,
      );
    }
  }
}
const out = arg('json', '');
if (out)
  writeFileSync(
    out,
    `${JSON.stringify({ backend: tf.getBackend(), date: new Date().toISOString(), rows }, null, 2)}\n`,
  );

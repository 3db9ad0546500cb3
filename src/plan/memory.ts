// Memory planner: bytes a training step (SFT or GRPO, full fine-tuning or LoRA, with or without per-layer recompute)
// and a GRPO rollout need on one device, from the model config alone. Everything is float32 (tfjs has no bf16
// compute). Static: weights, adapter, gradients, AdamW moments. Dynamic: what the tape keeps per decoder layer
// (measured coefficients, below), the LM-head/embedding gradient work, and the rollout KV cache.
//
// Per-layer tape bytes were measured on cpu with measurePeak (plan/measure.ts) across D, I, H, Hkv, B, T (script:
// bench/plan_vs_measured.ts), then fitted as a linear form in four products (a fit to 7 shapes, max error 0.8%):
//   act = cND·N·D + cNI·N·I + cS·B·H·T² + cKV·N·Hkv·Dh   (N = B·T tokens of the micro-batch)
// Under recompute a layer keeps only its input `[N, D]`; the layer being replayed in backward holds a full `act`.
// Text-only rows: image patches add the vision tower's activations, which this plan does not model.
import type { Qwen2_5_VLConfig } from '../model/config.js';
import { type LoraConfig, loraTargets } from '../model/lora.js';
import { countParams, paramShapes } from '../model/params.js';

/** Bytes per float32 element. */
const F32 = 4;
/** Measured tape bytes per unit of each product, full fine-tuning (cpu, tfjs 4.22; see the file comment). */
export const ACT_FULL = { nd: 178.6, ni: 44, s: 28, kv: 82 } as const;
/** The same with LoRA adapters on the 7 LM linears (each adds its `[N, out]` scaled output and `[N, r]` rows). */
export const ACT_LORA = { nd: 247.1, ni: 80, s: 28, kv: 114, nr: 84 } as const;

/**
 * LM head + fused-loss bytes beyond the layers' tape, in floats: `nv` x [n, V] (n = min(N, 512) rows of the loss chunk:
 * logits, softmax, their gradient) + `vd` x [V, D] (full FT: the head's dW, the embedding's scatter gradient, their
 * sum; LoRA: the frozen head's transposed copy). Alive together with the layers' tape at the peak. Fitted (minimax
 * relative error) on 12 measured steps of three configs: D 64 / V 2000, tiny (D 64 / V 151936), small (D 512 /
 * V 151936), tied heads, with and without recompute (bench/plan_vs_measured.ts, test/plan/memory.test.ts; 2026-12-03):
 * full FT within 3.4%, LoRA within 13.6% (the LoRA form misses something that varies with V and D).
 */
export const HEAD_COST = { full: { nv: 0.38, vd: 1.86 }, lora: { nv: 1.3, vd: 1.48 } } as const;

/** What to plan. */
export interface PlanInput {
  /** Sequences per micro-batch (one forward/backward). */
  batch: number;
  /** Tokens per sequence (prompt + completion). */
  seq: number;
  /** Micro-batches accumulated per optimizer step (>1 keeps a gradient sum beside each micro-batch's gradients). */
  accum?: number;
  /** LoRA settings; absent = full fine-tuning of the trainable part. */
  lora?: Pick<LoraConfig, 'r' | 'targetModules' | 'vision'>;
  /** Which params train without LoRA: 'all' or 'lm' (default 'lm': the text SFT/GRPO default). */
  trainable?: 'all' | 'lm';
  recompute?: boolean;
  /**
   * PPO (advantage 'gae'): add the critic's persistent bytes. Full fine-tuning: a second copy of the weights + its
   * AdamW moments; LoRA: its own adapter + moments on the shared base. Its update runs after the policy's, so the step
   * transients (gradients, activations) are counted once.
   */
  critic?: boolean;
  /** GRPO: sequences decoded at once in the rollout (KV cache rows); 0 = no rollout (SFT). */
  generations?: number;
  /** Device memory in GiB. */
  deviceGiB?: number;
}

/** One line of the plan. */
export type PlanRow = { item: string; bytes: number; note: string };

/** The plan: rows, the two phase peaks and the verdict. */
export interface MemoryPlan {
  rows: PlanRow[];
  /** Bytes that stay for the whole run (weights, adapter, moments). */
  persistent: number;
  /** Peak of a training step. */
  trainPeak: number;
  /** Peak of a rollout (GRPO), 0 without one. */
  rolloutPeak: number;
  peak: number;
  device: number;
  fits: boolean;
  advice: string[];
}

const GiB = 1024 ** 3;

/** Per-layer tape bytes of a decoder layer for a micro-batch (no recompute). */
export function layerActivationBytes(
  cfg: Qwen2_5_VLConfig,
  batch: number,
  seq: number,
  loraR?: number,
): number {
  const N = batch * seq;
  const D = cfg.hidden_size;
  const Dh = D / cfg.num_attention_heads;
  const c = loraR ? ACT_LORA : ACT_FULL;
  const base =
    c.nd * N * D +
    c.ni * N * cfg.intermediate_size +
    c.s * batch * cfg.num_attention_heads * seq * seq +
    c.kv * N * cfg.num_key_value_heads * Dh;
  return base + (loraR ? ACT_LORA.nr * N * loraR : 0);
}

/** Parameters the step trains: adapter params under LoRA, else the LM (or all) params. */
function trainableParams(cfg: Qwen2_5_VLConfig, p: PlanInput): number {
  if (p.lora) return loraTargets(cfg, p.lora).reduce((s, t) => s + p.lora!.r * (t.in + t.out), 0);
  if ((p.trainable ?? 'lm') === 'all') return countParams(cfg);
  let n = 0;
  for (const [name, shape] of paramShapes(cfg))
    if (!name.startsWith('visual.')) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * The memory plan of a training step (and a GRPO rollout) for `cfg`.
 * @example const plan = planMemory(cfg7b, { batch: 1, seq: 4096, lora: { r: 16, targetModules: [...LM_TARGETS], vision: false }, recompute: true, deviceGiB: 80 });
 */
export function planMemory(cfg: Qwen2_5_VLConfig, p: PlanInput): MemoryPlan {
  const L = cfg.num_hidden_layers;
  const D = cfg.hidden_size;
  const V = cfg.vocab_size;
  const N = p.batch * p.seq;
  const lora = p.lora;
  const trainable = trainableParams(cfg, p);
  const weights = countParams(cfg) * F32;
  const adapter = lora ? trainable * F32 : 0;
  const moments = 2 * trainable * F32;
  const grads = trainable * F32 * ((p.accum ?? 1) > 1 ? 2 : 1);
  const layer = layerActivationBytes(cfg, p.batch, p.seq, lora?.r);
  const acts = p.recompute ? L * N * D * F32 + layer : L * layer;
  // LM head + loss work beyond the layers' tape, alive together with it at the peak (HEAD_COST).
  const rows512 = Math.min(N, 512);
  const h = lora ? HEAD_COST.lora : HEAD_COST.full;
  const headLoss = (h.nv * rows512 * V + h.vd * V * D) * F32;
  // the critic: trainable params (+ the [1, D] value head) stored with their two moments, plus a full weight copy
  const criticTrainable = p.critic ? trainable + D : 0;
  const critic = p.critic ? (lora ? 3 * criticTrainable * F32 : weights + 2 * criticTrainable * F32) : 0;
  const trainPeak = weights + adapter + moments + critic + grads + acts + headLoss;
  const G = p.generations ?? 0;
  const Dh = D / cfg.num_attention_heads;
  const kv = 2 * L * G * cfg.num_key_value_heads * p.seq * Dh * F32;
  const rolloutPeak = G > 0 ? weights + adapter + moments + critic + kv + 2 * G * V * F32 : 0;
  const rows: PlanRow[] = [
    { item: 'weights', bytes: weights, note: `${countParams(cfg).toLocaleString('en-US')} params, float32` },
    ...(lora
      ? [
          {
            item: 'LoRA adapter',
            bytes: adapter,
            note: `r ${lora.r}, ${trainable.toLocaleString('en-US')} params`,
          },
        ]
      : []),
    {
      item: 'gradients',
      bytes: grads,
      note: `${trainable.toLocaleString('en-US')} trainable${(p.accum ?? 1) > 1 ? ', + accumulated sum' : ''}`,
    },
    { item: 'AdamW moments', bytes: moments, note: 'm and v' },
    ...(p.critic
      ? [
          {
            item: 'PPO critic',
            bytes: critic,
            note: lora
              ? `own LoRA adapter + value head (${criticTrainable.toLocaleString('en-US')} params) + moments; base shared`
              : `full weight copy + moments of ${criticTrainable.toLocaleString('en-US')} trainable`,
          },
        ]
      : []),
    { item: 'activations / layer', bytes: layer, note: `N ${N} tokens; without recompute` },
    { item: 'activations / layer (recompute)', bytes: N * D * F32, note: 'the layer input only' },
    {
      item: `activations, ${L} layers`,
      bytes: acts,
      note: p.recompute ? 'recompute: inputs + one replayed layer' : 'all layers on the tape',
    },
    {
      item: 'LM head / loss chunk',
      bytes: headLoss,
      note: `${h.nv} x [${rows512}, V] loss-chunk rows + ${h.vd} x [V, D]${lora ? ' (frozen head)' : ' (head + embedding gradient work)'}`,
    },
    ...(G > 0 ? [{ item: 'rollout KV cache', bytes: kv, note: `${G} sequences x ${p.seq} slots` }] : []),
  ];
  const device = (p.deviceGiB ?? 80) * GiB;
  const peak = Math.max(trainPeak, rolloutPeak);
  return {
    rows,
    persistent: weights + adapter + moments + critic,
    trainPeak,
    rolloutPeak,
    peak,
    device,
    fits: peak <= device,
    advice: advise(cfg, p, { peak, device, layer, weights, moments, kv }),
  };
}

function advise(
  cfg: Qwen2_5_VLConfig,
  p: PlanInput,
  x: { peak: number; device: number; layer: number; weights: number; moments: number; kv: number },
): string[] {
  const out: string[] = [];
  const over = x.peak - x.device;
  if (over <= 0) return out;
  if (!p.recompute)
    out.push(`--recompute: activations ${fmt(cfg.num_hidden_layers * x.layer)} -> ~${fmt(x.layer)}`);
  if (!p.lora) out.push(`--lora.r 16: drops ${fmt(x.moments)} of AdamW moments and the full gradients`);
  if (p.batch > 1) out.push(`--batch 1 with gradient accumulation: activations scale with the micro-batch`);
  if (x.kv > over / 2) out.push(`fewer --generations per rollout pass: the KV cache is ${fmt(x.kv)}`);
  if (x.weights > x.device)
    out.push('the float32 weights alone exceed the device: use a larger device or a smaller model');
  return out;
}

/** `12.3 GiB`. */
export const fmt = (b: number): string =>
  b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`;

/** The plan as a text table plus the verdict line(s). */
export function formatPlan(plan: MemoryPlan): string {
  const w = Math.max(...plan.rows.map((r) => r.item.length));
  const lines = plan.rows.map((r) => `${r.item.padEnd(w)}  ${fmt(r.bytes).padStart(11)}  ${r.note}`);
  lines.push(`${'train step peak'.padEnd(w)}  ${fmt(plan.trainPeak).padStart(11)}`);
  if (plan.rolloutPeak > 0) lines.push(`${'rollout peak'.padEnd(w)}  ${fmt(plan.rolloutPeak).padStart(11)}`);
  const margin = plan.device - plan.peak;
  lines.push(
    plan.fits
      ? `FITS: peak ${fmt(plan.peak)} of ${fmt(plan.device)} (${fmt(margin)} to spare)`
      : `DOES NOT FIT: peak ${fmt(plan.peak)} exceeds ${fmt(plan.device)} by ${fmt(-margin)}`,
  );
  for (const a of plan.advice) lines.push(`  try ${a}`);
  return lines.join('\n');
}

// Qwen2.5-VL parameters: every param's legacy HF name and shape (spec §6.1), counts and a one-line summary, and the
// random init of HF `_init_weights` (N(0, 0.02) Linear/Conv/Embedding weights, zero biases, unit norms).
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng.js';
import { headDim, type Qwen2_5_VLConfig, type VisionConfig } from './config.js';

function visionShapes(v: VisionConfig, into: Map<string, number[]>): void {
  const { hidden_size: Dv, intermediate_size: Iv } = v;
  const P = v.patch_size;
  into.set('visual.patch_embed.proj.weight', [Dv, v.in_channels, v.temporal_patch_size, P, P]);
  for (let i = 0; i < v.depth; i++) {
    const b = `visual.blocks.${i}`;
    into.set(`${b}.norm1.weight`, [Dv]);
    into.set(`${b}.norm2.weight`, [Dv]);
    into.set(`${b}.attn.qkv.weight`, [3 * Dv, Dv]);
    into.set(`${b}.attn.qkv.bias`, [3 * Dv]);
    into.set(`${b}.attn.proj.weight`, [Dv, Dv]);
    into.set(`${b}.attn.proj.bias`, [Dv]);
    for (const p of ['gate_proj', 'up_proj']) {
      into.set(`${b}.mlp.${p}.weight`, [Iv, Dv]);
      into.set(`${b}.mlp.${p}.bias`, [Iv]);
    }
    into.set(`${b}.mlp.down_proj.weight`, [Dv, Iv]);
    into.set(`${b}.mlp.down_proj.bias`, [Dv]);
  }
  const Dm = Dv * v.spatial_merge_size ** 2;
  into.set('visual.merger.ln_q.weight', [Dv]);
  into.set('visual.merger.mlp.0.weight', [Dm, Dm]);
  into.set('visual.merger.mlp.0.bias', [Dm]);
  into.set('visual.merger.mlp.2.weight', [v.out_hidden_size, Dm]);
  into.set('visual.merger.mlp.2.bias', [v.out_hidden_size]);
}

function textShapes(c: Qwen2_5_VLConfig, into: Map<string, number[]>): void {
  const D = c.hidden_size;
  const kv = c.num_key_value_heads * headDim(c);
  into.set('model.embed_tokens.weight', [c.vocab_size, D]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `model.layers.${i}`;
    into.set(`${l}.input_layernorm.weight`, [D]);
    into.set(`${l}.post_attention_layernorm.weight`, [D]);
    into.set(`${l}.self_attn.q_proj.weight`, [D, D]);
    into.set(`${l}.self_attn.q_proj.bias`, [D]);
    for (const p of ['k_proj', 'v_proj']) {
      into.set(`${l}.self_attn.${p}.weight`, [kv, D]);
      into.set(`${l}.self_attn.${p}.bias`, [kv]);
    }
    into.set(`${l}.self_attn.o_proj.weight`, [D, D]);
    into.set(`${l}.mlp.gate_proj.weight`, [c.intermediate_size, D]);
    into.set(`${l}.mlp.up_proj.weight`, [c.intermediate_size, D]);
    into.set(`${l}.mlp.down_proj.weight`, [D, c.intermediate_size]);
  }
  into.set('model.norm.weight', [D]);
  if (!c.tie_word_embeddings) into.set('lm_head.weight', [c.vocab_size, D]);
}

/**
 * Every parameter's legacy HF name -> shape (spec §6.1), vision tower first, in module order.
 * No `lm_head.weight` when the embeddings are tied.
 * @example paramShapes(cfg).get('model.layers.0.self_attn.k_proj.weight') // [Hkv*Dh, D]
 */
export function paramShapes(cfg: Qwen2_5_VLConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  visionShapes(cfg.vision_config, m);
  textShapes(cfg, m);
  return m;
}

/** Total parameter count from the shapes (tied head counted once). @example countParams(cfg3b) // 3_754_622_976 */
export function countParams(cfg: Qwen2_5_VLConfig): number {
  let n = 0;
  for (const s of paramShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * One-line summary.
 * @example describeConfig(cfg) // 'Qwen2.5-VL 3.75B params | text D=2048 L=36 H=16/2 Dh=128 ...'
 */
export function describeConfig(cfg: Qwen2_5_VLConfig): string {
  const v = cfg.vision_config;
  const n = countParams(cfg);
  const size = n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${n}`;
  return (
    `Qwen2.5-VL ${size} params | text D=${cfg.hidden_size} L=${cfg.num_hidden_layers} H=${cfg.num_attention_heads}/${cfg.num_key_value_heads} ` +
    `Dh=${headDim(cfg)} I=${cfg.intermediate_size} V=${cfg.vocab_size}${cfg.tie_word_embeddings ? ' tied' : ''} ` +
    `mrope=[${cfg.mrope_section.join(',')}] | vision depth=${v.depth} Dv=${v.hidden_size} Hv=${v.num_heads} I=${v.intermediate_size} ` +
    `window=${v.window_size} full=[${v.fullatt_block_indexes.join(',')}]`
  );
}

/** Which HF `_init_weights` rule applies to a legacy param name. */
export function initKind(name: string): 'normal' | 'zeros' | 'ones' {
  if (name.endsWith('.bias')) return 'zeros';
  if (/(norm1|norm2|ln_q|layernorm|model\.norm)\.weight$/.test(name)) return 'ones';
  return 'normal';
}

/**
 * Random init as HF `_init_weights`: Linear / Conv3d / Embedding weights ~ N(0, 0.02), biases 0, RMSNorm weights 1.
 * Each param draws from its own stream `Rng(seed).split('init').split(name)`, so values do not depend on param order.
 * @example const params = initWeights(parseConfig(json), 0);
 */
export function initWeights(cfg: Qwen2_5_VLConfig, seed?: number, std = 0.02): Record<string, tf.Variable> {
  const root = new Rng(seed ?? 0).split('init');
  const out: Record<string, tf.Variable> = {};
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const kind = initKind(name);
    if (kind === 'ones') data.fill(1);
    if (kind === 'normal') {
      const rng = root.split(name);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    // tidy disposes the temporary tensor; the Variable keeps its data.
    out[name] = tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), true));
  }
  return out;
}

// Analytic model FLOPs of the benchmarked workloads (matMuls only, multiply-add = 2 FLOPs), the same for
// every implementation: what the model needs, not what an implementation happens to run (our LM-head loss
// recomputes the logits in backward, which is extra work and so shows up as a lower achieved rate).
//
// Shape legend: B batch, T tokens, D hidden, I MLP width, V vocab, L layers, Dkv = Hkv·Dh.
import type { Qwen2_5_VLConfig } from '../src/model/config.js';

/** Weight elements one token multiplies through in one decoder layer (q, k, v, o, gate, up, down). */
export function layerMatmulParams(cfg: Qwen2_5_VLConfig): number {
  const D = cfg.hidden_size;
  const kv = (cfg.num_key_value_heads * D) / cfg.num_attention_heads;
  return 2 * D * D + 2 * D * kv + 3 * D * cfg.intermediate_size;
}

/**
 * Forward FLOPs of B sequences of T tokens through the decoder and the full-vocabulary head: weight matMuls
 * `2·B·T·(L·layerParams + V·D)` plus attention `QKᵀ` and `PV` over all T keys (`4·B·T·T·D·L`, dense as computed).
 * @example forwardFlops(small, 2, 256) // ≈ 9.1e10
 */
export function forwardFlops(cfg: Qwen2_5_VLConfig, B: number, T: number): number {
  const L = cfg.num_hidden_layers;
  const D = cfg.hidden_size;
  const weights = 2 * B * T * (L * layerMatmulParams(cfg) + cfg.vocab_size * D);
  const attention = 4 * B * T * T * D * L;
  return weights + attention;
}

/** Training step FLOPs: forward + backward = 3 × forward (the usual 6·N·tokens rule, attention included). */
export function trainStepFlops(cfg: Qwen2_5_VLConfig, B: number, T: number): number {
  return 3 * forwardFlops(cfg, B, T);
}

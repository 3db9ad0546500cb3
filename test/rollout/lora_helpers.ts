// Test helper: a LoRA adapter that changes the model (PEFT init leaves B = 0, which equals the base model).
import * as tf from '@tensorflow/tfjs-core';
import { LoraAdapter, LoraConfig } from '../../src/model/lora.js';
import type { Qwen2_5_VL } from '../../src/model/qwen2_5_vl.js';
import { Rng } from '../../src/util/rng.js';

/** A PEFT-initialised adapter whose B is random too (B = 0 would equal the base model). */
export function randomAdapter(m: Qwen2_5_VL, seed: number, r = 4): LoraAdapter {
  const a = LoraAdapter.init(m.config, LoraConfig.parse({ r, alpha: 8 }), seed);
  const rng = new Rng(seed).split('test-b');
  for (const [k, v] of Object.entries(a.variables()))
    if (k.endsWith('lora_B.weight')) {
      const b = Float32Array.from({ length: v.size }, () => (2 * rng.uniform() - 1) * 0.2);
      tf.tidy(() => v.assign(tf.tensor(b, v.shape)));
    }
  return a;
}

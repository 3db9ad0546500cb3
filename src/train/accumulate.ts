// Gradient accumulation over micro-batch loss closures: the sum of the closures' losses and of their gradients by
// param name, with every intermediate disposed (also when a closure throws). The Trainer's update and the PPO critic
// use it. Like mlx-lm's tuner (value_and_grad per batch, grads summed) and torch's `.grad` accumulation.
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from './optim.js';

/** Loss of one micro-batch, built synchronously (it runs inside tf.variableGrads). */
export type LossClosure = () => tf.Scalar;

/**
 * Runs each closure under tf.variableGrads and sums values and gradients by param name. Caller owns `loss` and every
 * tensor of `grads`. A param no closure reaches (null gradient, e.g. the vision tower on text-only batches) gets no
 * entry, so AdamW leaves it untouched, as torch does for `p.grad is None`.
 * @example
 * const { loss, grads } = accumulateGrads([() => model.loss(a, la), () => model.loss(b, lb)], vars);
 */
export function accumulateGrads(
  losses: LossClosure[],
  vars: Record<string, tf.Variable>,
): { loss: tf.Scalar; grads: TensorMap } {
  if (losses.length === 0) throw new Error('accumulateGrads: no micro-batch loss closures');
  const names = Object.keys(vars);
  const list = names.map((n) => vars[n]);
  const sums: TensorMap = {};
  let loss: tf.Scalar = tf.scalar(0);
  try {
    for (const f of losses) {
      // tidy: when variableGrads throws (no connection), tfjs would otherwise strand the forward's loss tensor
      const { value, grads } = tf.tidy(() => tf.variableGrads(f, list));
      for (const n of names) {
        const g = grads[vars[n].name];
        if (!g) continue;
        const old = sums[n];
        sums[n] = old ? tf.add(old, g) : tf.clone(g);
        old?.dispose();
      }
      tf.dispose(Object.values(grads).filter((g) => g));
      const next = tf.add(loss, value) as tf.Scalar;
      tf.dispose([loss, value]);
      loss = next;
    }
    if (Object.keys(sums).length === 0) {
      throw new Error(
        'accumulateGrads: no trainable parameter received a gradient; check trainable vs the inputs',
      );
    }
  } catch (e) {
    // a failing closure (bad input, OOM) must not strand the sums of the micro-batches before it
    tf.dispose([loss, ...Object.values(sums)]);
    if (/Cannot find a connection between any variable/.test(String((e as Error)?.message))) {
      throw new Error(
        'accumulateGrads: no trainable parameter received a gradient; check trainable vs the inputs ' +
          "(e.g. trainable 'vision' on text-only rows)",
      );
    }
    throw e;
  }
  return { loss, grads: sums };
}

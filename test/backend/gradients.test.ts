// tfjs-core's node bundle registers no gradients; initBackend registers them (see src/backend/gradients.ts).
// This file must not import register_all_gradients itself: it checks the library does it.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { gradientsRegistered, initBackend } from '../../src/backend/index.js';

describe('gradient registration', () => {
  it('tf.grads fails before initBackend and works after it (matMul, gather, softmax)', async () => {
    await tf.setBackend('cpu');
    expect(gradientsRegistered()).toBe(false);
    expect(() => tf.grad((x: tf.Tensor) => tf.sum(x))(tf.ones([2]))).toThrow(
      /gradient function not found for Sum/,
    );
    await initBackend({ backend: 'cpu', log: () => {} });
    expect(gradientsRegistered()).toBe(true);
    const x = tf.tensor1d([1, 2, 3]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.reshape(v, [1, 3]), tf.ones([3, 2])), 2)))(
      x,
    );
    expect(Array.from(await g.data())).toEqual([4, 4, 4]);
    // d/dv softmax(v)[0] summed twice = 2 p0 (e0 - p)
    const g2 = tf.grad((v: tf.Tensor) => tf.sum(tf.gather(tf.softmax(v), tf.tensor1d([0, 0], 'int32'))))(x);
    const p = [1, 2, 3].map((v) => Math.exp(v) / (Math.E + Math.E ** 2 + Math.E ** 3));
    const want = p.map((pi, i) => 2 * p[0] * ((i === 0 ? 1 : 0) - pi));
    const got = await g2.data();
    for (const [i, w] of want.entries()) expect(got[i]).toBeCloseTo(w, 6);
  });
});

// Measured peak of live tensor memory, each buffer counted once (tfjs' own `memory().numBytes` and `tf.profile`
// count a buffer once per tensor that shares it, e.g. the engine's Identity clones of tensors saved for backward,
// so they overstate). We wrap the engine's dataId -> info table: a new dataId adds its bytes, a removed one
// subtracts them; the running maximum is the peak. Backend-agnostic (cpu, wasm, webgpu, tensorflow all register
// their buffers there); it does not see allocator overhead or fragmentation.
import * as tf from '@tensorflow/tfjs-core';

type Info = { bytes: number };
type EngineState = { tensorInfo: WeakMap<object, Info> };

/** A WeakMap that keeps the sum of the `bytes` of its live entries and that sum's maximum. */
class CountingMap extends WeakMap<object, Info> {
  live = 0;
  peak = 0;
  constructor(
    private readonly inner: WeakMap<object, Info>,
    start: number,
  ) {
    super();
    this.live = start;
    this.peak = start;
  }
  override get(k: object): Info | undefined {
    return this.inner.get(k);
  }
  override has(k: object): boolean {
    return this.inner.has(k);
  }
  override set(k: object, v: Info): this {
    if (!this.inner.has(k)) {
      this.live += v.bytes;
      if (this.live > this.peak) this.peak = this.live;
    }
    this.inner.set(k, v);
    return this;
  }
  override delete(k: object): boolean {
    const v = this.inner.get(k);
    if (v) this.live -= v.bytes;
    return this.inner.delete(k);
  }
}

/**
 * Runs `f` and returns its result with the peak of live tensor bytes during it (`peak`, absolute: everything alive,
 * weights included) and the live bytes before it (`before`). Each buffer counts once.
 * @example const { peak } = await measurePeak(() => trainer.trainStep(losses, { tokens }));
 */
export async function measurePeak<T>(
  f: () => Promise<T> | T,
): Promise<{ result: T; peak: number; before: number }> {
  const state = (tf.engine() as unknown as { state: EngineState }).state;
  // Between steps nothing shares a buffer (weights, optimizer moments), so numBytes is exact at the start.
  const before = tf.memory().numBytes;
  const counting = new CountingMap(state.tensorInfo, before);
  const original = state.tensorInfo;
  state.tensorInfo = counting;
  try {
    const result = await f();
    return { result, peak: counting.peak, before };
  } finally {
    state.tensorInfo = original;
  }
}

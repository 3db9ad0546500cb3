// Learning-rate schedules as pure functions of the optimizer step, like nanoGPT's `get_lr(it)`.
// `step` counts optimizer updates from 0 (the first update uses schedule(0)).

/** A learning-rate schedule: optimizer step (0-based) -> learning rate. */
export type Schedule = (step: number) => number;

/** Options of {@link warmupCosine}. */
export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Linear warmup steps; lr ramps (step+1)/warmupSteps * lr so step 0 already moves. */
  warmupSteps: number;
  /** Total optimizer steps; at and after this step the rate stays at the floor. */
  totalSteps: number;
  /** Floor as a fraction of lr (default 0). */
  minLrRatio?: number;
}

/**
 * Linear warmup then cosine decay to `lr * minLrRatio` at `totalSteps`.
 * @example
 * const s = warmupCosine({ lr: 1e-3, warmupSteps: 10, totalSteps: 100, minLrRatio: 0.1 });
 * s(0);   // 1e-4  (warmup 1/10)
 * s(9);   // 1e-3  (peak)
 * s(100); // 1e-4  (floor)
 */
export function warmupCosine(opts: WarmupCosineOptions): Schedule {
  const { lr, warmupSteps, totalSteps } = opts;
  const minLr = lr * (opts.minLrRatio ?? 0);
  if (!(lr >= 0) || !Number.isFinite(lr))
    throw new Error(`warmupCosine: lr must be a finite number >= 0, got ${lr}`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new Error(`warmupCosine: warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new Error(`warmupCosine: totalSteps must be an integer >= 1, got ${totalSteps}`);
  }
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  return (step: number) => {
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / decaySteps);
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * Constant learning rate, with optional linear warmup.
 * @example
 * constant(1e-5)(123); // 1e-5
 */
export function constant(lr: number, warmupSteps = 0): Schedule {
  if (!(lr >= 0) || !Number.isFinite(lr))
    throw new Error(`constant: lr must be a finite number >= 0, got ${lr}`);
  return (step: number) => (step < warmupSteps ? (lr * (step + 1)) / warmupSteps : lr);
}

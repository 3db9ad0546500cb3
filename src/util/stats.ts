// Small statistics over plain number arrays, shared by the trainers' logs, the demo and its report.

/**
 * Arithmetic mean; `empty` (default NaN) for an empty list, so a caller decides what "no data" reads as.
 * @example mean([1, 2, 3]) // 2
 * @example mean([], 0) // 0
 */
export function mean(xs: readonly number[], empty = Number.NaN): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : empty;
}

// Per-kernel profile summary of one step from `tf.profile` (kernel name, time, input shapes): totals by kernel
// name, and within each name the costliest input-shape signature, so a table row says which call dominates.
// Times are the kernel's own wall time as measured by tfjs (inclusive of kernels a patched kernel calls).
// tf.customGrad ops appear as 'unnamed scope' rows whose time includes the kernels they ran, which are
// recorded too: those rows are dropped so nothing is counted twice.

/** One kernel invocation as recorded by tf.profile. */
export interface KernelRow {
  name: string;
  ms: number;
  inputShapes: (number[] | null)[];
}

/** Aggregate of one kernel name. */
export interface KernelSummary {
  name: string;
  calls: number;
  ms: number;
  /** Share of the summed kernel time, 0..1. */
  share: number;
  /** Input shapes of the costliest signature (e.g. `[512,512]x[151936,512]`) and its total ms and calls. */
  top: { shapes: string; ms: number; calls: number };
}

/** Name tfjs gives customGrad / scope invocations (inclusive time; their inner kernels are recorded separately). */
export const SCOPE = 'unnamed scope';

const signature = (shapes: (number[] | null)[]): string =>
  shapes.map((s) => (s ? `[${s.join(',')}]` : '-')).join('x');

/**
 * Groups kernel rows by name, sorted by total time; keeps the `limit` costliest names and folds the rest into
 * an `(other)` row. Shares are of the total kernel time.
 * @example aggregateKernels([{ name: 'Add', ms: 2, inputShapes: [[2], [2]] }], 10)[0].share // 1
 */
export function aggregateKernels(all0: KernelRow[], limit: number): KernelSummary[] {
  const rows = all0.filter((r) => r.name !== SCOPE);
  const total = rows.reduce((s, r) => s + r.ms, 0) || 1;
  const byName = new Map<
    string,
    { calls: number; ms: number; sigs: Map<string, { ms: number; calls: number }> }
  >();
  for (const r of rows) {
    const e = byName.get(r.name) ?? { calls: 0, ms: 0, sigs: new Map() };
    e.calls += 1;
    e.ms += r.ms;
    const sig = signature(r.inputShapes);
    const s = e.sigs.get(sig) ?? { ms: 0, calls: 0 };
    s.ms += r.ms;
    s.calls += 1;
    e.sigs.set(sig, s);
    byName.set(r.name, e);
  }
  const all = [...byName.entries()]
    .map(([name, e]): KernelSummary => {
      const [shapes, t] = [...e.sigs.entries()].sort((a, b) => b[1].ms - a[1].ms)[0];
      return {
        name,
        calls: e.calls,
        ms: e.ms,
        share: e.ms / total,
        top: { shapes, ms: t.ms, calls: t.calls },
      };
    })
    .sort((a, b) => b.ms - a.ms);
  if (all.length <= limit) return all;
  const rest = all.slice(limit);
  const ms = rest.reduce((s, r) => s + r.ms, 0);
  const calls = rest.reduce((s, r) => s + r.calls, 0);
  const other: KernelSummary = {
    name: `(other: ${rest.length} kernels)`,
    calls,
    ms,
    share: ms / total,
    top: { shapes: '', ms: 0, calls: 0 },
  };
  return [...all.slice(0, limit), other];
}

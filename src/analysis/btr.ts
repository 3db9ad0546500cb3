// Behaviour Transfer Rate (OVR App. C.1, Fig. 5b): for each pair of a visual behaviour and its linguistic counterpart
// (judge_prompts.ts BEHAVIOR_PAIRS), BTR = CBR_v / CBR_l, where CBR_v is the emergence rate of the visual behaviour in
// traces of visual tasks and CBR_l the rate of the linguistic behaviour in traces of language-only tasks. The
// emergence rate is the fraction of judged traces with count >= 1 (traces the judge could not score are left out of
// the denominator and reported). Computed per stage (e.g. base -> cold start -> RL, or per checkpoint step).
import { type Behavior, explainBehaviors } from './behaviors.js';
import { BEHAVIOR_PAIRS, type JudgeBehavior } from './judge_prompts.js';

/** Counts one behaviour in each trace; null = unscored. A JudgeClient or the offline lexicon fit this. */
export type BehaviorCounter = (
  behavior: JudgeBehavior,
  traces: readonly string[],
) => Promise<(number | null)[]>;

/** Judge behaviours the offline lexicon (behaviors.ts) covers; the other visual ones have no lexicon. */
const LEXICON: Partial<Record<JudgeBehavior, Behavior>> = {
  backtracking: 'backtracking',
  subgoal: 'subgoal',
  verification: 'verification',
  backwardChaining: 'backwardChaining',
  visualReflection: 'visualReflection',
};

/**
 * Offline counter from the lexicon: the number of distinct patterns that fire (so count >= 1 iff detectBehaviors
 * says true); null for behaviours the lexicon does not cover (visual divide-and-conquer, visual verification,
 * goal-driven tracing), so only the backtracking pair gets a BTR offline.
 * @example await lexiconCounter('backtracking', ['Wait, no.']) // [1]
 */
export const lexiconCounter: BehaviorCounter = async (behavior, traces) => {
  const b = LEXICON[behavior];
  return traces.map((t) => (b ? explainBehaviors(t)[b].length : null));
};

/** Traces of one stage: visual-task traces and language-only-task traces. */
export interface StageTraces {
  stage: string;
  visual: readonly string[];
  linguistic: readonly string[];
}

/** Emergence statistics of one behaviour on one set of traces. */
export interface Emergence {
  /** Fraction of scored traces with count >= 1 (NaN when none was scored). */
  rate: number;
  /** Mean count over scored traces. */
  meanCount: number;
  scored: number;
  unscored: number;
}

/** One row of the transfer table. */
export interface PairRow {
  label: string;
  visual: JudgeBehavior;
  linguistic: JudgeBehavior;
  cbrV: Emergence;
  cbrL: Emergence;
  /** CBR_v / CBR_l; null when CBR_l is 0 or either rate is undefined. */
  btr: number | null;
}

export interface StageBtr {
  stage: string;
  nVisual: number;
  nLinguistic: number;
  pairs: PairRow[];
}

/**
 * Emergence rate and mean count of a list of counts (nulls left out).
 * @example emergence([0, 2, null, 1]) // { rate: 2/3, meanCount: 1, scored: 3, unscored: 1 }
 */
export function emergence(counts: readonly (number | null)[]): Emergence {
  const scored = counts.filter((c): c is number => c !== null);
  const n = scored.length;
  return {
    rate: n ? scored.filter((c) => c >= 1).length / n : Number.NaN,
    meanCount: n ? scored.reduce((a, b) => a + b, 0) / n : Number.NaN,
    scored: n,
    unscored: counts.length - n,
  };
}

/** CBR_v / CBR_l, null when undefined. @example transferRate(0.1, 0.4) // 0.25 */
export function transferRate(cbrV: number, cbrL: number): number | null {
  return Number.isFinite(cbrV) && Number.isFinite(cbrL) && cbrL > 0 ? cbrV / cbrL : null;
}

/**
 * BTR of every behaviour pair for every stage: the visual behaviour counted on the stage's visual traces, the
 * linguistic one on its linguistic traces.
 * @example const rows = await stageBtr([{ stage: 'rl', visual, linguistic }], judgeCounter(judge));
 */
export async function stageBtr(stages: readonly StageTraces[], count: BehaviorCounter): Promise<StageBtr[]> {
  const out: StageBtr[] = [];
  for (const s of stages) {
    const pairs: PairRow[] = [];
    for (const p of BEHAVIOR_PAIRS) {
      const cbrV = emergence(await count(p.visual, s.visual));
      const cbrL = emergence(await count(p.linguistic, s.linguistic));
      pairs.push({ ...p, cbrV, cbrL, btr: transferRate(cbrV.rate, cbrL.rate) });
    }
    out.push({ stage: s.stage, nVisual: s.visual.length, nLinguistic: s.linguistic.length, pairs });
  }
  return out;
}

const pct = (x: number | null): string =>
  x === null || !Number.isFinite(x) ? '-' : `${(100 * x).toFixed(1)}%`;

/**
 * Text table: one row per stage, per pair CBR_v / CBR_l / BTR (percentages, as OVR Fig. 5b).
 * @example console.log(formatBtrTable(rows));
 */
export function formatBtrTable(rows: readonly StageBtr[]): string {
  const head = ['stage', 'n_v', 'n_l', ...BEHAVIOR_PAIRS.flatMap((p) => [`${p.label} v`, 'l', 'BTR'])];
  const body = rows.map((r) => [
    r.stage,
    String(r.nVisual),
    String(r.nLinguistic),
    ...r.pairs.flatMap((p) => [pct(p.cbrV.rate), pct(p.cbrL.rate), pct(p.btr)]),
  ]);
  const widths = head.map((h, j) => Math.max(h.length, ...body.map((b) => b[j].length)));
  const line = (cells: string[]) => cells.map((c, j) => c.padStart(widths[j])).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

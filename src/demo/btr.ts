// The demo's behaviour-transfer analysis (OVR App. C.1): BTR per stage (base -> cold start -> RL) from the held-out
// evals on images (visual tasks) and on text renderings (linguistic tasks) of each stage's model. Scored offline with
// the lexicon by default (only the backtracking / visual-reflection pair has both sides), or with an LLM judge when
// the demo is given one. Also writes eval/btr_visual.jsonl and eval/btr_linguistic.jsonl (step 0 base, 1 cold start,
// 2 RL) so `ovr-train behaviors eval/btr_visual.jsonl --linguistic eval/btr_linguistic.jsonl --judge-url ...`
// recomputes the table with any judge later.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { lexiconCounter, type StageBtr, stageBtr } from '../analysis/btr.js';
import { formatJudgeStats, JudgeClient, type JudgeStats } from '../analysis/judge.js';
import type { DemoEvalResult } from './eval.js';

/** An OpenAI-compatible judge for the demo's behaviour analysis. */
export interface DemoJudge {
  url: string;
  model: string;
  cacheDir?: string;
  apiKey?: string;
}

/** One stage's held-out evals: on images (visual) and on text renderings (linguistic). */
export type StageEvals = { stage: 'base' | 'cold start' | 'RL'; image: DemoEvalResult; text: DemoEvalResult };

/** BTR rows per stage, the scorer used, and the judge's report when there was one. */
export interface DemoBtr {
  scorer: 'lexicon' | 'judge';
  rows: StageBtr[];
  judge?: JudgeStats;
  judgeReport?: string;
}

/**
 * Writes the two trace files and computes BTR per stage.
 * @example const btr = await demoBtr(out, [{ stage: 'base', image, text }, ...]);
 */
export async function demoBtr(
  out: string,
  stages: readonly StageEvals[],
  judge?: DemoJudge,
): Promise<DemoBtr> {
  const dir = path.join(out, 'eval');
  await mkdir(dir, { recursive: true });
  const lines = (pick: (s: StageEvals) => DemoEvalResult) =>
    stages.flatMap((s, step) =>
      pick(s).rows.map((r) =>
        JSON.stringify({ step, stage: s.stage, id: r.id, task: r.task, completion: r.completion }),
      ),
    );
  await writeFile(path.join(dir, 'btr_visual.jsonl'), `${lines((s) => s.image).join('\n')}\n`);
  await writeFile(path.join(dir, 'btr_linguistic.jsonl'), `${lines((s) => s.text).join('\n')}\n`);
  const client = judge ? new JudgeClient({ ...judge, concurrency: 4 }) : undefined;
  const rows = await stageBtr(
    stages.map((s) => ({
      stage: s.stage,
      visual: s.image.rows.map((r) => r.completion),
      linguistic: s.text.rows.map((r) => r.completion),
    })),
    client ? client.counter() : lexiconCounter,
  );
  if (!client) return { scorer: 'lexicon', rows };
  const st = client.stats();
  return { scorer: 'judge', rows, judge: st, judgeReport: formatJudgeStats(st) };
}

/** Report table: per stage and pair, CBR_v / CBR_l / BTR (null where undefined). */
export function btrTable(b: DemoBtr): {
  name: string;
  columns: string[];
  rows: (string | number | null)[][];
} {
  const pairs = b.rows[0]?.pairs.map((p) => p.label) ?? [];
  const fin = (x: number | null) => (x !== null && Number.isFinite(x) ? x : null);
  return {
    name:
      `Behaviour transfer rate BTR = CBR_v / CBR_l per stage (${b.scorer === 'judge' ? 'LLM judge' : 'offline lexicon: only the backtracking pair is scored'}; ` +
      'visual behaviour on held-out image replies, its linguistic counterpart on text-rendering replies)',
    columns: ['stage', ...pairs.flatMap((p) => [`${p} CBR_v`, `${p} CBR_l`, `${p} BTR`])],
    rows: b.rows.map((r) => [
      r.stage,
      ...r.pairs.flatMap((p) => [fin(p.cbrV.rate), fin(p.cbrL.rate), fin(p.btr)]),
    ]),
  };
}

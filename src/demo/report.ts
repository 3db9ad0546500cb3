// The demo's HTML report and PNG charts (report/charts.ts, report/html.ts): reward, held-out accuracy, response
// length and behaviour rates over RL steps, the SFT loss, and held-out accuracy by task.
import path from 'node:path';
import { BEHAVIORS, type Behavior } from '../analysis/behaviors.js';
import { lineChart } from '../report/charts.js';
import { writeReport } from '../report/html.js';
import { findBoxes } from '../reward/extract.js';
import type { GrpoStepRecord } from '../train/grpo.js';
import type { StepRecord } from '../util/log.js';
import { mean } from '../util/stats.js';
import { btrTable, type DemoBtr } from './btr.js';
import type { CaptionEvalResult, DemoEvalResult } from './eval.js';
import { normalizeAnswer } from './grade.js';
import type { DemoOptions, DemoSummary } from './options.js';
import { TASK_KINDS } from './tasks.js';

/**
 * Which answers a model gives, per task: `{ task: { answer: count } }` over the last \\boxed{} of each completion
 * ('(none)' when there is none). Shows answer biases: a model that always says "square" scores by luck, not sight.
 * @example answerCounts([{ task: 'largest', completion: '\\boxed{square}' }]) // { largest: { square: 1 } }
 */
export function answerCounts(
  rows: readonly { task: string; completion: string }[],
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) {
    const got = findBoxes(r.completion).at(-1)?.content ?? null;
    const a = got === null ? '(none)' : normalizeAnswer(got);
    out[r.task] ??= {};
    out[r.task][a] = (out[r.task][a] ?? 0) + 1;
  }
  return out;
}

/** `answer xN, ...` most frequent first. */
const countsText = (c: Record<string, number> | undefined): string =>
  Object.entries(c ?? {})
    .sort((a, b) => b[1] - a[1])
    .map(([a, n]) => `${a} x${n}`)
    .join(', ');

/** Moving average over a window of `k` (shorter at the start). */
function smooth(points: [number, number][], k: number): [number, number][] {
  return points.map(([x], i) => [x, mean(points.slice(Math.max(0, i - k + 1), i + 1).map((p) => p[1]))]);
}

export type Curves = {
  pretrain: StepRecord[];
  sft: StepRecord[];
  captions: { base: CaptionEvalResult; coldStart: CaptionEvalResult; rl: CaptionEvalResult };
  rl: GrpoStepRecord[];
  evalCurve: [number, number][];
  cold: DemoEvalResult;
  coldText: DemoEvalResult;
  after: DemoEvalResult;
  btr: DemoBtr;
};

async function demoCharts(c: Curves): Promise<{ name: string; png: Buffer }[]> {
  const pts = (rs: StepRecord[], k: string): [number, number][] => rs.map((r) => [r.step, r[k] as number]);
  const reward = pts(c.rl, 'rewardMean');
  const beh = (b: Behavior): [number, number][] =>
    c.rl.map((r) => [r.step, (r.behaviors as Record<Behavior, number>)[b]]);
  return [
    {
      name: 'reward',
      png: await lineChart({
        title: 'RL reward (held-in images)',
        xLabel: 'RL step',
        yLabel: 'mean reward',
        series: [
          { name: 'per step', points: reward },
          { name: 'moving avg (5)', points: smooth(reward, 5) },
        ],
      }),
    },
    {
      name: 'accuracy',
      png: await lineChart({
        title: 'Held-out image accuracy during RL',
        xLabel: 'RL step',
        yLabel: 'accuracy',
        series: [{ name: 'eval subset (greedy)', points: c.evalCurve }],
      }),
    },
    {
      name: 'response_length',
      png: await lineChart({
        title: 'Response length',
        xLabel: 'RL step',
        yLabel: 'tokens',
        series: [
          { name: 'mean', points: pts(c.rl, 'responseLenMean') },
          { name: 'max', points: pts(c.rl, 'responseLenMax') },
        ],
      }),
    },
    {
      name: 'behaviors',
      png: await lineChart({
        title: 'Cognitive behaviours in rollouts',
        xLabel: 'RL step',
        yLabel: 'rate',
        series: BEHAVIORS.map((b) => ({ name: b, points: beh(b) })),
      }),
    },
    {
      name: 'sft_loss',
      png: await lineChart({
        title: 'SFT losses: stage 0 captions (images), stage 1 cold start (text only)',
        xLabel: 'step',
        yLabel: 'loss',
        series: [
          { name: 'stage 0 captioning', points: pts(c.pretrain, 'loss') },
          { name: 'stage 1 cold start', points: pts(c.sft, 'loss') },
        ],
      }),
    },
  ];
}

/** Share of an eval's completions with a `\boxed{}` answer (well-formed, right or wrong). */
const boxedShare = (r: DemoEvalResult): number =>
  r.rows.length
    ? r.rows.filter((x) => findBoxes(x.completion).length > 0).length / r.rows.length
    : Number.NaN;

/** Writes `o.out/report/` (index.html + PNG charts); returns the HTML path. */
export async function writeDemoReport(o: DemoOptions, s: DemoSummary, c: Curves): Promise<string> {
  const byTask = (r: DemoEvalResult) => TASK_KINDS.map((t) => r.byTask[t] ?? null);
  const samples = c.after.rows.slice(0, 6).map((r) => ({
    title: `eval ${r.id} (${r.task}) after RL`,
    completion: r.completion,
    meta: { answer: r.answer, reward: r.reward },
  }));
  return writeReport(path.join(o.out, 'report'), {
    title: 'OVR demo: linguistic cold start + multimodal RL (toy scale)',
    summary: {
      'wall time (s)': Math.round(s.wallSeconds),
      'stage 0 captioning loss start -> end': `${s.pretrainLossStart.toFixed(3)} -> ${s.pretrainLossEnd.toFixed(3)}`,
      'held-out caption item accuracy, base model': s.captionItemAccuracy.base,
      'SFT loss start -> end': `${s.sftLossStart.toFixed(3)} -> ${s.sftLossEnd.toFixed(3)}`,
      [`RL (${s.rlAlgorithm}) reward first -> last fifth`]: `${s.rewardStart.toFixed(3)} -> ${s.rewardEnd.toFixed(3)}`,
      'held-out image accuracy, cold start': s.coldStartImageAccuracy,
      'held-out image accuracy, after RL': s.rlImageAccuracy,
      'held-out text accuracy, cold start': s.coldStartTextAccuracy,
      seed: o.seed,
    },
    charts: await demoCharts(c),
    tables: [
      btrTable(c.btr),
      {
        name: 'Held-out accuracy by task, and the share of replies that end in a \\boxed{} answer at all',
        columns: ['model', 'input', ...TASK_KINDS, 'all', 'boxed'],
        rows: [
          ['cold start', 'text', ...byTask(c.coldText), c.coldText.accuracy, boxedShare(c.coldText)],
          ['cold start', 'image', ...byTask(c.cold), c.cold.accuracy, boxedShare(c.cold)],
          ['after RL', 'image', ...byTask(c.after), c.after.accuracy, boxedShare(c.after)],
        ],
      },
      {
        name: 'Held-out captions ("Describe the picture."): perception of the base model, kept or lost by each stage',
        columns: ['model', 'item accuracy', 'exact', 'example (gold -> caption)'],
        rows: (
          [
            ['base (stage 0)', c.captions.base],
            ['cold start (stage 1)', c.captions.coldStart],
            ['after RL (stage 2)', c.captions.rl],
          ] as const
        ).map(([m, r]) => [
          m,
          r.itemAccuracy,
          r.exact,
          r.rows[0] ? `${r.rows[0].description} -> ${r.rows[0].caption}` : '',
        ]),
      },
      {
        name: 'Held-out answers given, by task (compare winners are balanced first/second option: see makeProblems)',
        columns: ['model', 'input', ...TASK_KINDS],
        rows: (
          [
            [
              'gold',
              'image',
              c.after.rows.map((r) => ({ task: r.task, completion: `\\boxed{${r.answer}}` })),
            ],
            ['cold start', 'image', c.cold.rows],
            ['after RL', 'image', c.after.rows],
          ] as const
        ).map(([m, i, rows]) => {
          const counts = answerCounts(rows);
          return [m, i, ...TASK_KINDS.map((t) => countsText(counts[t]))];
        }),
      },
    ],
    samples,
  });
}

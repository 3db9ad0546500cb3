// `ovr-train behaviors ROLLOUTS.jsonl [--text-field completion] [--step-field step] [--json]`
// Reads rollouts (one JSON object per line), groups them by step, and prints the fraction of completions that
// show each cognitive behaviour (analysis/behaviors.ts). A text field may hold a string or an array of strings
// (a GRPO group). Rows without the step field are an error unless no row has it (then one group, step "all").
// Judge mode (OVR §5.2): `--judge-url URL --judge-model M` counts the 8 behaviours with an LLM judge instead of the
// lexicon; `--linguistic LING.jsonl` adds a second set of traces (language-only tasks, same steps) and prints the
// Behaviour Transfer Rate per step (analysis/btr.ts): with the judge for all 4 pairs, with the lexicon for the
// backtracking / visual-reflection pair only.

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { BEHAVIORS, type Behavior, behaviorRates } from '../analysis/behaviors.js';
import {
  type BehaviorCounter,
  emergence,
  formatBtrTable,
  lexiconCounter,
  type StageTraces,
  stageBtr,
} from '../analysis/btr.js';
import { formatJudgeStats, JudgeClient } from '../analysis/judge.js';
import { JUDGE_BEHAVIORS } from '../analysis/judge_prompts.js';
import { helpText } from './args.js';
import { parseCommand } from './common.js';

export type StepRates = { step: number | 'all'; n: number; rates: Record<Behavior, number> };

/** Texts of one step group. */
export type StepTexts = { step: number | 'all'; texts: string[] };

/** Groups JSONL rollouts by step (sorted); `source` names the file in errors. */
export function textsByStep(
  jsonl: string,
  textField: string,
  stepField: string,
  source = 'input',
): StepTexts[] {
  const groups = new Map<number | 'all', string[]>();
  let withStep = 0;
  let rows = 0;
  jsonl.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch {
      throw new Error(`${source}:${i + 1}: not valid JSON`);
    }
    const text = row[textField];
    const texts = Array.isArray(text) ? text : [text];
    if (!texts.length || texts.some((t) => typeof t !== 'string')) {
      throw new Error(
        `${source}:${i + 1}: field '${textField}' is not a string or string[]; pass --text-field NAME`,
      );
    }
    const step = row[stepField];
    if (step !== undefined && typeof step !== 'number') {
      throw new Error(
        `${source}:${i + 1}: field '${stepField}' is ${JSON.stringify(step)}, expected a number`,
      );
    }
    rows++;
    if (step !== undefined) withStep++;
    const key = step ?? 'all';
    const group = groups.get(key) ?? [];
    group.push(...(texts as string[]));
    groups.set(key, group);
  });
  if (withStep > 0 && withStep < rows) {
    throw new Error(
      `${source}: ${rows - withStep} of ${rows} rows lack '${stepField}'; pass --step-field NAME`,
    );
  }
  return [...groups.entries()]
    .sort((a, b) => (a[0] === 'all' ? 0 : (a[0] as number)) - (b[0] === 'all' ? 0 : (b[0] as number)))
    .map(([step, texts]) => ({ step, texts }));
}

/** Groups JSONL rollouts by step and computes behaviour rates; `source` names the file in errors. */
export function ratesByStep(
  jsonl: string,
  textField: string,
  stepField: string,
  source = 'input',
): StepRates[] {
  return textsByStep(jsonl, textField, stepField, source).map(({ step, texts }) => ({
    step,
    n: texts.length,
    rates: behaviorRates(texts),
  }));
}

/** Fixed-width text table of per-step rates. */
export function formatRatesTable(rows: StepRates[]): string {
  const head = ['step', 'n', ...BEHAVIORS];
  const body = rows.map((r) => [String(r.step), String(r.n), ...BEHAVIORS.map((b) => r.rates[b].toFixed(3))]);
  const widths = head.map((h, j) => Math.max(h.length, ...body.map((r) => r[j].length)));
  const line = (cells: string[]) => cells.map((c, j) => c.padStart(widths[j])).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

/** Flags of `ovr-train behaviors` (after the file path). */
export const BehaviorsArgs = z
  .object({
    textField: z
      .string()
      .min(1)
      .default('completion')
      .describe('field holding the completion: a string, or a string[] (one GRPO group)'),
    stepField: z.string().min(1).default('step').describe('field holding the training step number'),
    json: z.boolean().default(false).describe('print JSON instead of a table'),
    linguistic: z
      .string()
      .min(1)
      .optional()
      .describe(
        'JSONL of traces on language-only tasks (same steps): prints the Behaviour Transfer Rate per step',
      ),
    judgeUrl: z
      .string()
      .url()
      .optional()
      .describe(
        'OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1): count behaviours with an LLM judge',
      ),
    judgeModel: z.string().min(1).optional().describe('model name for the judge (the paper used gpt-4o)'),
    judgeConcurrency: z.number().int().min(1).default(4).describe('judge requests in flight at once'),
    judgeRetries: z
      .number()
      .int()
      .min(0)
      .default(3)
      .describe('retries on 429 / 5xx / dropped connection / timeout'),
    judgeTimeout: z.number().positive().default(120).describe('seconds before a judge request times out'),
    judgeCache: z
      .string()
      .min(1)
      .optional()
      .describe(
        'cache folder of judge verdicts (default ~/.cache/ovr/judge); reruns send no repeated request',
      ),
    judgeApiKeyEnv: z
      .string()
      .min(1)
      .default('OPENAI_API_KEY')
      .describe('environment variable holding the judge API key (sent only when set)'),
    judgePriceIn: z.number().nonnegative().optional().describe('USD per million prompt tokens (cost report)'),
    judgePriceOut: z
      .number()
      .nonnegative()
      .optional()
      .describe('USD per million completion tokens (cost report)'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.judgeUrl === undefined) !== (c.judgeModel === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [c.judgeUrl ? 'judgeModel' : 'judgeUrl'],
        message: 'judge mode needs both --judge-url and --judge-model',
      });
    }
  });

type Args = z.output<typeof BehaviorsArgs>;

/** Pairs the step groups of the visual and the linguistic files; every step must be in both. */
function stagesOf(visual: { step: number | 'all'; texts: string[] }[], ling: typeof visual, files: string[]) {
  const byStep = new Map(ling.map((g) => [g.step, g.texts]));
  const stages: StageTraces[] = visual.map((g) => {
    const l = byStep.get(g.step);
    if (!l)
      throw new Error(`step ${g.step} is in ${files[0]} but not in ${files[1]}; both need the same steps`);
    byStep.delete(g.step);
    return { stage: String(g.step), visual: g.texts, linguistic: l };
  });
  const extra = [...byStep.keys()];
  if (extra.length)
    throw new Error(`step ${extra[0]} is in ${files[1]} but not in ${files[0]}; both need the same steps`);
  return stages;
}

/** Judge mode / BTR mode: prints the table (and the judge report); returns the exit code. */
async function judgeOrBtr(file: string, text: string, a: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const judge =
    a.judgeUrl && a.judgeModel
      ? new JudgeClient({
          url: a.judgeUrl,
          model: a.judgeModel,
          apiKey: env[a.judgeApiKeyEnv] || undefined,
          concurrency: a.judgeConcurrency,
          retries: a.judgeRetries,
          timeoutMs: a.judgeTimeout * 1000,
          cacheDir: a.judgeCache ?? path.join(os.homedir(), '.cache', 'ovr', 'judge'),
          priceInPerMTok: a.judgePriceIn,
          priceOutPerMTok: a.judgePriceOut,
        })
      : undefined;
  const counter: BehaviorCounter = judge ? judge.counter() : lexiconCounter;
  const visual = textsByStep(text, a.textField, a.stepField, file);
  let out: unknown;
  let table: string;
  if (a.linguistic) {
    const lingText = await readFile(a.linguistic, 'utf8').catch(() => {
      throw new Error(`ovr-train behaviors: cannot read --linguistic '${a.linguistic}'`);
    });
    const ling = textsByStep(lingText, a.textField, a.stepField, a.linguistic);
    const rows = await stageBtr(stagesOf(visual, ling, [file, a.linguistic]), counter);
    out = rows;
    table = formatBtrTable(rows);
  } else {
    const rows = [];
    for (const g of visual) {
      const rates: Record<string, number> = {};
      for (const b of JUDGE_BEHAVIORS) rates[b] = emergence(await counter(b, g.texts)).rate;
      rows.push({ step: g.step, n: g.texts.length, rates });
    }
    out = rows;
    const head = ['step', 'n', ...JUDGE_BEHAVIORS];
    const body = rows.map((r) => [
      String(r.step),
      String(r.n),
      ...JUDGE_BEHAVIORS.map((b) => r.rates[b].toFixed(3)),
    ]);
    const w = head.map((h, j) => Math.max(h.length, ...body.map((x) => x[j].length)));
    table = [head, ...body].map((cells) => cells.map((c, j) => c.padStart(w[j])).join('  ')).join('\n');
  }
  const report = judge
    ? formatJudgeStats(judge.stats())
    : 'lexicon (offline): only the backtracking pair has a BTR';
  console.log(
    a.json ? JSON.stringify({ rows: out, judge: judge?.stats() }, null, 2) : `${table}\n\n${report}`,
  );
  return 0;
}

const USAGE =
  'Rates of cognitive behaviours (backtracking, verification, subgoal, backward chaining, visual reflection)\n' +
  'per training step; the patterns are listed in docs/behaviors.md. With --judge-url/--judge-model an LLM judge\n' +
  'counts the 8 behaviours of the OVR analysis; with --linguistic LING.jsonl the Behaviour Transfer Rate is printed.';

/** CLI entry: `ovr-train behaviors ROLLOUTS.jsonl [flags]`; returns the exit code. */
export async function behaviorsCommand(argv: string[]): Promise<number> {
  const [file, ...rest] = argv;
  if (file === undefined || file === '--help' || file === '-h') {
    console.log(`${USAGE}\n\n${helpText(BehaviorsArgs, 'ovr-train behaviors ROLLOUTS.jsonl')}`);
    return file === undefined ? 2 : 0;
  }
  if (file.startsWith('-')) {
    console.error(`ovr-train behaviors: the rollouts file comes first, got '${file}'\n\n${USAGE}`);
    return 2;
  }
  const p = parseCommand(BehaviorsArgs, rest, 'ovr-train behaviors ROLLOUTS.jsonl', USAGE);
  if ('exit' in p) return p.exit;
  const cfg = p.config as z.output<typeof BehaviorsArgs>;
  const { textField, stepField, json } = cfg;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`ovr-train behaviors: cannot read '${file}'`);
  });
  if (cfg.judgeUrl || cfg.linguistic) return judgeOrBtr(file, text, cfg, process.env);
  const rows = ratesByStep(text, textField, stepField, file);
  console.log(json ? JSON.stringify(rows, null, 2) : formatRatesTable(rows));
  return 0;
}

// `ovr-train behaviors ROLLOUTS.jsonl [--text-field completion] [--step-field step] [--json]`
// Reads rollouts (one JSON object per line), groups them by step, and prints the fraction of completions that
// show each cognitive behaviour (analysis/behaviors.ts). A text field may hold a string or an array of strings
// (a GRPO group). Rows without the step field are an error unless no row has it (then one group, step "all").

import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { BEHAVIORS, type Behavior, behaviorRates } from '../analysis/behaviors.js';
import { helpText } from './args.js';
import { parseCommand } from './common.js';

export type StepRates = { step: number | 'all'; n: number; rates: Record<Behavior, number> };

/** Groups JSONL rollouts by step and computes behaviour rates; `source` names the file in errors. */
export function ratesByStep(
  jsonl: string,
  textField: string,
  stepField: string,
  source = 'input',
): StepRates[] {
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
    .map(([step, texts]) => ({ step, n: texts.length, rates: behaviorRates(texts) }));
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
  })
  .strict();

const USAGE =
  'Rates of cognitive behaviours (backtracking, verification, subgoal, backward chaining, visual reflection)\n' +
  'per training step; the patterns are listed in docs/behaviors.md.';

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
  const { textField, stepField, json } = p.config as z.output<typeof BehaviorsArgs>;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`ovr-train behaviors: cannot read '${file}'`);
  });
  const rows = ratesByStep(text, textField, stepField, file);
  console.log(json ? JSON.stringify(rows, null, 2) : formatRatesTable(rows));
  return 0;
}

// `ovr-train eval --model DIR --data FILE.jsonl [--limit N] [--samples K] [--out DIR] [--max-new-tokens N] ...`
// Benchmark evaluation (src/eval): MATH500, MATH-Vision and MathVerse text-only JSONL; greedy pass@1 or avg@K;
// accuracy overall / per subject / per level; every completion + verdict in OUT/completions.jsonl.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BACKEND_NAMES } from '../backend/index.js';
import { COMPACT_VOCAB_FILE } from '../data/compact_vocab.js';
import { PROMPT_TEMPLATES } from '../data/templates.js';
import { defaultTokenizer, loadTokenizer } from '../data/tokenizer.js';
import { readEvalItems } from '../eval/data.js';
import { type Breakdown, type EvalSummary, runEval, summarizeRecords } from '../eval/harness.js';
import { openRunFolder } from '../io/run_folder.js';
import { loadModel } from '../model/load.js';
import { modelFlags, startCommand } from './common.js';

export const EvalArgs = z
  .object({
    ...modelFlags,
    data: z
      .string()
      .min(1)
      .describe(
        'benchmark JSONL: MATH500 (problem/answer), MATH-Vision (question/image/answer), MathVerse (question/answer)',
      ),
    limit: z.number().int().min(1).optional().describe('evaluate only the first N rows'),
    samples: z
      .number()
      .int()
      .min(1)
      .default(1)
      .describe('completions per problem: 1 = greedy pass@1, K > 1 = sampled avg@K'),
    temperature: z
      .number()
      .min(0)
      .optional()
      .describe('sampling temperature (default: greedy for K = 1, 1.0 for K > 1)'),
    maxNewTokens: z.number().int().min(1).default(1024).describe('most new tokens per completion'),
    template: z
      .enum(PROMPT_TEMPLATES)
      .default('qwen')
      .describe('prompt template: qwen (chat + \\boxed{} CoT suffix) or orz (think/answer)'),
    batchSize: z.number().int().min(1).default(8).describe('problems per generation batch'),
    maxPixels: z
      .number()
      .int()
      .min(3136)
      .default(401408)
      .describe('upper bound on image pixels after resizing'),
    seed: z.number().int().min(0).default(0).describe('sampling seed'),
    out: z.string().optional().describe('output folder (default runs/eval-<timestamp>)'),
    overwrite: z
      .boolean()
      .default(false)
      .describe('replace the results in an --out folder that already holds some (default: refuse)'),
    backend: z.enum(BACKEND_NAMES).optional().describe('tfjs backend (default: OVR_BACKEND or auto)'),
  })
  .strict();

export type EvalArgsT = z.output<typeof EvalArgs>;

function breakdownLines(name: string, b: Breakdown): string[] {
  return Object.entries(b)
    .sort(([a], [c]) => a.localeCompare(c))
    .map(([k, v]) => `  ${name} ${k.padEnd(28)} ${v.accuracy.toFixed(3)}  (n=${v.n})`);
}

/** Human-readable summary. */
export function formatEvalSummary(s: EvalSummary): string {
  return [
    `${s.metric} accuracy ${s.accuracy.toFixed(3)} on ${s.n} problems`,
    ...breakdownLines('subject', s.bySubject),
    ...breakdownLines('level', s.byLevel),
  ].join('\n');
}

/**
 * Loads the model, runs the benchmark, writes OUT/completions.jsonl + OUT/summary.json; returns the summary.
 * The tfjs backend must be set up.
 * @example const s = await evalRun({ ...EvalArgs.parse({ model: 'm', data: 'd.jsonl' }), limit: 20 });
 */
export async function evalRun(
  a: EvalArgsT,
  say: (l: string) => void = console.log,
): Promise<EvalSummary & { out: string }> {
  if (existsSync(path.join(a.model, COMPACT_VOCAB_FILE))) {
    throw new Error(
      `${a.model} is a demo checkpoint (it has ${COMPACT_VOCAB_FILE}: a compact vocabulary that cannot encode benchmark text); evaluate a model with the full Qwen vocabulary`,
    );
  }
  const out = a.out ?? `runs/eval-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  // Checked before the model is loaded: a taken --out fails in a second, not after the whole eval.
  const lock = openRunFolder(out, {
    command: 'ovr-train eval',
    overwrite: a.overwrite,
    fix: 'pass --overwrite to replace its results, or choose another --out',
  });
  try {
    return await evalInto(a, out, say);
  } finally {
    lock.release();
  }
}

/** evalRun inside the locked output folder. */
async function evalInto(
  a: EvalArgsT,
  out: string,
  say: (l: string) => void,
): Promise<EvalSummary & { out: string }> {
  const t0 = performance.now();
  const items = await readEvalItems(a.data, a.limit);
  const tok = existsSync(path.join(a.model, 'tokenizer.json'))
    ? await loadTokenizer(a.model)
    : await defaultTokenizer();
  const model = await loadModel(a.model, { seed: a.seed ?? 0, adapter: a.adapter });
  try {
    const records = await runEval(model, tok, items, {
      samples: a.samples,
      temperature: a.temperature,
      maxNewTokens: a.maxNewTokens,
      template: a.template,
      batchSize: a.batchSize,
      seed: a.seed,
      maxPixels: a.maxPixels,
      onProgress: (d, n) => say(`  ${d}/${n} problems`),
    });
    const summary = { ...summarizeRecords(records, a.samples), seconds: (performance.now() - t0) / 1000 };
    await mkdir(out, { recursive: true });
    await writeFile(
      path.join(out, 'completions.jsonl'),
      records.map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
    await writeFile(
      path.join(out, 'summary.json'),
      `${JSON.stringify({ model: a.model, data: a.data, ...summary }, null, 2)}\n`,
    );
    say(formatEvalSummary(summary));
    say(`completions: ${path.join(out, 'completions.jsonl')}`);
    return { ...summary, out };
  } finally {
    model.dispose();
  }
}

/** CLI entry; returns the exit code. */
export async function evalCommand(argv: string[]): Promise<number> {
  const summary = 'Evaluate a model on a math benchmark JSONL.';
  const p = await startCommand(EvalArgs, argv, 'ovr-train eval', summary, (c) => c.backend);
  if ('exit' in p) return p.exit;
  await evalRun(p.config as z.output<typeof EvalArgs>);
  return 0;
}

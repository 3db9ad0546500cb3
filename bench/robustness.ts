// Issue #19 evidence, items 4-7: every case the issue lists, run as a user would (real `ovr-train` processes on the
// tiny model, real files), judged GOOD or BAD, with the message the user sees. Writes bench/results/robustness.md.
// Usage: npx tsx bench/robustness.ts [--only SUBSTRING]
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { runCliToEnd, startCli, waitFor } from '../test/faults/harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURE = path.resolve(ROOT, '..', 'shared', 'fixtures', 'qwen2_5_vl_tiny');
const tmp = mkdtempSync(path.join(tmpdir(), 'ovr-robust-'));
type Result = { code: number | null; out: string; err: string; ms: number };

/** `<name>.jsonl` with one messages row around a solid `w` x `h` JPEG (`<name>.jpg`); returns the JSONL path. */
async function imageRows(name: string, w: number, h: number): Promise<string> {
  const img = path.join(tmp, `${name}.jpg`);
  await sharp({ create: { width: w, height: h, channels: 3, background: '#468' } })
    .jpeg()
    .toFile(img);
  const content = [
    { type: 'image', image: img },
    { type: 'text', text: 'What?' },
  ];
  const messages = [
    { role: 'user', content },
    { role: 'assistant', content: 'An image.' },
  ];
  return write(path.join(tmp, `${name}.jsonl`), jsonl([{ messages }]));
}

interface Case {
  item: string;
  name: string;
  run: () => Promise<Result>;
  /** GOOD when this holds. */
  good: (r: Result) => boolean;
}

async function cli(args: string[]): Promise<Result> {
  const t0 = Date.now();
  const r = await runCliToEnd(args);
  return { code: r.code, out: r.out, err: r.err, ms: Date.now() - t0 };
}

/** The lines a user would read: the error/warning lines of stderr (progress bars and backend lines left out). */
function message(r: Result): string {
  const lines = `${r.err}\n${r.out}`
    .split('\n')
    .map((l) => l.trim())
    .filter(
      (l) => l && !/^ovr backend:|^\d+\/\d+ loss|^sft: .* examples|^=+$|^Hi, looks like|tfjs-node/.test(l),
    );
  const pick = lines.filter((l) =>
    /error|warning|cannot|refus|in use|already|damaged|non-finite|unknown key|did you mean|model_type|is a run folder|received|stopping|too long|tokens|ENOSPC|EROFS|saved/i.test(
      l,
    ),
  );
  return (pick.length ? pick : lines).slice(0, 3).join(' / ').slice(0, 400);
}

function write(file: string, text: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}
const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
const sftRows = jsonl(
  Array.from({ length: 4 }, (_, i) => ({
    question: `What is ${i}+1?`,
    solution: `\\boxed{${i + 1}}`,
    answer: String(i + 1),
  })),
);
const train = write(path.join(tmp, 'train.jsonl'), sftRows);
const sft = (out: string, extra: string[] = [], data = train) => [
  'sft',
  '--model',
  'tiny',
  '--data.train',
  data,
  '--data.format',
  'question_solution',
  '--steps',
  '2',
  '--batch-size',
  '2',
  '--save-every',
  '1',
  '--backend',
  'wasm',
  '--out-dir',
  out,
  ...extra,
];

/** A copy of the HF tiny fixture with an edited config.json (or weights). */
function fixtureWith(name: string, edit: (cfg: Record<string, any>) => void): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  edit(cfg);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  cpSync(path.join(FIXTURE, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}
const generate = (model: string, extra: string[] = []) => [
  'generate',
  '--model',
  model,
  '--prompt',
  'Hi',
  '--max-new-tokens',
  '2',
  '--backend',
  'wasm',
  ...extra,
];

const CASES: Case[] = [
  {
    item: '4',
    name: 'two runs into one --out-dir',
    run: async () => {
      const dir = path.join(tmp, 'two');
      const first = startCli(sft(dir, ['--steps', '3']));
      await waitFor(
        first,
        () => readdirSync(tmp).includes('two') && readdirSync(dir).includes('.ovr-run.lock'),
      );
      const r = await cli(sft(dir, ['--steps', '3']));
      const a = await first.done;
      return { ...r, out: `${r.out}\nfirst run exit ${a.code}` };
    },
    good: (r) => r.code !== 0 && /in use by pid \d+/.test(r.err) && r.out.includes('first run exit 0'),
  },
  {
    item: '4',
    name: 'a fresh run into a folder with an old log',
    run: async () => {
      const dir = path.join(tmp, 'old');
      await cli(sft(dir));
      return cli(sft(dir));
    },
    good: (r) => r.code !== 0 && /already holds a run/.test(r.err),
  },
  {
    item: '4',
    name: '`demo --out` on an existing demo folder',
    run: async () => {
      const dir = path.join(tmp, 'demo');
      await cli(['demo', '--quick', '--out', dir, '--backend', 'wasm']);
      const before = readdirSync(dir, { recursive: true }).map(
        (f) => `${f}:${statSync(path.join(dir, String(f))).mtimeMs}`,
      );
      const r = await cli(['demo', '--quick', '--out', dir, '--backend', 'wasm']);
      const after = readdirSync(dir, { recursive: true }).map(
        (f) => `${f}:${statSync(path.join(dir, String(f))).mtimeMs}`,
      );
      const changed = after.filter((f) => !before.includes(f)).length;
      return { ...r, out: `${r.out}\n${changed} of ${after.length} files changed` };
    },
    good: (r) =>
      r.code !== 0 && /(^|\s)0 of \d+ files changed/.test(r.out) && !/--resume|--overwrite/.test(r.err),
  },
  {
    item: '4',
    name: '`eval --out` on an existing eval folder',
    run: async () => {
      const data = write(path.join(tmp, 'eval.jsonl'), jsonl([{ problem: '1+1?', answer: '2' }]));
      const out = path.join(tmp, 'eval');
      const args = [
        'eval',
        '--model',
        FIXTURE,
        '--data',
        data,
        '--max-new-tokens',
        '2',
        '--backend',
        'wasm',
        '--out',
        out,
      ];
      await cli(args);
      return cli(args);
    },
    good: (r) => r.code !== 0 && /--overwrite/.test(r.err),
  },
  {
    item: '5',
    name: '1.2 MP photo at the default maxSeqLen',
    run: async () => {
      const data = await imageRows('photo', 1200, 1000);
      return cli(sft(path.join(tmp, 'photo'), ['--data.format', 'messages'], data));
    },
    good: (r) => r.code !== 0 && /photo\.jsonl:1/.test(r.err) && /--max-pixels/.test(r.err),
  },
  {
    item: '5',
    name: '100 MP image',
    run: async () => {
      const data = await imageRows('huge', 10000, 10000);
      return cli(sft(path.join(tmp, 'huge'), ['--data.format', 'messages'], data));
    },
    good: (r) => r.code !== 0 && /huge\.jsonl:1/.test(r.err) && /huge\.jpg/.test(r.err) && r.ms < 20_000,
  },
  ...(
    [
      ['rms_norm_epsilon', (c: any) => (c.rms_norm_epsilon = 1e-6), /did you mean 'rms_norm_eps'/],
      [
        'vision_config.windowsize',
        (c: any) => (c.vision_config.windowsize = 56),
        /did you mean 'vision_config.window_size'/,
      ],
      ['tie_word_embedings', (c: any) => (c.tie_word_embedings = true), /did you mean 'tie_word_embeddings'/],
      ['model_type "llama"', (c: any) => (c.model_type = 'llama'), /model_type is "llama"/],
    ] as const
  ).map(([name, edit, re]) => ({
    item: '6',
    name: `config.json: ${name}`,
    run: () => cli(generate(fixtureWith(name.replace(/\W/g, '_'), edit))),
    good: (r: Result) => r.code !== 0 && re.test(r.err),
  })),
  {
    item: '7',
    name: 'NaN weights',
    run: async () => {
      const dir = fixtureWith('nan', () => undefined);
      const t = await readSafetensors(path.join(dir, 'model.safetensors'));
      (t.get('model.layers.0.mlp.up_proj.weight')!.data as Float32Array)[3] = Number.NaN;
      await writeSafetensors(path.join(dir, 'model.safetensors'), t);
      return cli(generate(dir));
    },
    good: (r) => r.code !== 0 && /model\.layers\.0\.mlp\.up_proj\.weight has 1 non-finite/.test(r.err),
  },
  {
    item: '7',
    name: 'UTF-8 BOM in a JSONL file',
    run: () => cli(sft(path.join(tmp, 'bom'), [], write(path.join(tmp, 'bom.jsonl'), `\uFEFF${sftRows}`))),
    good: (r) => r.code === 0,
  },
  {
    item: '7',
    name: '`--model bad.json`',
    run: () =>
      cli(
        sft(path.join(tmp, 'badjson'), ['--model', write(path.join(tmp, 'bad.json'), '{"hidden_size": 64,')]),
      ),
    good: (r) => r.code !== 0 && /bad\.json is not valid JSON/.test(r.err),
  },
  {
    item: '7',
    name: 'run folder given as a checkpoint',
    run: async () => {
      const dir = path.join(tmp, 'runasck');
      await cli(sft(dir));
      return cli(generate(dir));
    },
    good: (r) => r.code !== 0 && /is a run folder with \d+ checkpoint/.test(r.err),
  },
  {
    item: '7',
    name: 'disk full during a checkpoint save (tmpfs)',
    run: async () => {
      const mnt = path.join(tmp, 'mnt');
      mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=150m', 'tmpfs', mnt]);
      try {
        return await cli(sft(path.join(mnt, 'run')));
      } finally {
        execFileSync('umount', [mnt]);
      }
    },
    good: (r) => r.code !== 0 && /ENOSPC/.test(r.err) && /mnt\/run/.test(r.err),
  },
  {
    item: '7',
    name: 'read-only file system (EROFS)',
    run: async () => {
      const mnt = path.join(tmp, 'ro');
      mkdirSync(mnt);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', mnt]);
      try {
        return await cli(sft(path.join(mnt, 'run')));
      } finally {
        execFileSync('umount', [mnt]);
      }
    },
    good: (r) => r.code !== 0 && /EROFS/.test(r.err) && /ro\/run/.test(r.err),
  },
  {
    item: '7',
    name: 'Ctrl-C (SIGINT) during SFT',
    run: async () => {
      const dir = path.join(tmp, 'sigint');
      const run = startCli(sft(dir, ['--steps', '50', '--save-every', '0']));
      await waitFor(
        run,
        () =>
          existsSync(path.join(dir, 'log.jsonl')) &&
          readFileSync(path.join(dir, 'log.jsonl'), 'utf8').includes('"step"'),
      );
      const t0 = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      const cks = readdirSync(dir).filter((n) => n.startsWith('checkpoint-'));
      return {
        code: r.code,
        out: `${r.out}\ncheckpoints: ${cks.join(',')}`,
        err: r.err,
        ms: Date.now() - t0,
      };
    },
    good: (r) => r.code === 130 && /checkpoints: checkpoint-\d+/.test(r.out) && /SIGINT/.test(r.err),
  },
  {
    item: '7',
    name: 'damaged latest checkpoint',
    run: async () => {
      const dir = path.join(tmp, 'damaged');
      await cli(sft(dir));
      const f = path.join(dir, 'checkpoint-00000002', 'model.safetensors');
      truncateSync(f, 1000);
      return cli(sft(dir, ['--resume', 'latest']));
    },
    good: (r) => r.code !== 0 && /--resume \S*checkpoint-00000001/.test(r.err),
  },
];

const only =
  process.argv.indexOf('--only') > 0 ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const rows: string[] = [];
for (const c of CASES.filter((c) => !only || c.name.includes(only))) {
  let r: Result;
  try {
    r = await c.run();
  } catch (e) {
    r = { code: -1, out: '', err: `harness error: ${(e as Error).message}`, ms: 0 };
  }
  const verdict = c.good(r) ? 'GOOD' : 'BAD';
  const msg = message(r).replace(/\|/g, '\\|').replaceAll(tmp, '$TMP');
  console.log(`${verdict}  ${c.item} ${c.name} (exit ${r.code}, ${(r.ms / 1000).toFixed(1)} s): ${msg}`);
  rows.push(`| ${c.item} | ${c.name} | ${verdict} | ${r.code} | ${(r.ms / 1000).toFixed(1)} s | ${msg} |`);
}
if (!only) {
  const md = [
    '# Issue #19 items 4-7: what the user sees now',
    '',
    `Generated by \`npx tsx bench/robustness.ts\` on ${new Date().toISOString().slice(0, 10)} (real \`ovr-train\` processes, tiny model, wasm).`,
    '',
    '| item | case | verdict | exit | time | message |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  const out = path.join(ROOT, 'bench', 'results', 'robustness.md');
  writeFileSync(out, md);
  // the table as `npm run lint` (biome, which formats bench/) wants it
  execFileSync(process.execPath, [
    path.join(ROOT, 'node_modules', '@biomejs', 'biome', 'bin', 'biome'),
    'format',
    '--write',
    out,
  ]);
}

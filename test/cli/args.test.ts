import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ArgsError, closest, helpText, parseArgs, toKebab } from '../../src/cli/args.js';
import { SftConfig } from '../../src/train/config.js';

const Demo = z
  .object({
    name: z.string().describe('Run name'),
    maxSeqLen: z.number().int().positive().default(128).describe('Longest sequence'),
    lr: z.number().default(1e-3).describe('Learning rate'),
    packing: z.boolean().default(true).describe('Pack sequences'),
    verbose: z.boolean().default(false).describe('Talk more'),
    betas: z.tuple([z.number(), z.number()]).default([0.9, 0.999]).describe('Adam betas'),
    tags: z.array(z.string()).default([]).describe('Free-form tags'),
    mode: z.enum(['fast', 'slow']).default('fast').describe('Speed'),
    data: z
      .object({
        train: z.string().describe('Train file'),
        shuffle: z.boolean().default(true).describe('Shuffle rows'),
      })
      .strict()
      .describe('Data options'),
  })
  .strict();

const cfg = (argv: string[]) => {
  const r = parseArgs(Demo, argv);
  if (r.kind !== 'config') throw new Error('expected a config');
  return r.config;
};

function tmpJson(obj: unknown): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ovr-args-'));
  const f = path.join(dir, 'run.json');
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

describe('parseArgs', () => {
  it('parses kebab flags, numbers, booleans, --no-flag, lists, enums and dotted nesting; fills defaults', () => {
    const c = cfg([
      '--name',
      'r1',
      '--max-seq-len',
      '256',
      '--lr=3e-5',
      '--no-packing',
      '--verbose',
      '--betas',
      '0.8,0.95',
      '--tags',
      'a,b',
      '--mode',
      'slow',
      '--data.train',
      'x.jsonl',
      '--data.no-shuffle',
    ]);
    expect(c).toEqual({
      name: 'r1',
      maxSeqLen: 256,
      lr: 3e-5,
      packing: false,
      verbose: true,
      betas: [0.8, 0.95],
      tags: ['a', 'b'],
      mode: 'slow',
      data: { train: 'x.jsonl', shuffle: false },
    });
  });

  it('accepts --flag true|false as separate tokens', () => {
    const c = cfg(['--packing', 'false', '--verbose', 'true', '--name', 'n', '--data.train', 't']);
    expect([c.packing, c.verbose]).toEqual([false, true]);
    expect(cfg(['--verbose', '--name', 'n', '--data.train', 't']).verbose).toBe(true);
  });

  it('accepts negative numbers as values and camelCase spellings', () => {
    const c = cfg(['--name', 'n', '--lr', '-1', '--maxSeqLen', '7', '--data.train', 't']);
    expect(c.lr).toBe(-1);
    expect(c.maxSeqLen).toBe(7);
  });

  it('returns a deeply frozen config', () => {
    const c = cfg(['--name', 'n', '--data.train', 't']);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.data)).toBe(true);
    expect(Object.isFrozen(c.betas)).toBe(true);
  });

  it('merges defaults < --config file < flags, wherever --config appears', () => {
    const f = tmpJson({ name: 'file', lr: 0.5, maxSeqLen: 64, data: { train: 'f.jsonl', shuffle: false } });
    const c = cfg(['--lr', '0.25', '--config', f, '--data.train', 'cli.jsonl']);
    expect(c.name).toBe('file');
    expect(c.lr).toBe(0.25);
    expect(c.maxSeqLen).toBe(64);
    expect(c.data).toEqual({ train: 'cli.jsonl', shuffle: false });
    expect(c.mode).toBe('fast');
  });

  it('names an unknown flag and suggests the closest field', () => {
    expect(() => cfg(['--max-seq-lne', '3'])).toThrow(
      /unknown flag --max-seq-lne; did you mean --max-seq-len\?/,
    );
    expect(() => cfg(['--data.trian', 'x'])).toThrow(/did you mean --data.train\?/);
    expect(() => cfg(['--zzzzzzzzzz', 'x'])).toThrow(/^unknown flag --zzzzzzzzzz \(see --help\)$/);
    expect(() => cfg(['--no-lr'])).toThrow(/unknown flag --no-lr/);
  });

  it('names unknown keys in the config file with a suggestion', () => {
    const f = tmpJson({ name: 'n', learningRate: 1, data: { train: 't', shufle: true } });
    let msg = '';
    try {
      cfg(['--config', f]);
    } catch (e) {
      expect(e).toBeInstanceOf(ArgsError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/unknown field 'learningRate'/);
    expect(msg).toMatch(/unknown field 'data.shufle'; did you mean 'data.shuffle' \(--data.shuffle\)\?/);
  });

  it('reports bad values, missing values and missing required fields by flag', () => {
    expect(() => cfg(['--name', 'n', '--data.train', 't', '--lr', 'fast'])).toThrow(
      /--lr must be a number, got 'fast'/,
    );
    expect(() => cfg(['--name', 'n', '--data.train', 't', '--max-seq-len', '1.5'])).toThrow(
      /--max-seq-len: /,
    );
    expect(() => cfg(['--name', 'n', '--data.train', 't', '--mode', 'medium'])).toThrow(/--mode: /);
    expect(() => cfg(['--name'])).toThrow(/--name needs a value/);
    expect(() => cfg(['--name', 'n'])).toThrow(
      /--data.train is required: pass it as a flag or in the --config file/,
    );
    expect(() => cfg(['--verbose=maybe'])).toThrow(/--verbose is a boolean/);
    expect(() => cfg(['stray'])).toThrow(/unexpected argument 'stray'/);
  });

  it('reports unreadable or malformed config files by path', () => {
    expect(() => cfg(['--config', '/nonexistent/run.json'])).toThrow(
      /--config \/nonexistent\/run.json: cannot read/,
    );
    const bad = tmpJson('{ not json');
    expect(() => cfg(['--config', bad])).toThrow(/not valid JSON/);
    const arr = tmpJson([1, 2]);
    expect(() => cfg(['--config', arr])).toThrow(/must hold a JSON object/);
  });

  it('--help lists every field with type, description and default', () => {
    const r = parseArgs(Demo, ['--lr', '1', '--help'], 'demo');
    expect(r.kind).toBe('help');
    const text = r.kind === 'help' ? r.text : '';
    expect(text).toContain('Usage: demo');
    expect(text).toContain('--max-seq-len <int>\n      Longest sequence (default: 128)');
    expect(text).toContain('--mode <fast|slow>');
    expect(text).toContain('--betas <number,number>\n      Adam betas (default: 0.9,0.999)');
    expect(text).toContain('--data.train <string>\n      Train file (required)');
    expect(text).toContain('--packing\n      Pack sequences (default: true)');
  });
});

describe('parseArgs with SftConfig', () => {
  it('documents every leaf field of SftConfig in --help, none without a description', () => {
    const text = helpText(SftConfig, 'ovr-train sft');
    expect(text).not.toContain('(no description)');
    for (const k of Object.keys(SftConfig.shape).filter((k) => k !== 'data')) {
      expect(text, k).toContain(`--${toKebab([k])}`);
    }
    for (const k of Object.keys(SftConfig.shape.data.shape))
      expect(text, k).toContain(`--data.${toKebab([k])}`);
  });

  it('runs the cross-field checks and reports them with the fix', () => {
    expect(() =>
      parseArgs(SftConfig, ['--model', 'tiny', '--data.train', 't', '--steps', '5', '--warmup-steps', '10']),
    ).toThrow(/--warmup-steps: warmupSteps \(10\) must be less than steps \(5\)/);
    const r = parseArgs(SftConfig, [
      '--model',
      'tiny',
      '--data.train',
      't',
      '--max-consecutive-non-finite',
      '2',
    ]);
    expect(r.kind === 'config' && r.config.maxConsecutiveNonFinite).toBe(2);
  });
});

describe('closest / toKebab', () => {
  it('suggests within a small edit distance only', () => {
    expect(closest('bach-size', ['batch-size', 'lr'])).toBe('batch-size');
    expect(closest('qqqqqqqq', ['batch-size', 'lr'])).toBeUndefined();
    expect(toKebab(['data', 'questionField'])).toBe('data.question-field');
  });
});

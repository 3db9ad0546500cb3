// Generic argv parser driven by a zod object schema: `--kebab-case value`, `--flag` / `--no-flag`, comma lists,
// nested fields via dots (`--data.train x`), `--config run.json`, and `--help` generated from `.describe()` texts.
// Precedence follows mlx-lm: schema defaults < JSON config file < command-line flags. Parse once, at the boundary.
import { readFileSync } from 'node:fs';
import type { z } from 'zod';

/** Error for bad command lines or config files; the message says what to change. */
export class ArgsError extends Error {
  override name = 'ArgsError';
}

/** Result of {@link parseArgs}: either the frozen config, or the help text when `--help` / `-h` was given. */
export type ParsedArgs<T> = { kind: 'config'; config: Readonly<T> } | { kind: 'help'; text: string };

type AnyDef = { type: string; [k: string]: any };
type Field = { schema: z.ZodType; path: string[] };

const def = (s: z.ZodType): AnyDef => (s as any)._zod.def;

/** Strips optional/default/nullable/readonly/pipe wrappers; returns the inner schema plus what was peeled. */
function unwrap(s: z.ZodType): {
  inner: z.ZodType;
  optional: boolean;
  dflt: unknown;
  hasDefault: boolean;
  desc?: string;
} {
  let cur = s;
  let optional = false;
  let hasDefault = false;
  let dflt: unknown;
  let desc: string | undefined = (s as any).description;
  for (;;) {
    const d = def(cur);
    if (d.type === 'optional' || d.type === 'nullable') optional = true;
    else if (d.type === 'default' || d.type === 'prefault') {
      hasDefault = true;
      dflt = typeof d.defaultValue === 'function' ? d.defaultValue() : d.defaultValue;
    } else if (d.type !== 'readonly' && d.type !== 'pipe') break;
    cur = d.type === 'pipe' ? d.in : d.innerType;
    desc ??= (cur as any).description;
  }
  return { inner: cur, optional, dflt, hasDefault, desc };
}

/** The shape of a zod object schema (after unwrapping), or undefined if it is not an object. */
function shapeOf(s: z.ZodType): Record<string, z.ZodType> | undefined {
  const { inner } = unwrap(s);
  return def(inner).type === 'object' ? (def(inner).shape as Record<string, z.ZodType>) : undefined;
}

/** All leaf fields of an object schema, nested objects flattened to dotted paths. */
function leafFields(shape: Record<string, z.ZodType>, prefix: string[] = []): Field[] {
  return Object.entries(shape).flatMap(([k, s]) => {
    const sub = shapeOf(s);
    return sub ? leafFields(sub, [...prefix, k]) : [{ schema: s, path: [...prefix, k] }];
  });
}

/** `maxSeqLen` -> `max-seq-len`; `data.train` path -> `data.train`. */
export function toKebab(path: string[]): string {
  return path.map((p) => p.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join('.');
}

const toCamel = (seg: string): string => seg.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

/** The closest known name to `name`, or undefined when nothing is reasonably close. */
export function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** Human-readable type of a leaf field for --help. */
function typeLabel(s: z.ZodType): string {
  const d = def(unwrap(s).inner);
  switch (d.type) {
    case 'number':
      return (d.checks ?? []).some((c: any) => c._zod?.def?.format === 'safeint') ? 'int' : 'number';
    case 'enum':
      return Object.values(d.entries as Record<string, string>).join('|');
    case 'array':
      return `${typeLabel(d.element)},...`;
    case 'tuple':
      return (d.items as z.ZodType[]).map(typeLabel).join(',');
    case 'literal':
      return (d.values as unknown[]).map(String).join('|');
    default:
      return d.type;
  }
}

/**
 * `--help` text for a schema: every leaf field with its flag, type, description and default (or "required").
 * @example
 * console.log(helpText(SftConfig, 'ovr-train sft'));
 */
export function helpText(schema: z.ZodType, prog: string): string {
  const shape = shapeOf(schema);
  if (!shape) throw new Error('helpText: schema must be a zod object');
  const rows = leafFields(shape).map(({ schema: s, path }) => {
    const u = unwrap(s);
    const isBool = def(u.inner).type === 'boolean';
    const flag = `--${toKebab(path)}${isBool ? '' : ` <${typeLabel(s)}>`}`;
    const tail = u.hasDefault ? ` (default: ${formatValue(u.dflt)})` : u.optional ? '' : ' (required)';
    return `  ${flag}\n      ${u.desc ?? '(no description)'}${tail}`;
  });
  return [
    `Usage: ${prog} [--config run.json] [flags]`,
    '',
    'Precedence: defaults < --config file < flags. Booleans: --flag, --no-flag or --flag true|false. Lists: comma-separated.',
    '',
    'Flags:',
    ...rows,
    '  --config <path>\n      JSON file with any of the fields above (camelCase keys, nested objects for dotted flags)',
    '  --help, -h\n      Show this help',
  ].join('\n');
}

function formatValue(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : JSON.stringify(v);
}

/** Converts one flag's raw string value to the field's type; `raw` undefined means a bare `--flag`. */
function coerce(flag: string, s: z.ZodType, raw: string | undefined): unknown {
  const d = def(unwrap(s).inner);
  if (d.type === 'boolean') {
    if (raw === undefined || raw === 'true') return true;
    if (raw === 'false') return false;
    throw new ArgsError(`--${flag} is a boolean: use --${flag} or --no-${flag}, not '${raw}'`);
  }
  if (raw === undefined) throw new ArgsError(`--${flag} needs a value (${typeLabel(s)})`);
  if (d.type === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n))
      throw new ArgsError(`--${flag} must be a number, got '${raw}'`);
    return n;
  }
  if (d.type === 'array')
    return raw === '' ? [] : raw.split(',').map((x) => coerce(flag, d.element, x.trim()));
  if (d.type === 'tuple')
    return raw.split(',').map((x, i) => coerce(flag, d.items[i] ?? d.items[0], x.trim()));
  return raw;
}

function setPath(obj: Record<string, any>, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null || Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k];
  }
  cur[path[path.length - 1]] = value;
}

function getPath(obj: unknown, path: PropertyKey[]): unknown {
  let cur: any = obj;
  for (const k of path) cur = cur == null ? undefined : cur[k];
  return cur;
}

/** `{}` for every required nested object, so zod reports the missing leaf (`data.train`), not the whole object. */
function requiredObjects(shape: Record<string, z.ZodType>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(shape)) {
    const sub = shapeOf(s);
    const u = unwrap(s);
    if (sub && !u.optional && !u.hasDefault) out[k] = requiredObjects(sub);
  }
  return out;
}

/** Deep merge of plain objects; `b` wins; arrays are replaced, not merged. */
function deepMerge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const isObj = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

function deepFreeze<T>(x: T): T {
  if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

/** Reads a `--config` JSON file; errors name the file. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ArgsError(`--config ${file}: cannot read the file (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ArgsError(`--config ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ArgsError(`--config ${file}: must hold a JSON object of config fields`);
  }
  return parsed as Record<string, unknown>;
}

type Token = { name: string; value?: string };

/** Splits argv into flags; values are attached later once each flag's type is known. */
function collectFlags(argv: string[], fields: Map<string, Field>): { flags: Token[]; help: boolean } {
  const flags: Token[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      help = true;
      continue;
    }
    if (!a.startsWith('--') || a === '--') {
      throw new ArgsError(`unexpected argument '${a}': every option is a --flag (see --help)`);
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (eq >= 0) {
      flags.push({ name, value: a.slice(eq + 1) });
      continue;
    }
    const field = fields.get(normalise(name));
    const isBool = field ? def(unwrap(field.schema).inner).type === 'boolean' : name.startsWith('no-');
    const next = argv[i + 1];
    // Booleans take only an explicit true/false; other flags take the next token unless it is another --flag.
    const takesNext = isBool
      ? next === 'true' || next === 'false'
      : next !== undefined && (!next.startsWith('--') || Number.isFinite(Number(next)));
    flags.push(takesNext ? { name, value: argv[++i] } : { name });
  }
  return { flags, help };
}

/** `data.max-seq-len` or `data.maxSeqLen` -> `data.maxSeqLen`. */
const normalise = (name: string): string => name.split('.').map(toCamel).join('.');

/** Maps a flag (with or without a `no-` prefix) to its field and value. */
function resolveFlag(t: Token, fields: Map<string, Field>): { field: Field; value: unknown } {
  const key = normalise(t.name);
  const direct = fields.get(key);
  if (direct) return { field: direct, value: coerce(t.name, direct.schema, t.value) };
  if (t.name.startsWith('no-') || t.name.includes('.no-')) {
    const pos = t.name.replace(/(^|\.)no-/, '$1');
    const f = fields.get(normalise(pos));
    if (f && def(unwrap(f.schema).inner).type === 'boolean') {
      if (t.value !== undefined) throw new ArgsError(`--${t.name} takes no value`);
      return { field: f, value: false };
    }
  }
  const known = [...fields.values()].map((f) => toKebab(f.path));
  const guess = closest(toKebab(key.split('.')), known);
  throw new ArgsError(`unknown flag --${t.name}${guess ? `; did you mean --${guess}?` : ''} (see --help)`);
}

/** Formats zod issues as one line each, naming the field as a flag and suggesting fixes for unknown keys. */
function formatIssues(issues: z.core.$ZodIssue[], fields: Field[], input: unknown): string {
  const known = fields.map((f) => f.path.join('.'));
  return issues
    .map((i) => {
      const at = i.path.map(String).join('.');
      if (i.code === 'unrecognized_keys') {
        return i.keys
          .map((k) => {
            const full = at ? `${at}.${k}` : k;
            const g = closest(full, known);
            return `unknown field '${full}'${g ? `; did you mean '${g}' (--${toKebab(g.split('.'))})?` : ''}`;
          })
          .join('\n');
      }
      if (i.code === 'invalid_type' && at && getPath(input, i.path) === undefined) {
        return `--${toKebab(at.split('.'))} is required: pass it as a flag or in the --config file`;
      }
      return at ? `--${toKebab(at.split('.'))}: ${i.message}` : i.message;
    })
    .join('\n');
}

/**
 * Parses argv against a zod object schema: defaults < `--config` JSON file < flags, then `schema.parse`.
 * Throws {@link ArgsError} naming the culprit (unknown flags get a "did you mean").
 * @example
 * const r = parseArgs(SftConfig, ['--config', 'run.json', '--lr', '3e-5', '--no-packing', '--data.train', 'a.jsonl']);
 * if (r.kind === 'help') console.log(r.text); else trainSft(r.config, deps);
 */
export function parseArgs<S extends z.ZodType>(
  schema: S,
  argv: string[],
  prog = 'ovr-train',
): ParsedArgs<z.output<S>> {
  const shape = shapeOf(schema);
  if (!shape) throw new Error('parseArgs: schema must be a zod object (optionally with refinements)');
  const leaves = leafFields(shape);
  const fields = new Map<string, Field>(leaves.map((f) => [f.path.join('.'), f]));
  const { flags, help } = collectFlags(argv, fields);
  if (help) return { kind: 'help', text: helpText(schema, prog) };
  let fromFile: Record<string, unknown> = {};
  const fromFlags: Record<string, unknown> = {};
  for (const t of flags) {
    if (t.name === 'config') {
      if (!t.value) throw new ArgsError('--config needs a path to a JSON file');
      fromFile = readConfigFile(t.value);
      continue;
    }
    const { field, value } = resolveFlag(t, fields);
    setPath(fromFlags, field.path, value);
  }
  const merged = deepMerge(requiredObjects(shape), deepMerge(fromFile, fromFlags));
  const r = schema.safeParse(merged);
  if (!r.success)
    throw new ArgsError(`invalid configuration:\n${formatIssues(r.error.issues, leaves, merged)}`);
  return { kind: 'config', config: deepFreeze(r.data) as Readonly<z.output<S>> };
}

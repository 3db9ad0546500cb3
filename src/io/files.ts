// Reading JSON / JSONL and writing files with errors that name the file: the one JSON(L) reader of the library (a
// UTF-8 byte-order mark, which Windows editors add and JSON.parse reports as an invisible "unexpected token", is
// stripped), and write-error wrapping (a disk-full or read-only error on a write names the path and what was being
// written; Node's own message for a failed write(2) on an open file names neither).
import { accessSync, constants, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const BOM = '\uFEFF';

/** `text` without a leading UTF-8 byte-order mark. @example stripBom('\uFEFF{}') // '{}' */
export function stripBom(text: string): string {
  return text.startsWith(BOM) ? text.slice(1) : text;
}

/**
 * Parses JSON text read from `file` (BOM stripped); a syntax error names the file.
 * @example parseJsonText(text, 'run.json') // throws "run.json is not valid JSON: Unexpected token ..."
 */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(stripBom(text));
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads and parses a JSON file; `what` says what the file is for in the read error ("cannot read model config X").
 * @example const cfg = await readJsonFile('models/tiny/config.json', 'model config');
 */
export async function readJsonFile(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  return parseJsonText(text, file);
}

/** One parsed JSONL line with its 1-based line number. */
export interface JsonlLine {
  line: number;
  value: unknown;
}

/**
 * Parses JSONL text (BOM stripped, blank lines skipped, CRLF accepted); a bad line throws `file:line: ...`. Stops
 * after `limit` values.
 * @example parseJsonLines('{"a":1}\n\n{"a":2}\n', 'x.jsonl') // [{ line: 1, value: { a: 1 } }, { line: 3, value: { a: 2 } }]
 */
export function parseJsonLines(text: string, file: string, limit = Number.POSITIVE_INFINITY): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = stripBom(text).split('\n');
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    const l = lines[i];
    if (l.trim() === '') continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(l) });
    } catch (e) {
      const bom = l.includes(BOM)
        ? ' (the line contains a byte-order mark U+FEFF: save the file as UTF-8 without BOM)'
        : '';
      throw new Error(
        `${file}:${i + 1}: invalid JSON (${(e as Error).message})${bom}; each line must be one JSON value`,
      );
    }
  }
  return out;
}

/**
 * Reads a JSONL file with {@link parseJsonLines}; `what` names the file's role in a read error.
 * @example const rows = await readJsonLines('data/train.jsonl', 'dataset');
 */
export async function readJsonLines(file: string, what: string, limit?: number): Promise<JsonlLine[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  return parseJsonLines(text, file, limit);
}

/**
 * Node's recursive mkdir reports ENOENT on a read-only or forbidden file system; the first existing ancestor of
 * `file` tells the real cause (EROFS, EACCES) through access(W_OK).
 */
function ancestorError(file: string): string | undefined {
  for (let d = path.dirname(path.resolve(file)); ; d = path.dirname(d)) {
    if (existsSync(d)) {
      try {
        accessSync(d, constants.W_OK);
        return undefined;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    }
    if (d === path.dirname(d)) return undefined;
  }
}

const WRITE_CAUSES: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EFBIG: 'the file is too large for this file system',
  EIO: 'an I/O error occurred (failing disk or network file system)',
};

/**
 * An error for a failed write that names the path and what was being written, and keeps the errno `code`.
 * Errors that are not file-system errors are returned unchanged.
 * @example try { await fh.write(buf); } catch (e) { throw writeError(e, file, 'checkpoint weights'); }
 */
export function writeError(e: unknown, file: string, what: string): Error {
  const err = e as NodeJS.ErrnoException;
  const code =
    err?.code === 'ENOENT' && err.syscall === 'mkdir' ? (ancestorError(file) ?? err.code) : err?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return e as Error;
  if (err.message.startsWith('cannot write ')) return err; // already wrapped further down
  const cause = WRITE_CAUSES[code] ?? err.message;
  const fix =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? ' Free some space or write to another folder.'
      : code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
        ? ' Choose a folder you can write to.'
        : '';
  const out = new Error(
    `cannot write ${what} to ${file}: ${cause} (${code}).${fix}`,
  ) as NodeJS.ErrnoException;
  out.code = code;
  out.cause = e;
  return out;
}

/**
 * Runs `fn` and rethrows a file-system error with {@link writeError}.
 * @example await withWriteContext(file, 'the training log', () => appendFile(file, line));
 */
export async function withWriteContext<T>(file: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw writeError(e, file, what);
  }
}

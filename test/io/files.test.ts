// Files that name themselves in errors: BOM-tolerant JSON/JSONL reading, write errors (ENOSPC via /dev/full and a
// full tmpfs, EROFS via a read-only tmpfs) naming the path and what was written, NaN weights named at load, run
// folders given as checkpoints, damaged latest checkpoints. Real file systems, no mocked fs.
import '@tensorflow/tfjs-backend-cpu';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonLines, parseJsonText, readJsonFile, stripBom, writeError } from '../../src/io/files.js';
import {
  checkpointsIn,
  damagedCheckpointError,
  openRunFolder,
  runFolderHint,
} from '../../src/io/run_folder.js';
import { LOCK_FILE } from '../../src/io/run_lock.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { loadConfig } from '../../src/model/config.js';
import { loadWeights } from '../../src/model/weights.js';
import { JsonlLogger } from '../../src/util/log.js';
import { FIXTURE } from '../helpers.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'ovr-files-'));

describe('JSON and JSONL with a byte-order mark', () => {
  it('strips a leading BOM and names the file on a syntax error', () => {
    expect(stripBom('\uFEFF{"a":1}')).toBe('{"a":1}');
    expect(parseJsonText('\uFEFF{"a":1}', 'x.json')).toEqual({ a: 1 });
    expect(() => parseJsonText('{"a":', 'x.json')).toThrow(/^x\.json is not valid JSON: /);
  });
  it('JSONL: BOM on the first line is fine; a BOM inside a later line is named', () => {
    expect(parseJsonLines('\uFEFF{"a":1}\r\n\n{"a":2}\n', 'd.jsonl')).toEqual([
      { line: 1, value: { a: 1 } },
      { line: 3, value: { a: 2 } },
    ]);
    expect(() => parseJsonLines('{"a":1}\n\uFEFF{"a":2}\n', 'd.jsonl')).toThrow(
      /^d\.jsonl:2: invalid JSON .*byte-order mark U\+FEFF: save the file as UTF-8 without BOM/,
    );
    expect(parseJsonLines('1\n2\n3\n', 'd.jsonl', 2)).toHaveLength(2);
  });
  it('a config.json saved with a BOM loads; a broken one names the file', async () => {
    const dir = tmp();
    const text = readFileSync(path.join(FIXTURE, 'config.json'), 'utf8');
    writeFileSync(path.join(dir, 'config.json'), `\uFEFF${text}`);
    expect((await loadConfig(dir)).hidden_size).toBeGreaterThan(0);
    writeFileSync(path.join(dir, 'bad.json'), '{"hidden_size": 3,');
    await expect(loadConfig(path.join(dir, 'bad.json'))).rejects.toThrow(
      `${path.join(dir, 'bad.json')} is not valid JSON`,
    );
    await expect(readJsonFile(path.join(dir, 'none.json'), 'run config')).rejects.toThrow(
      `cannot read run config ${path.join(dir, 'none.json')}: ENOENT`,
    );
  });
});

describe('write errors name the path and what was written', () => {
  it('wraps errno errors only', () => {
    const e = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const w = writeError(e, '/r/log.jsonl', 'the JSONL log') as NodeJS.ErrnoException;
    expect(w.message).toBe(
      'cannot write the JSONL log to /r/log.jsonl: the disk is full (ENOSPC). Free some space or write to another folder.',
    );
    expect(w.code).toBe('ENOSPC');
    const plain = new Error('bug');
    expect(writeError(plain, '/x', 'y')).toBe(plain);
  });

  it('a log line written to a full device (/dev/full) names the log file and the step', () => {
    const dir = tmp();
    const file = path.join(dir, 'log.jsonl');
    symlinkSync('/dev/full', file);
    const log = new JsonlLogger(file);
    expect(() => log.log({ step: 7, loss: 1 })).toThrow(
      `cannot write log line of step 7 to ${file}: the disk is full (ENOSPC)`,
    );
    log.close();
  });

  const canMount = (() => {
    if (process.getuid?.() !== 0) return false;
    const probe = tmp();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
      execFileSync('umount', [probe], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  describe.skipIf(!canMount)('on a real tmpfs (root only)', () => {
    const mounts: string[] = [];
    const mount = (opts: string): string => {
      const dir = tmp();
      execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
      mounts.push(dir);
      return dir;
    };
    afterAll(() => {
      for (const m of mounts) execFileSync('umount', [m]);
    });

    it('disk full: the safetensors file is named, no temp file is left, an earlier file is untouched', async () => {
      const dir = mount('size=256k');
      const small = { w: { dtype: 'float32' as const, shape: [4], data: new Float32Array([1, 2, 3, 4]) } };
      await writeSafetensors(path.join(dir, 'a.safetensors'), small);
      const big = { w: { dtype: 'float32' as const, shape: [1 << 17], data: new Float32Array(1 << 17) } };
      const file = path.join(dir, 'b.safetensors');
      await expect(writeSafetensors(file, big)).rejects.toThrow(
        `cannot write safetensors file to ${file}: the disk is full (ENOSPC)`,
      );
      expect(readdirSync(dir)).toEqual(['a.safetensors']);
      expect((await readSafetensors(path.join(dir, 'a.safetensors'))).get('w')?.data).toEqual(small.w.data);
    });

    it('read-only file system: EROFS names the path', async () => {
      const dir = mount('size=64k,ro');
      const w = { w: { dtype: 'float32' as const, shape: [1], data: new Float32Array(1) } };
      // In the folder itself, and in a subfolder to create (Node's recursive mkdir says ENOENT there).
      for (const file of [path.join(dir, 'x.safetensors'), path.join(dir, 'sub', 'x.safetensors')]) {
        await expect(writeSafetensors(file, w)).rejects.toThrow(
          `cannot write safetensors file to ${file}: the file system is read-only (EROFS)`,
        );
      }
    });
  });
});

describe('NaN / Inf weights are named at load', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  it('names the tensor, the count and the first index', async () => {
    const cfg = await loadConfig(FIXTURE);
    const tensors = await readSafetensors(FIXTURE);
    const name = 'model.layers.1.mlp.up_proj.weight';
    const t = tensors.get(name)!;
    (t.data as Float32Array)[5] = Number.NaN;
    (t.data as Float32Array)[9] = Number.POSITIVE_INFINITY;
    const dir = tmp();
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    const before = tf.memory().numTensors;
    await expect(loadWeights(dir, cfg)).rejects.toThrow(
      new RegExp(
        `tensor ${name.replace(/\./g, '\\.')} has 2 non-finite value\\(s\\) .*first at flat index 5`,
      ),
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('run folders where a checkpoint is expected', () => {
  /** A run folder with complete checkpoints at `steps` and one incomplete (no train_state.json) at 99. */
  function runFolder(steps: number[]): string {
    const run = tmp();
    for (const s of steps) {
      const d = path.join(run, `checkpoint-${String(s).padStart(8, '0')}`);
      mkdirSync(d);
      writeFileSync(path.join(d, 'train_state.json'), '{}');
    }
    mkdirSync(path.join(run, 'checkpoint-00000099'));
    writeFileSync(path.join(run, 'training_config.json'), '{}');
    return run;
  }

  it('lists complete checkpoints only, oldest first', () => {
    const run = runFolder([20, 10]);
    expect(checkpointsIn(run).map((c) => c.step)).toEqual([10, 20]);
  });

  it('loadConfig and the safetensors reader hint at the checkpoints inside', async () => {
    const run = runFolder([10, 20]);
    const newest = path.join(run, 'checkpoint-00000020');
    await expect(loadConfig(run)).rejects.toThrow(
      `is a run folder with 2 checkpoint(s) (checkpoint-00000010, checkpoint-00000020); pass one of them, e.g. ${newest}`,
    );
    await expect(readSafetensors(run)).rejects.toThrow(`e.g. ${newest}`);
    expect(runFolderHint(tmp())).toBe('');
  });

  it('a damaged checkpoint names the previous one to resume from', () => {
    const run = runFolder([10, 20, 30]);
    const e = damagedCheckpointError(path.join(run, 'checkpoint-00000030'), new Error('truncated'));
    expect(e.message).toContain(`checkpoint ${path.join(run, 'checkpoint-00000030')} is damaged`);
    expect(e.message).toContain('truncated');
    expect(e.message).toContain(`--resume ${path.join(run, 'checkpoint-00000020')}`);
    const only = damagedCheckpointError(path.join(run, 'checkpoint-00000010'), new Error('x'));
    expect(only.message).toContain('no earlier complete checkpoint');
  });
});

describe('openRunFolder', () => {
  const fix = 'pass --resume latest to continue it, or choose another --out-dir';
  it('locks a new or empty folder', () => {
    const dir = path.join(tmp(), 'new');
    const lock = openRunFolder(dir, { command: 'ovr-train sft', fix });
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });
  it('refuses a fresh run into a folder that holds a run, naming what is there, and writes nothing', () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'log.jsonl'), '{"step":1}\n{"step":2}\n');
    mkdirSync(path.join(dir, 'checkpoint-00000002'));
    writeFileSync(path.join(dir, 'training_config.json'), '{}');
    expect(() => openRunFolder(dir, { command: 'ovr-train sft', fix })).toThrow(
      `${dir} already holds a run (log.jsonl (2 lines), checkpoint-00000002, training_config.json): ${fix}`,
    );
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-00000002', 'log.jsonl', 'training_config.json']);
    openRunFolder(dir, { command: 'ovr-train sft', resume: true, fix }).release();
    openRunFolder(dir, { command: 'ovr-train eval', overwrite: true, fix }).release();
  });
});

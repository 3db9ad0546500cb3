import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonlLogger, readStepLog } from '../../src/util/log.js';
import { formatDuration, formatProgress, ProgressBar } from '../../src/util/progress.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ovr-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('JsonlLogger', () => {
  it('appends one JSON line per step into a new run dir, keeping non-finite values', () => {
    const file = path.join(dir, 'run', 'nested', 'log.jsonl');
    const log = new JsonlLogger(file, { timestamps: false });
    log.log({ step: 1, loss: 2.5, lr: 1e-5, gradNorm: 0.75, tokensPerSec: 1234.5, numTensors: 42 });
    log.log({ step: 2, loss: Number.NaN, gradNorm: Number.POSITIVE_INFINITY, skipped: true });
    log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe(
      '{"step":1,"loss":2.5,"lr":0.00001,"gradNorm":0.75,"tokensPerSec":1234.5,"numTensors":42}',
    );
    expect(lines[1]).toBe('{"step":2,"loss":"NaN","gradNorm":"Infinity","skipped":true}');
    const back = readStepLog(file);
    expect(back[0].loss).toBe(2.5);
    expect(back[1].loss).toBeNaN();
    expect(back[1].gradNorm).toBe(Number.POSITIVE_INFINITY);
  });

  it('appends to an existing log (resume) and adds a timestamp by default', () => {
    const file = path.join(dir, 'resume.jsonl');
    const a = new JsonlLogger(file);
    a.log({ step: 1 });
    a.close();
    const b = new JsonlLogger(file);
    b.log({ step: 2 });
    b.close();
    const recs = readStepLog(file);
    expect(recs.map((r) => r.step)).toEqual([1, 2]);
    expect(typeof recs[0].time).toBe('number');
  });

  it('cuts a line torn by a kill mid-write before appending (whole lines are kept)', () => {
    const file = path.join(dir, 'torn.jsonl');
    writeFileSync(file, '{"step":1}\n{"step":2}\n{"step":3,"lo');
    const log = new JsonlLogger(file, { timestamps: false });
    log.log({ step: 3 });
    log.close();
    expect(readFileSync(file, 'utf8')).toBe('{"step":1}\n{"step":2}\n{"step":3}\n');
    writeFileSync(file, '{"step":1');
    new JsonlLogger(file).close();
    expect(readFileSync(file, 'utf8')).toBe('');
  });

  it('a torn line longer than the 64 KiB scan chunk is cut at the right newline; a device log is left alone', () => {
    const file = path.join(dir, 'long.jsonl');
    const whole = `{"step":1,"pad":"${'x'.repeat(100_000)}"}\n`;
    writeFileSync(file, `${whole}{"step":2,"pad":"${'y'.repeat(150_000)}`);
    new JsonlLogger(file).close();
    expect(readFileSync(file, 'utf8')).toBe(whole);
    // /dev/full reads as endless zeros: the logger must not try to read it (it did, until memory ran out)
    const dev = path.join(dir, 'dev.jsonl');
    symlinkSync('/dev/full', dev);
    new JsonlLogger(dev).close();
  });

  it('rejects writes after close and non-integer steps', () => {
    const log = new JsonlLogger(path.join(dir, 'c.jsonl'));
    expect(() => log.log({ step: 1.5 })).toThrow(/step must be an integer/);
    log.close();
    expect(() => log.log({ step: 1 })).toThrow(/is closed/);
  });
});

describe('progress formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(12.4)).toBe('12s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(Number.NaN)).toBe('--');
  });

  it('formats a line with bar, loss, lr, tokens/s and ETA', () => {
    const p = { step: 5, total: 10, loss: 1.5, lr: 1e-4, tokensPerSec: 250.4, elapsedSec: 10 };
    expect(formatProgress(p, 10)).toBe('[#####.....] 5/10 loss 1.5000 lr 1.00e-4 tok/s 250 eta 10s');
    expect(formatProgress({ step: 0, total: 3, elapsedSec: 0 })).toBe('0/3 eta --');
    expect(formatProgress({ step: 3, total: 3, loss: Number.NaN, elapsedSec: 9 }, 4)).toBe(
      '[####] 3/3 loss NaN eta 0s',
    );
  });

  it('prints plain lines when not a TTY, and redraws one line on a TTY', () => {
    let t = 0;
    const plain: string[] = [];
    const bar = new ProgressBar(4, { write: (s: string) => plain.push(s) }, () => t);
    t = 2000;
    bar.update({ step: 1, loss: 3 });
    t = 4000;
    bar.update({ step: 2, loss: 2 });
    bar.done();
    expect(plain).toEqual(['1/4 loss 3.0000 eta 6s\n', '2/4 loss 2.0000 eta 4s\n']);

    const tty: string[] = [];
    const bar2 = new ProgressBar(2, { write: (s: string) => tty.push(s), isTTY: true, columns: 80 }, () => 0);
    bar2.update({ step: 1 });
    bar2.done();
    expect(tty[0].startsWith('\r[############............] 1/2')).toBe(true);
    expect(tty[0].includes('\n')).toBe(false);
    expect(tty[1]).toBe('\n');
  });
});

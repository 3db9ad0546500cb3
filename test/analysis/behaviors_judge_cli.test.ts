// `ovr-train behaviors` judge and BTR modes against the loopback judge server process (judge_server.mjs counts one
// keyword per behaviour): per-step BTR from a visual and a linguistic rollouts file, the judge report, the cache on a
// rerun, the offline lexicon BTR, and the errors (judge flags in pairs, steps that differ between the files).
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { behaviorsCommand } from '../../src/cli/behaviors.js';
import { capture as run } from '../cli/run.js';
import { startJudgeServer } from './judge_peer.js';

let server: ChildProcess;
let url: string;
const dir = mkdtempSync(path.join(tmpdir(), 'ovr-behjudge-'));
beforeAll(async () => {
  const s = await startJudgeServer(0);
  server = s.proc;
  url = `${s.url}/v1`;
});
afterAll(() => {
  server?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

const write = (name: string, rows: object[]) => {
  const f = path.join(dir, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n'));
  return f;
};
// step 0: 1 of 4 visual traces re-inspects the image, 2 of 4 linguistic ones say "wait" -> BTR 50%
// step 5: 2 of 2 visual, 1 of 2 linguistic -> BTR 200%
const VISUAL = write('visual.jsonl', [
  { step: 0, completion: ['Let me see the image again.', 'x', 'y', 'z'] },
  { step: 5, completion: 'Look at the image again.' },
  { step: 5, completion: 'Checking the image again: 3.' },
]);
const LING = write('ling.jsonl', [
  { step: 0, completion: ['Wait, no.', 'Wait.', 'a', 'b'] },
  { step: 5, completion: ['Wait, 2.', 'done'] },
]);

describe('ovr-train behaviors --judge-url / --linguistic', () => {
  it('prints BTR per step from judged counts, with the judge report; a rerun hits the cache', async () => {
    const cache = path.join(dir, 'cache');
    const argv = [
      VISUAL,
      '--linguistic',
      LING,
      '--judge-url',
      url,
      '--judge-model',
      'm',
      '--judge-cache',
      cache,
    ];
    const r = await run(() => behaviorsCommand([...argv, '--json']));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const { rows, judge } = JSON.parse(r.out);
    const back = (i: number) => rows[i].pairs.find((p: { label: string }) => p.label === 'backtracking');
    expect(rows.map((x: { stage: string }) => x.stage)).toEqual(['0', '5']);
    expect(back(0).btr).toBe(0.5);
    expect(back(1).btr).toBe(2);
    // 4 pairs x (4 + 4 traces at step 0, 2 + 2 at step 5)
    expect(judge).toMatchObject({ items: 48, cacheHits: 0, parseFailures: 0 });
    const again = await run(() => behaviorsCommand(argv));
    expect(again.out).toMatch(/stage\s+n_v\s+n_l\s+backtracking v\s+l\s+BTR/);
    expect(again.out).toMatch(/^\s+0\s+4\s+4\s+25\.0%\s+50\.0%\s+50\.0%/m);
    expect(again.out).toMatch(/judge: 48 items \(48 cached\), 0 requests/);
  });

  it('judge mode without --linguistic prints the 8 behaviour rates per step', async () => {
    const r = await run(() =>
      behaviorsCommand([
        VISUAL,
        '--judge-url',
        url,
        '--judge-model',
        'm',
        '--judge-cache',
        path.join(dir, 'c2'),
        '--json',
      ]),
    );
    expect(r.code).toBe(0);
    const { rows } = JSON.parse(r.out);
    expect(rows[0].rates.visualReflection).toBe(0.25);
    expect(rows[1].rates.visualReflection).toBe(1);
    expect(Object.keys(rows[0].rates)).toHaveLength(8);
  });

  it('BTR offline with the lexicon when no judge is given (backtracking pair only)', async () => {
    const r = await run(() => behaviorsCommand([VISUAL, '--linguistic', LING, '--json']));
    expect(r.code).toBe(0);
    const { rows, judge } = JSON.parse(r.out);
    expect(judge).toBeUndefined();
    expect(rows[1].pairs[0].btr).toBe(2);
    expect(rows[1].pairs[1].btr).toBeNull();
  });

  it('rejects a judge url without a model, and steps that differ between the files', async () => {
    const r = await run(() => behaviorsCommand([VISUAL, '--judge-url', url]));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--judge-model: judge mode needs both --judge-url and --judge-model/);
    const other = write('other.jsonl', [{ step: 0, completion: 'Wait' }]);
    await expect(behaviorsCommand([VISUAL, '--linguistic', other])).rejects.toThrow(
      /step 5 is in .*visual.jsonl but not in .*other.jsonl/,
    );
  });
});

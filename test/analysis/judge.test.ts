// The LLM-judge client against a real HTTP server process on loopback (judge_server.mjs: an OpenAI-style endpoint
// whose deterministic rule counts a keyword per behaviour). Exercises the real client paths: counts parsed from
// replies, the concurrency limit (peak in-flight measured by the server), retries after HTTP 500 and after a dropped
// connection, giving up with a resumable error, no retry on 404, cache hits on a second run (no new requests),
// malformed replies (re-asked, then null, never cached), the cost report, and BTR from judged counts.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { emergence, lexiconCounter, stageBtr, transferRate } from '../../src/analysis/btr.js';
import { chatUrl, formatJudgeStats, JudgeClient, JudgeError } from '../../src/analysis/judge.js';
import { judgeMessages, parseCount } from '../../src/analysis/judge_prompts.js';
import { startJudgeServer } from './judge_peer.js';

let server: ChildProcess;
let base: string;
let tmp: string;

const serverStats = async (): Promise<{
  requests: number;
  maxInFlight: number;
  seen: Record<string, number>;
}> => (await fetch(`${base}/stats`)).json() as never;

beforeAll(async () => {
  const s = await startJudgeServer(40);
  server = s.proc;
  base = s.url;
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-judge-'));
});
afterAll(async () => {
  server?.kill('SIGTERM');
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(async () => {
  await fetch(`${base}/reset`, { method: 'POST' });
});

const opts = { model: 'judge-test', backoffMs: 20 };
const keywordCount = (text: string, word: string) => text.toLowerCase().split(word).length - 1;

describe('judge prompts', () => {
  it('ask for one behaviour with the trace inside and a <count> answer; parseCount takes the last integer tag', () => {
    const [m] = judgeMessages('visualReflection', 'Let me see the image again.', 'How many apples?');
    expect(m.role).toBe('user');
    expect(m.content).toContain('<reasoning>\nLet me see the image again.\n</reasoning>');
    expect(m.content).toContain('the reasoning shows visual reflection:');
    expect(m.content).toContain('How many apples?');
    expect(parseCount('first <count>1</count> then <count> 3 </count>')).toBe(3);
    expect(parseCount('<count>two</count>')).toBeUndefined();
    expect(parseCount('<count>-1</count>')).toBeUndefined();
    expect(parseCount('no tag')).toBeUndefined();
    expect(chatUrl('http://h:1/v1/')).toBe('http://h:1/v1/chat/completions');
    expect(chatUrl('http://h:1/v1/chat/completions')).toBe('http://h:1/v1/chat/completions');
    expect(() => chatUrl('h:1')).toThrow(/must be http/);
  });
});

describe('JudgeClient against a local server process', () => {
  it('returns the server-side counts, in input order, with at most `concurrency` requests in flight', async () => {
    const traces = Array.from({ length: 12 }, (_, i) => `${'Wait, '.repeat(i % 4)}first check it. ${i}`);
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, concurrency: 3 });
    const v = await judge.countMany(traces.map((trace) => ({ behavior: 'backtracking', trace })));
    expect(v.map((x) => x.count)).toEqual(traces.map((t) => keywordCount(t, 'wait')));
    const s = await serverStats();
    expect(s.requests).toBe(12);
    expect(s.maxInFlight).toBe(3);
    const one = new JudgeClient({ ...opts, url: `${base}/v1`, concurrency: 1 });
    await fetch(`${base}/reset`, { method: 'POST' });
    await one.countMany(traces.slice(0, 4).map((trace) => ({ behavior: 'subgoal', trace })));
    expect((await serverStats()).maxInFlight).toBe(1);
    const st = judge.stats();
    expect(st).toMatchObject({
      items: 12,
      requests: 12,
      retries: 0,
      cacheHits: 0,
      completionTokens: 12 * 12,
    });
    expect(st.promptTokens).toBeGreaterThan(12 * 50);
  });

  it('retries after HTTP 500 and after a dropped connection, then succeeds', async () => {
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, retries: 3 });
    const [a, b] = await judge.countMany([
      { behavior: 'verification', trace: 'check, check [fail500:a:2]' },
      { behavior: 'verification', trace: 'check [drop:b:1]' },
    ]);
    expect([a.count, b.count]).toEqual([2, 1]);
    const s = await serverStats();
    expect(s.seen).toEqual({ 'fail500:a': 3, 'drop:b': 2 });
    expect(judge.stats()).toMatchObject({ retries: 3, requests: 5 });
  });

  it('gives up after the retries with an error naming the endpoint and the last failure; 404 is not retried', async () => {
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, retries: 1, cacheDir: path.join(tmp, 'c0') });
    await expect(judge.count('backtracking', 'wait [fail500:c:9]')).rejects.toThrow(
      /failed 2 times \(last: HTTP 500.*cached in .*c0, rerun to resume/,
    );
    // one failing item stops the run: the other workers take no new item after it
    await fetch(`${base}/reset`, { method: 'POST' });
    const many = new JudgeClient({ ...opts, url: `${base}/v1`, retries: 0, concurrency: 2 });
    const items = Array.from({ length: 20 }, (_, i) => ({
      behavior: 'backtracking' as const,
      trace: i === 0 ? 'x [fail500:z:9]' : `wait ${i}`,
    }));
    await expect(many.countMany(items)).rejects.toThrow(/failed 1 times/);
    await new Promise((r) => setTimeout(r, 200));
    expect((await serverStats()).requests).toBeLessThanOrEqual(3);
    const wrong = new JudgeClient({ ...opts, url: `${base}/nope` });
    const err = await wrong.count('backtracking', 'wait').catch((e) => e);
    expect(err).toBeInstanceOf(JudgeError);
    expect(err.message).toMatch(/answered HTTP 404/);
    expect(wrong.stats().requests).toBe(1);
  });

  it('caches verdicts on disk by request hash: a second run sends no request', async () => {
    const cacheDir = path.join(tmp, 'cache');
    const items = ['Wait. Wait.', 'region one, region two', 'the trace'].flatMap((trace) => [
      { behavior: 'backtracking' as const, trace },
      { behavior: 'visualDivideConquer' as const, trace },
    ]);
    const first = new JudgeClient({ ...opts, url: `${base}/v1`, cacheDir });
    const v1 = await first.countMany(items);
    expect((await serverStats()).requests).toBe(6);
    const second = new JudgeClient({ ...opts, url: `${base}/v1`, cacheDir });
    const v2 = await second.countMany(items);
    expect(v2.map((v) => v.count)).toEqual(v1.map((v) => v.count));
    expect(v2.every((v) => v.cached)).toBe(true);
    expect((await serverStats()).requests).toBe(6);
    expect(second.stats()).toMatchObject({ items: 6, cacheHits: 6, requests: 0 });
    // another judge model is another request: not served from this cache
    const other = new JudgeClient({ ...opts, model: 'other', url: `${base}/v1`, cacheDir });
    await other.count('backtracking', 'Wait. Wait.');
    expect((await serverStats()).requests).toBe(7);
  });

  it('re-asks after a malformed reply, then records null (not 0) and does not cache it', async () => {
    const cacheDir = path.join(tmp, 'cache-bad');
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, cacheDir, parseRetries: 1 });
    const v = await judge.count('backtracking', 'wait [malformed]');
    expect(v.count).toBeNull();
    expect(v.reply).toMatch(/a few instances/);
    expect(judge.stats()).toMatchObject({ parseFailures: 1, requests: 2 });
    const again = new JudgeClient({ ...opts, url: `${base}/v1`, cacheDir, parseRetries: 0 });
    expect((await again.count('backtracking', 'wait [malformed]')).cached).toBe(false);
    expect((await serverStats()).requests).toBe(3);
  });

  it('reports cost and time', async () => {
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, priceInPerMTok: 2.5, priceOutPerMTok: 10 });
    await judge.countMany([{ behavior: 'backtracking', trace: 'wait' }]);
    const s = judge.stats();
    expect(s.costUsd).toBeCloseTo((s.promptTokens * 2.5 + 12 * 10) / 1e6, 12);
    expect(formatJudgeStats(s)).toMatch(
      /judge: 1 items \(0 cached\), 1 requests \(0 retries\), 0 unparsable, \d+ prompt \+ 12 completion tokens, ~\$0\.000\d+, \d+\.\d s/,
    );
  });
});

describe('BTR', () => {
  it('emergence and transfer rate', () => {
    expect(emergence([0, 2, null, 1])).toEqual({ rate: 2 / 3, meanCount: 1, scored: 3, unscored: 1 });
    expect(emergence([null]).rate).toBeNaN();
    expect(transferRate(0.1, 0.4)).toBe(0.25);
    expect(transferRate(0.1, 0)).toBeNull();
  });

  it('from judged counts per stage: CBR_v on visual traces / CBR_l on linguistic traces', async () => {
    const judge = new JudgeClient({ ...opts, url: `${base}/v1`, concurrency: 4 });
    const stages = [
      {
        stage: 'base',
        visual: ['look at the image again', 'no', 'no', 'no'],
        linguistic: ['wait', 'wait', 'no', 'no'],
      },
      {
        stage: 'rl',
        visual: ['image again', 'image again, region', 'no', 'no'],
        linguistic: ['wait', 'no', 'no', 'no'],
      },
    ];
    const rows = await stageBtr(stages, judge.counter());
    const back = (i: number) => rows[i].pairs.find((p) => p.label === 'backtracking')!;
    expect(back(0).cbrV.rate).toBe(1 / 4);
    expect(back(0).cbrL.rate).toBe(2 / 4);
    expect(back(0).btr).toBe(0.5);
    expect(back(1).btr).toBe(2);
    const sub = rows[1].pairs.find((p) => p.label === 'subgoal')!;
    expect(sub.cbrV.rate).toBe(1 / 4);
    expect(sub.btr).toBeNull(); // no 'first' in any linguistic trace
    // 2 stages x 4 pairs x (4 visual + 4 linguistic) traces
    expect(judge.stats().items).toBe(64);
    // offline lexicon: only the backtracking pair has both sides
    const lex = await stageBtr(stages, lexiconCounter);
    expect(lex[1].pairs.find((p) => p.label === 'backtracking')!.btr).toBe(2);
    expect(lex[1].pairs.find((p) => p.label === 'subgoal')!.cbrV.scored).toBe(0);
  });
});

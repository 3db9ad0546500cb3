// Fault handling of the remote rollout engines against real processes on loopback: the engine down (nothing
// listening), killed mid-rollout and restarted on the same port, a peer answering garbage or JSON of the wrong shape,
// a peer that never answers (timeout), and a 500. Each asserts the error text (URL, endpoint, attempts, cause) and
// what was kept: a failed call returns no rows at all, and a retried call returns the rows an uninterrupted call gives.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { QWEN_EOS_IDS } from '../../src/model/generate.js';
import { loadModel } from '../../src/model/load.js';
import { saveWeights } from '../../src/model/weights.js';
import { SglangEngine } from '../../src/rollout/sglang.js';
import { RolloutEngineError, type RolloutSampling } from '../../src/rollout/types.js';
import { VllmEngine } from '../../src/rollout/vllm.js';
import { type Proc, startFaultServer, startServe } from './procs.js';

const PROMPT = [{ promptIds: [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198] }];
const S: RolloutSampling = { n: 2, maxNewTokens: 3, temperature: 1, seed: 1, eosIds: QWEN_EOS_IDS };
const FAST = { attempts: 3, backoffMs: 50, maxBackoffMs: 200, timeoutMs: 2000 };

/** A loopback port nothing listens on (bound, read, released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function rejection(p: Promise<unknown>): Promise<RolloutEngineError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RolloutEngineError);
  console.log(`error text: ${(e as Error).message}`);
  return e as RolloutEngineError;
}

const count = async (p: Proc) => ((await (await fetch(`${p.url}/count`)).json()) as { count: number }).count;

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ovr-faults-'));
  const model = await loadModel('tiny', { seed: 0 });
  await saveWeights(dir, model.params, model.config, { dtype: 'F32' });
  model.dispose();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('remote engine faults', () => {
  it('engine down: retries with backoff, then names the URL, endpoint and cause', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const t0 = performance.now();
    const e = await rejection(new SglangEngine({ url, retry: FAST }).generate(PROMPT, S));
    const ms = performance.now() - t0;
    expect(e.message).toBe(
      `sglang engine at ${url}: POST /generate failed after 3 attempts: connection refused (is the engine running?)`,
    );
    expect(e.attempts).toBe(3);
    expect(ms).toBeGreaterThanOrEqual(50 + 100); // two backoff waits
    const v = await rejection(
      new VllmEngine({ url, model: 'm', retry: { ...FAST, attempts: 1 } }).generate(PROMPT, S),
    );
    expect(v.message).toContain(
      `vllm engine at ${url}: POST /v1/completions failed after 1 attempt: connection refused`,
    );
  });

  it('garbage and wrongly shaped replies are malformed: retried, then refused, no rows kept', async () => {
    const garbage = await startFaultServer('garbage');
    const shape = await startFaultServer('badshape');
    try {
      const e1 = await rejection(new SglangEngine({ url: garbage.url, retry: FAST }).generate(PROMPT, S));
      expect(e1.message).toBe(
        `sglang engine at ${garbage.url}: POST /generate failed after 3 attempts: malformed reply (not JSON): "<html>502 upstream garbage"`,
      );
      expect(await count(garbage)).toBe(3);
      const e2 = await rejection(new SglangEngine({ url: shape.url, retry: FAST }).generate(PROMPT, S));
      expect(e2.message).toMatch(
        /POST \/generate failed after 3 attempts: malformed reply: \/generate reply: 0\.meta_info\.output_token_logprobs: /,
      );
      const e3 = await rejection(
        new VllmEngine({ url: shape.url, model: 'm', retry: FAST }).generate(PROMPT, S),
      );
      expect(e3.message).toMatch(
        /POST \/v1\/completions failed after 3 attempts: malformed reply: \/v1\/completions reply: \(root\): .*expected object/,
      );
    } finally {
      await garbage.kill();
      await shape.kill();
    }
  });

  it('timeout: a peer that never answers is abandoned after timeoutMs per attempt', async () => {
    const hang = await startFaultServer('hang');
    const five = await startFaultServer('error500');
    try {
      const t0 = performance.now();
      const e = await rejection(
        new SglangEngine({ url: hang.url, retry: { attempts: 2, backoffMs: 10, timeoutMs: 300 } }).generate(
          PROMPT,
          S,
        ),
      );
      expect(e.message).toBe(
        `sglang engine at ${hang.url}: POST /generate failed after 2 attempts: no reply within 300 ms (timeout)`,
      );
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(await count(hang)).toBe(2);
      const f = await rejection(new SglangEngine({ url: five.url, retry: FAST }).generate(PROMPT, S));
      expect(f.message).toContain(
        'failed after 3 attempts: HTTP 500: {"error":"CUDA out of memory (injected)"}',
      );
    } finally {
      await hang.kill();
      await five.kill();
    }
  });

  it('server killed mid-rollout and restarted on the same port: the retried call returns the uninterrupted rows', async () => {
    let server = await startServe(dir);
    const port = server.port;
    try {
      const long: RolloutSampling = { ...S, maxNewTokens: 40, eosIds: [] };
      const engine = new SglangEngine({
        url: server.url,
        retry: { attempts: 30, backoffMs: 500, maxBackoffMs: 2000, timeoutMs: 120_000 },
      });
      const reference = await engine.generate(PROMPT, long);
      const pending = engine.generate(PROMPT, long);
      await new Promise((r) => setTimeout(r, 300));
      await server.kill();
      server = await startServe(dir, { port });
      const got = await pending;
      expect(got.samples).toEqual(reference.samples);
      expect(got.samples.every((s) => s.tokens.length === 40)).toBe(true);
      // killed for good: the call fails after its attempts and names the cause
      const quick = new SglangEngine({ url: server.url, retry: FAST });
      const p = quick.generate(PROMPT, long);
      await new Promise((r) => setTimeout(r, 300));
      await server.kill();
      const e = await rejection(p);
      expect(e.message).toMatch(
        /POST \/generate failed after 3 attempts: (connection reset|connection refused|fetch failed)/,
      );
    } finally {
      await server.kill();
    }
  }, 240_000);
});

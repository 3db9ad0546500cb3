// LLM-judge client for the behaviour analysis (OVR §5.2: GPT-4o counts each behaviour in each trace). Sends the
// counting prompt (judge_prompts.ts) to any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, SGLang,
// `ovr-train serve`), with a concurrency limit, retries with exponential backoff on 429 / 5xx / dropped connections /
// timeouts, an on-disk cache keyed by the SHA-256 of the full request (model + messages + sampling), and a
// cost/time report. A malformed reply (no `<count>N</count>`) is asked again (`parseRetries`), then recorded as
// count null and reported; it is never cached, never counted as 0.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BehaviorCounter } from './btr.js';
import { type JudgeBehavior, judgeMessages, parseCount } from './judge_prompts.js';

/** Judge endpoint and client behaviour. */
export interface JudgeOptions {
  /** Base URL (`http://host:8000/v1`) or the full `.../chat/completions` URL. */
  url: string;
  /** Model name sent in the request. */
  model: string;
  /** Bearer token (none for local servers). */
  apiKey?: string;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Retries after a retryable failure (429, 5xx, network error, timeout). Default 3. */
  retries?: number;
  /** First backoff in ms, doubled per retry. Default 500. */
  backoffMs?: number;
  /** Per-request timeout in ms. Default 120000. */
  timeoutMs?: number;
  /** Extra asks after a reply without a parsable count. Default 1. */
  parseRetries?: number;
  /** Cache folder (one JSON per request hash); no cache when undefined. */
  cacheDir?: string;
  /** Sampling: temperature 0 and max_tokens 1024 by default. */
  temperature?: number;
  maxTokens?: number;
  /** USD per million prompt / completion tokens, for the cost estimate. */
  priceInPerMTok?: number;
  priceOutPerMTok?: number;
}

/** One judged (behaviour, trace). */
export interface Verdict {
  behavior: JudgeBehavior;
  /** Count of instances; null when the judge never gave a parsable count. */
  count: number | null;
  cached: boolean;
  reply: string;
}

/** Totals for the cost/time report. */
export interface JudgeStats {
  /** (behaviour, trace) items asked for. */
  items: number;
  cacheHits: number;
  /** HTTP requests sent (including retries and re-asks). */
  requests: number;
  retries: number;
  parseFailures: number;
  promptTokens: number;
  completionTokens: number;
  wallMs: number;
  /** Estimated USD, when prices were given. */
  costUsd?: number;
}

/** Error after the retries ran out or on a non-retryable HTTP status; finished verdicts are already cached. */
export class JudgeError extends Error {
  override name = 'JudgeError';
}

type Cached = { count: number; reply: string };
type Completion = { reply: string; promptTokens: number; completionTokens: number };

const RETRYABLE = (status: number) => status === 408 || status === 429 || status >= 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `http://h/v1` -> `http://h/v1/chat/completions`; a full URL is kept. */
export function chatUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`judge url '${url}' is not a URL; give e.g. http://127.0.0.1:8000/v1`);
  }
  if (!/^https?:$/.test(u.protocol)) throw new Error(`judge url '${url}' must be http(s)`);
  const s = url.replace(/\/+$/, '');
  return s.endsWith('/chat/completions') ? s : `${s}/chat/completions`;
}

/**
 * Counts behaviours in traces with an LLM judge.
 * @example
 * const judge = new JudgeClient({ url: 'http://127.0.0.1:8000/v1', model: 'gpt-4o', cacheDir: '.judge-cache' });
 * const [v] = await judge.countMany([{ behavior: 'backtracking', trace }]);
 * console.log(v.count, formatJudgeStats(judge.stats()));
 */
export class JudgeClient {
  private readonly o: Required<
    Omit<JudgeOptions, 'apiKey' | 'cacheDir' | 'priceInPerMTok' | 'priceOutPerMTok'>
  > &
    JudgeOptions;
  private readonly endpoint: string;
  private readonly s: JudgeStats = {
    items: 0,
    cacheHits: 0,
    requests: 0,
    retries: 0,
    parseFailures: 0,
    promptTokens: 0,
    completionTokens: 0,
    wallMs: 0,
  };

  constructor(opts: JudgeOptions) {
    if (!opts.model) throw new Error('judge: give the judge model name (--judge-model)');
    this.endpoint = chatUrl(opts.url);
    this.o = {
      concurrency: 4,
      retries: 3,
      backoffMs: 500,
      timeoutMs: 120_000,
      parseRetries: 1,
      temperature: 0,
      maxTokens: 1024,
      ...opts,
    };
    if (!(Number.isInteger(this.o.concurrency) && this.o.concurrency >= 1)) {
      throw new Error(`judge: concurrency must be an integer >= 1, got ${this.o.concurrency}`);
    }
  }

  /** Judges every item with at most `concurrency` requests in flight; results in input order. */
  async countMany(
    items: readonly { behavior: JudgeBehavior; trace: string; question?: string }[],
  ): Promise<Verdict[]> {
    const t0 = Date.now();
    const out = new Array<Verdict>(items.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
      // after one failure the other workers finish their request in flight and take no new item
      while (!failed && next < items.length) {
        const i = next++;
        try {
          out[i] = await this.count(items[i].behavior, items[i].trace, items[i].question);
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.o.concurrency, items.length) }, worker));
    } finally {
      this.s.wallMs += Date.now() - t0;
    }
    return out;
  }

  /** Judges one trace for one behaviour (cache first). */
  async count(behavior: JudgeBehavior, trace: string, question?: string): Promise<Verdict> {
    this.s.items++;
    const body = {
      model: this.o.model,
      messages: judgeMessages(behavior, trace, question),
      temperature: this.o.temperature,
      max_tokens: this.o.maxTokens,
    };
    const key = createHash('sha256').update(JSON.stringify(body)).digest('hex');
    const hit = await this.readCache(key);
    if (hit) {
      this.s.cacheHits++;
      return { behavior, count: hit.count, cached: true, reply: hit.reply };
    }
    let reply = '';
    for (let ask = 0; ask <= this.o.parseRetries; ask++) {
      reply = (await this.post(body)).reply;
      const count = parseCount(reply);
      if (count !== undefined) {
        await this.writeCache(key, { count, reply });
        return { behavior, count, cached: false, reply };
      }
    }
    this.s.parseFailures++;
    return { behavior, count: null, cached: false, reply };
  }

  /** This judge as a {@link BehaviorCounter} for btr.ts (`stageBtr`). */
  counter(): BehaviorCounter {
    return async (behavior, traces) =>
      (await this.countMany(traces.map((trace) => ({ behavior, trace })))).map((v) => v.count);
  }

  /** Totals so far (a copy), with the cost estimate when prices were given. */
  stats(): JudgeStats {
    const s = { ...this.s };
    if (this.o.priceInPerMTok !== undefined || this.o.priceOutPerMTok !== undefined) {
      s.costUsd =
        (s.promptTokens * (this.o.priceInPerMTok ?? 0) + s.completionTokens * (this.o.priceOutPerMTok ?? 0)) /
        1e6;
    }
    return s;
  }

  /** One chat completion with retries on retryable failures. */
  private async post(body: object): Promise<Completion> {
    let last = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (attempt > 0) {
        this.s.retries++;
        await sleep(this.o.backoffMs * 2 ** (attempt - 1));
      }
      this.s.requests++;
      let res: Response;
      try {
        res = await fetch(this.endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}),
          },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        last = `${err.name === 'TimeoutError' ? `timeout after ${this.o.timeoutMs} ms` : err.message}${err.cause ? ` (${err.cause.code ?? err.cause.message})` : ''}`;
        continue;
      }
      const text = await res.text().catch((e: Error) => `<body unreadable: ${e.message}>`);
      if (!res.ok) {
        last = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        if (RETRYABLE(res.status)) continue;
        throw new JudgeError(
          `judge ${this.endpoint} answered ${last}; check --judge-url, --judge-model and the API key`,
        );
      }
      return this.parseCompletion(text);
    }
    throw new JudgeError(
      `judge ${this.endpoint} failed ${this.o.retries + 1} times (last: ${last}); finished verdicts are cached` +
        `${this.o.cacheDir ? ` in ${this.o.cacheDir}` : ''}, rerun to resume`,
    );
  }

  private parseCompletion(text: string): Completion {
    let j: {
      choices?: { message?: { content?: unknown } }[];
      usage?: { prompt_tokens?: number; completion_tokens?: number };
    };
    try {
      j = JSON.parse(text);
    } catch {
      throw new JudgeError(`judge ${this.endpoint} returned non-JSON: ${text.slice(0, 200)}`);
    }
    const content = j.choices?.[0]?.message?.content;
    if (typeof content !== 'string') {
      throw new JudgeError(
        `judge ${this.endpoint} reply has no choices[0].message.content: ${text.slice(0, 200)}`,
      );
    }
    const promptTokens = j.usage?.prompt_tokens ?? 0;
    const completionTokens = j.usage?.completion_tokens ?? 0;
    this.s.promptTokens += promptTokens;
    this.s.completionTokens += completionTokens;
    return { reply: content, promptTokens, completionTokens };
  }

  private cachePath(key: string): string | undefined {
    return this.o.cacheDir ? path.join(this.o.cacheDir, key.slice(0, 2), `${key}.json`) : undefined;
  }

  private async readCache(key: string): Promise<Cached | undefined> {
    const p = this.cachePath(key);
    if (!p) return undefined;
    const text = await readFile(p, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const c = JSON.parse(text) as Cached;
      return Number.isInteger(c.count) && c.count >= 0 ? c : undefined;
    } catch {
      return undefined; // a torn or foreign file: ask again and overwrite it
    }
  }

  private async writeCache(key: string, c: Cached): Promise<void> {
    const p = this.cachePath(key);
    if (!p) return;
    await mkdir(path.dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, JSON.stringify(c));
    await rename(tmp, p);
  }
}

/**
 * One-paragraph cost/time report.
 * @example formatJudgeStats(judge.stats()) // 'judge: 80 items (40 cached), 44 requests (4 retries), ...'
 */
export function formatJudgeStats(s: JudgeStats): string {
  const cost = s.costUsd === undefined ? '' : `, ~$${s.costUsd.toFixed(4)}`;
  return (
    `judge: ${s.items} items (${s.cacheHits} cached), ${s.requests} requests (${s.retries} retries), ` +
    `${s.parseFailures} unparsable, ${s.promptTokens} prompt + ${s.completionTokens} completion tokens${cost}, ` +
    `${(s.wallMs / 1000).toFixed(1)} s`
  );
}

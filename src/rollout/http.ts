// JSON over HTTP for remote rollout engines, with the fault policy: a per-attempt timeout, retries with exponential
// backoff on connection errors, timeouts, 5xx/429 replies and malformed bodies, then one error naming the URL, the
// endpoint, the attempts and the last failure. 4xx replies (other than 408/429) are the request's fault: no retry.
// Follows the retry loops of TRL's `VLLMClient` (`check_server`, requests with timeouts) and OpenAI clients
// (exponential backoff), on Node's built-in fetch.
import { RolloutEngineError } from './types.js';

/** Fault policy of a remote engine. */
export interface RetryOptions {
  /** Attempts per call (1 = no retry). Default 3. */
  attempts?: number;
  /** Wait before the 2nd attempt, doubled each time. Default 250 ms. */
  backoffMs?: number;
  /** Cap on one wait. Default 5000 ms. */
  maxBackoffMs?: number;
  /** Time limit of one attempt (connect + reply). Default 600 000 ms (long generations). */
  timeoutMs?: number;
}

const DEFAULTS: Required<RetryOptions> = {
  attempts: 3,
  backoffMs: 250,
  maxBackoffMs: 5000,
  timeoutMs: 600_000,
};

/** Fills the defaults and checks the numbers. */
export function resolveRetry(o: RetryOptions = {}): Required<RetryOptions> {
  const r = { ...DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) };
  if (!Number.isInteger(r.attempts) || r.attempts < 1)
    throw new Error(`retry.attempts must be an integer >= 1, got ${r.attempts}`);
  for (const k of ['backoffMs', 'maxBackoffMs', 'timeoutMs'] as const)
    if (!(r[k] >= 0)) throw new Error(`retry.${k} must be >= 0, got ${r[k]}`);
  return r;
}

/** Wait before attempt `i` (0-based; attempt 0 does not wait): backoff * 2^(i-1), capped. */
export const backoffDelay = (i: number, o: Required<RetryOptions>): number =>
  i === 0 ? 0 : Math.min(o.maxBackoffMs, o.backoffMs * 2 ** (i - 1));

/** One attempt's failure; `retry` false for the request's own errors (4xx). */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
  }
}

/** Why fetch failed, in words: ECONNREFUSED etc. live on `cause`. */
function describeFetchError(e: unknown, timeoutMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError')
    return `no reply within ${timeoutMs} ms (timeout)`;
  const code = err.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (is the engine running?)';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET')
    return 'connection reset (engine died mid-request?)';
  return `${err.message}${err.cause?.message ? `: ${err.cause.message}` : ''}`;
}

async function attempt(url: string, init: RequestInit, timeoutMs: number): Promise<unknown> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
  } catch (e) {
    throw new AttemptError(describeFetchError(e, timeoutMs), true);
  }
  if (!res.ok) {
    const retry = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new AttemptError(`HTTP ${res.status}: ${text.slice(0, 300)}`, retry);
  }
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    throw new AttemptError(`malformed reply (not JSON): ${JSON.stringify(text.slice(0, 120))}`, true);
  }
}

/** What a call needs besides the body. */
export interface CallOptions {
  /** Engine kind for messages ('sglang', 'vllm'). */
  engine: string;
  baseUrl: string;
  method?: 'GET' | 'POST';
  retry: Required<RetryOptions>;
  /** Validates and converts the parsed JSON; a throw counts as a malformed reply (retried). */
  parse?: (json: unknown) => unknown;
}

/**
 * Calls `endpoint` on the engine with retries; resolves with `parse(json)`, or rejects with a RolloutEngineError
 * such as "sglang engine at http://127.0.0.1:30000: POST /generate failed after 3 attempts: connection refused".
 * @example const out = await callJson('/generate', body, { engine: 'sglang', baseUrl, retry: resolveRetry() });
 */
export async function callJson<T = unknown>(endpoint: string, body: unknown, o: CallOptions): Promise<T> {
  const method = o.method ?? (body === undefined ? 'GET' : 'POST');
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  let last = '';
  let i = 0;
  for (; i < o.retry.attempts; i++) {
    const wait = backoffDelay(i, o.retry);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    try {
      const json = await attempt(o.baseUrl + endpoint, init, o.retry.timeoutMs);
      try {
        return (o.parse ? o.parse(json) : json) as T;
      } catch (e) {
        throw new AttemptError(`malformed reply: ${(e as Error).message}`, true);
      }
    } catch (e) {
      if (!(e instanceof AttemptError)) throw e;
      last = e.message;
      if (!e.retry) {
        i++;
        break;
      }
    }
  }
  throw new RolloutEngineError(
    `${o.engine} engine at ${o.baseUrl}: ${method} ${endpoint} failed after ${i} attempt${i === 1 ? '' : 's'}: ${last}`,
    o.baseUrl,
    endpoint,
    i,
  );
}

/** Base URL without a trailing slash; rejects what is not http(s). */
export function normalizeBaseUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`rollout url '${url}' is not a URL (e.g. http://127.0.0.1:30000)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new Error(`rollout url '${url}' must start with http:// or https://`);
  return url.replace(/\/+$/, '');
}

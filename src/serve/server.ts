// `ovr-train serve`: the library's own model behind the wire-protocol subset our rollout clients speak, so rollouts
// can run on another machine with ovr and tests can drive the clients against a real server process.
// SGLang-style: POST /generate, POST /update_weights_from_disk, POST /load_lora_adapter, GET /get_model_info,
// GET /get_weight_version. vLLM/OpenAI-style: POST /v1/completions, POST /v1/chat/completions,
// POST /v1/load_lora_adapter, GET /v1/models. Both: GET /health, POST /unload_lora_adapter (+ /v1/).
// Adapters: ONE at a time (SGLang and vLLM keep several by name): loading one replaces the previous (model/peft.ts
// swapAdapter; a bad folder is refused with 400 and the previous adapter keeps serving). As on those engines, a
// request gets the adapter only when it names it (SGLang `lora_path`, vLLM `model`); otherwise the base model.
// One model, one request at a time: handlers run through a FIFO lock, so a weight load waits for the rollout in
// flight and the next rollout sees the new weights (SGLang's flush_cache semantics, without pausing).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { QWEN_EOS_IDS } from '../model/generate.js';
import { adapterOf, detachAdapter } from '../model/lora.js';
import type { Qwen2_5_VL } from '../model/qwen2_5_vl.js';
import { QWEN_REAL_VOCAB } from '../model/sampling.js';
import { LocalEngine } from '../rollout/local.js';
import { fromGenerateRequest, GenerateRequest, generateReply } from '../rollout/sglang_wire.js';
import { BadRequest, chatCompletions, completions, type OpenAiContext } from './openai.js';

/** What the server serves. */
export interface ServeOptions {
  model: Qwen2_5_VL;
  tokenizer: QwenTokenizer;
  /** Name in /v1/models and replies. */
  modelName: string;
  /** Folder the weights came from (reported by /get_model_info). */
  modelPath: string;
  /** The adapter the model already carries (attached with swapAdapter), served under `name`. */
  adapter?: { name: string; path: string };
  /** One line per request (default: none). */
  log?: (line: string) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 1 << 30;

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
}

function send(res: http.ServerResponse, status: number, json: unknown): void {
  const body = JSON.stringify(json);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The request handler and the engine behind it (exported for the CLI and tests). */
export function createHandler(o: ServeOptions) {
  const tok = o.tokenizer;
  const engine = new LocalEngine({
    model: o.model,
    padId: tok.special.pad,
    decode: (ids) => tok.decode(ids),
    weights: 'owned',
  });
  let adapter: { name: string; path: string } | null = o.adapter ?? null;
  if (adapter && !adapterOf(o.model.params))
    throw new Error(
      `serve: adapter ${adapter.name} given but the model carries none (attach it with swapAdapter)`,
    );
  let queue: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const allowedVocab = Math.min(o.model.config.vocab_size, QWEN_REAL_VOCAB);
  const ctx: OpenAiContext = {
    tok,
    modelName: o.modelName,
    eos: QWEN_EOS_IDS,
    allowedVocab,
    generate: (r, s, name) =>
      locked(async () => {
        const a = adapterOf(o.model.params);
        if (wantsAdapter(name) || !a) return engine.generate(r, s);
        a.enabled = false;
        try {
          return await engine.generate(r, s);
        } finally {
          a.enabled = true;
        }
      }),
  };
  /** Whether a request naming `name` (model name, adapter name or path; none = base) gets the adapter. */
  function wantsAdapter(name: string | null | undefined): boolean {
    if (name === undefined || name === null || name === '' || name === o.modelName) return false;
    if (adapter && (name === adapter.name || name === adapter.path)) return true;
    const have = [o.modelName, ...(adapter ? [adapter.name] : [])].map((x) => `'${x}'`).join(', ');
    throw new HttpError(
      404,
      `model or adapter '${name}' is not served here (serving ${have}; one adapter at a time: load it with /load_lora_adapter)`,
    );
  }
  const loraOf = (p: string | (string | null)[] | null | undefined): string | undefined => {
    const names = new Set(Array.isArray(p) ? p.map((x) => x ?? '') : [p ?? '']);
    if (names.size > 1)
      throw new HttpError(400, `lora_path: one adapter per /generate batch here, got ${JSON.stringify(p)}`);
    return [...names][0] || undefined;
  };
  const loadAdapter = async (body: unknown) => {
    const b = (body ?? {}) as { lora_name?: unknown; lora_path?: unknown };
    if (typeof b.lora_name !== 'string' || typeof b.lora_path !== 'string')
      throw new HttpError(400, 'expected {lora_name, lora_path}');
    const { lora_name: name, lora_path: dir } = b as { lora_name: string; lora_path: string };
    if (name === o.modelName)
      throw new HttpError(
        400,
        `lora_name '${name}' is the base model's name: pick another (requests name it)`,
      );
    let replaced: string | undefined;
    try {
      // weight_version tracks the base weights (as on SGLang): the adapter's name is what pins its version
      await locked(async () => {
        await engine.syncWeights({ dir, kind: 'adapter', version: engine.servedVersion });
        replaced = adapter?.name;
        adapter = { name, path: dir }; // inside the lock: the next request in the queue sees the new name
      });
    } catch (e) {
      const still = adapter ? `adapter ${adapter.name}` : 'no adapter';
      throw new HttpError(
        400,
        JSON.stringify({
          success: false,
          message: `failed to load adapter ${name}: ${(e as Error).message}; still serving ${still}`,
        }),
      );
    }
    return {
      success: true,
      message: `loaded adapter ${name}${replaced ? ` (replaces ${replaced}: one adapter at a time)` : ''}`,
    };
  };
  const unloadAdapter = async (body: unknown) => {
    const name = (body as { lora_name?: unknown } | undefined)?.lora_name;
    if (typeof name !== 'string') throw new HttpError(400, 'expected {lora_name}');
    return locked(async () => {
      if (adapter?.name !== name) return { success: true, message: `adapter ${name} is not loaded` };
      detachAdapter(o.model.params)?.dispose();
      adapter = null;
      return { success: true, message: `unloaded adapter ${name}` };
    });
  };
  const routes: Record<string, (body: unknown) => Promise<unknown>> = {
    'GET /health': async () => ({ status: 'ok' }),
    'GET /health_generate': async () => ({ status: 'ok' }),
    'GET /v1/models': async () => ({
      object: 'list',
      data: [o.modelName, ...(adapter ? [adapter.name] : [])].map((id) => ({
        id,
        object: 'model',
        owned_by: 'ovr',
        root: o.modelPath,
      })),
    }),
    'GET /get_model_info': async () => ({
      model_path: o.modelPath,
      is_generation: true,
      weight_version: String(engine.servedVersion),
    }),
    'GET /get_weight_version': async () => ({ weight_version: String(engine.servedVersion) }),
    'POST /generate': async (body) => {
      const p = GenerateRequest.safeParse(body);
      if (!p.success) {
        const i = p.error.issues[0];
        throw new HttpError(400, `/generate: ${i.path.join('.') || 'body'}: ${i.message}`);
      }
      const { requests, sampling } = fromGenerateRequest(p.data, QWEN_EOS_IDS, allowedVocab);
      const res = await ctx.generate(requests, sampling, loraOf(p.data.lora_path));
      const single = typeof p.data.input_ids[0] === 'number';
      return generateReply(
        res,
        (ids) => tok.decode(ids),
        requests.map((r) => r.promptIds.length),
        single,
      );
    },
    'POST /update_weights_from_disk': async (body) => {
      const b = body as { model_path?: unknown; weight_version?: unknown };
      if (typeof b.model_path !== 'string') throw new HttpError(400, 'expected {model_path}');
      const dir = b.model_path;
      const version = b.weight_version === undefined ? engine.servedVersion + 1 : Number(b.weight_version);
      if (!Number.isInteger(version) || version < 0)
        throw new HttpError(
          400,
          `weight_version must be an integer string, got ${JSON.stringify(b.weight_version)}`,
        );
      try {
        await locked(() => engine.syncWeights({ dir, kind: 'full', version }));
      } catch (e) {
        throw new HttpError(
          400,
          JSON.stringify({
            success: false,
            message: `failed to load ${dir}: ${(e as Error).message}; still serving version ${engine.servedVersion}`,
          }),
        );
      }
      return { success: true, message: `loaded ${dir} as version ${version}`, num_paused_requests: 0 };
    },
    'POST /load_lora_adapter': loadAdapter,
    'POST /v1/load_lora_adapter': loadAdapter,
    'POST /unload_lora_adapter': unloadAdapter,
    'POST /v1/unload_lora_adapter': unloadAdapter,
    'POST /v1/completions': (body) => completions(body, ctx),
    'POST /v1/chat/completions': (body) => chatCompletions(body, ctx),
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
    const t0 = performance.now();
    try {
      const route = routes[key];
      if (!route) throw new HttpError(404, `no route ${key}; see ovr-train serve --help`);
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      send(res, 200, await route(body));
    } catch (e) {
      const status = e instanceof HttpError ? e.status : e instanceof BadRequest ? 400 : 500;
      const message = (e as Error).message;
      send(
        res,
        status,
        message.startsWith('{"success"')
          ? JSON.parse(message)
          : {
              error: { message, type: status < 500 ? 'invalid_request_error' : 'server_error', code: status },
            },
      );
    }
    o.log?.(`${key} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`);
  };
  return { handle, engine };
}

/**
 * Starts the server; resolves once it listens (port 0 = a free port, see `url`).
 * @example const s = await startServer(opts, { port: 0 }); console.log(s.url); await s.close();
 */
export async function startServer(
  o: ServeOptions,
  at: { port: number; host?: string },
): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const { handle } = createHandler(o);
  const server = http.createServer((req, res) => void handle(req, res));
  server.requestTimeout = 0; // long generations
  // Node closes idle keep-alive sockets after 5 s, racing clients that reuse them ('fetch failed'); undici drops
  // its idle sockets after 4 s itself, so let the client be the one to close
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = at.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

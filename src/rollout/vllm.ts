// Rollouts on a vLLM OpenAI-compatible server (or `ovr-train serve`): text-only prompts as token ids on
// /v1/completions, image prompts on /v1/chat/completions with data URLs and our own prompt text; both with
// `logprobs` and `return_token_ids`. Adapters sync through POST /v1/load_lora_adapter (server run with
// VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora), each version under its own name, which later requests
// name as `model`, so no rollout can come from an older adapter. Full-weight sync is not offered over vLLM's
// public API (it needs the dev-mode /sleep + /collective_rpc reload_weights routes; docs/scaling.md): use SGLang
// or adapters.
//
// Log-prob semantics: the server must run with `--logprobs-mode processed_logprobs`. Otherwise vLLM returns the raw
// log-probs (before temperature), which differ from ours whenever temperature != 1; nothing in the reply shows
// which mode ran, so the trainer's mismatch log (|Δlogp|) is where a wrong mode shows up.
import { callJson, normalizeBaseUrl, type RetryOptions, resolveRetry } from './http.js';
import {
  chatBody,
  completionsBody,
  IMAGE_PLACEHOLDER,
  parseChatReply,
  parseCompletionsReply,
} from './openai_wire.js';
import {
  checkResult,
  type RolloutEngine,
  type RolloutRequest,
  type RolloutResult,
  type RolloutSample,
  type RolloutSampling,
  type WeightSync,
} from './types.js';

/** Options of {@link VllmEngine}. */
export interface VllmEngineOptions {
  /** Server base URL, e.g. http://127.0.0.1:8000. */
  url: string;
  /** Served model name (`--served-model-name`); default: the first entry of GET /v1/models. */
  model?: string;
  retry?: RetryOptions;
  /** Token ids -> text with special tokens kept (tok.decode): needed for image prompts only. */
  decode?: (ids: number[]) => string;
  /** Name adapters are loaded under (each version as `<name>-v<version>`). Default 'policy'. */
  loraName?: string;
}

/** Our prompt ids as text with each expanded image (`<|vision_start|><|image_pad|>x k<|vision_end|>`) collapsed. */
export function promptTextForChat(ids: number[], decode: (ids: number[]) => string): string {
  return decode(ids).replace(/<\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|>/g, IMAGE_PLACEHOLDER);
}

/**
 * vLLM HTTP engine.
 * @example
 * const engine = new VllmEngine({ url: 'http://127.0.0.1:8000', decode: (ids) => tok.decode(ids) });
 * const { samples } = await engine.generate([{ promptIds }], { n: 8, maxNewTokens: 512, temperature: 1, seed: 0, eosIds });
 */
export class VllmEngine implements RolloutEngine {
  readonly kind = 'vllm';
  readonly url: string;
  private version = 0;
  private model: string | undefined;
  private lora: string | null = null;
  private readonly retry;

  constructor(private readonly o: VllmEngineOptions) {
    this.url = normalizeBaseUrl(o.url);
    this.retry = resolveRetry(o.retry);
    this.model = o.model;
  }

  get servedVersion(): number {
    return this.version;
  }

  private call(retry = this.retry) {
    return { engine: this.kind, baseUrl: this.url, retry };
  }

  /** The model name requests carry: the current adapter, else the served model. */
  private async modelName(): Promise<string> {
    if (this.lora) return this.lora;
    if (!this.model) {
      const list = await callJson<{ data?: { id?: string }[] }>('/v1/models', undefined, this.call());
      const id = list?.data?.[0]?.id;
      if (!id) throw new Error(`vllm engine at ${this.url}: GET /v1/models lists no model`);
      this.model = id;
    }
    return this.model;
  }

  async generate(requests: RolloutRequest[], s: RolloutSampling): Promise<RolloutResult> {
    if (requests.length === 0) return { samples: [], version: this.version };
    if (s.temperature === 0 && s.n > 1) {
      // vLLM refuses n > 1 with greedy sampling ("n must be 1 when using greedy sampling"): ask once, copy the row
      const one = await this.generate(requests, { ...s, n: 1 });
      const samples = one.samples.flatMap((x) => Array.from({ length: s.n }, () => ({ ...x })));
      return checkResult({ samples, version: one.version }, requests.length, s.n);
    }
    const version = this.version;
    const model = await this.modelName();
    const text = requests.map((r, b) => ({ r, b })).filter(({ r }) => !r.images?.length && !r.pixels);
    const image = requests.map((r, b) => ({ r, b })).filter(({ r }) => r.images?.length || r.pixels);
    const rows: RolloutSample[][] = requests.map(() => []);
    if (text.length > 0) {
      const body = completionsBody(
        text.map((x) => x.r),
        s,
        model,
      );
      const got = await callJson<RolloutSample[]>('/v1/completions', body, {
        ...this.call(),
        parse: (json) => parseCompletionsReply(json, s.n),
      });
      if (got.length !== text.length * s.n)
        throw new Error(
          `vllm engine at ${this.url}: /v1/completions returned ${got.length} choices for ${text.length} prompts x ${s.n}`,
        );
      for (const x of got) rows[text[x.promptIndex].b].push({ ...x, promptIndex: text[x.promptIndex].b });
    }
    for (const { r, b } of image) {
      if (!r.images?.length)
        throw new Error(
          'vllm engine: image prompts need their image files (request.images); vLLM runs its own image processor',
        );
      if (!this.o.decode)
        throw new Error(
          'vllm engine: image prompts need a decode function (tok.decode) to send our prompt text',
        );
      const body = await chatBody(promptTextForChat(r.promptIds, this.o.decode), r, s, model);
      rows[b] = await callJson<RolloutSample[]>('/v1/chat/completions', body, {
        ...this.call(),
        parse: (json) => parseChatReply(json, s.n, b, r.promptIds),
      });
    }
    return checkResult({ samples: rows.flat(), version }, requests.length, s.n);
  }

  async syncWeights(u: WeightSync): Promise<void> {
    if (u.kind === 'full') {
      throw new Error(
        `vllm engine at ${this.url}: full-weight sync is not available over vLLM's public HTTP API; train a LoRA adapter (kind 'adapter') or use rollout.engine 'sglang' (docs/scaling.md)`,
      );
    }
    const name = `${this.o.loraName ?? 'policy'}-v${u.version}`;
    const retry = { ...this.retry, attempts: Math.min(this.retry.attempts, 2) };
    await callJson('/v1/load_lora_adapter', { lora_name: name, lora_path: u.dir }, this.call(retry));
    const old = this.lora;
    this.lora = name;
    this.version = u.version;
    if (old)
      await callJson('/v1/unload_lora_adapter', { lora_name: old }, this.call(retry)).catch(() => undefined);
  }

  async close(): Promise<void> {}
}

// Rollouts on an SGLang server (or `ovr-train serve`): POST /generate with our token ids and the processor's image
// inputs, log-probs of the sampled tokens; full weights via POST /update_weights_from_disk of an HF-layout folder
// (sglang_for_rl.md: "the checkpoint itself is the source of truth"), adapters via POST /load_lora_adapter.
// The reply's `weight_version` is checked against the version we synced: a rollout from older weights is refused.
import { callJson, normalizeBaseUrl, type RetryOptions, resolveRetry } from './http.js';
import { generateBody, parseGenerateReply } from './sglang_wire.js';
import {
  checkResult,
  type RolloutEngine,
  type RolloutRequest,
  type RolloutResult,
  type RolloutSampling,
  type WeightSync,
} from './types.js';

/** Options of {@link SglangEngine}. */
export interface SglangEngineOptions {
  /** Server base URL, e.g. http://127.0.0.1:30000. */
  url: string;
  retry?: RetryOptions;
  /** Name adapters are loaded under (each version as `<name>-v<version>`). Default 'policy'. */
  loraName?: string;
}

/** What an endpoint call needs besides its body. */
const SYNC_RETRY_CAP = 2; // weight loads are not cheap to repeat blindly: at most 2 attempts

/**
 * SGLang HTTP engine.
 * @example
 * const engine = new SglangEngine({ url: 'http://127.0.0.1:30000' });
 * await engine.syncWeights({ dir: 'runs/a/weights-v3', kind: 'full', version: 3 });
 */
export class SglangEngine implements RolloutEngine {
  readonly kind = 'sglang';
  readonly url: string;
  private version = 0;
  private lora: string | null = null;
  private readonly retry;

  constructor(private readonly o: SglangEngineOptions) {
    this.url = normalizeBaseUrl(o.url);
    this.retry = resolveRetry(o.retry);
  }

  get servedVersion(): number {
    return this.version;
  }

  async generate(requests: RolloutRequest[], s: RolloutSampling): Promise<RolloutResult> {
    if (requests.length === 0) return { samples: [], version: this.version };
    const body = generateBody(requests, s);
    if (this.lora) body.lora_path = requests.map(() => this.lora);
    const res = await callJson<RolloutResult>('/generate', body, {
      engine: this.kind,
      baseUrl: this.url,
      retry: this.retry,
      parse: (json) => checkResult(parseGenerateReply(json, requests.length, s.n), requests.length, s.n),
    });
    // an adapter is named per version (lora_path `<name>-v<version>`), so the request itself pins the version; SGLang's
    // weight_version tracks full-weight loads only
    if (this.lora) return { ...res, version: this.version };
    if (res.version !== null && res.version !== this.version) {
      throw new Error(
        `sglang engine at ${this.url}: rollout sampled with weight_version ${res.version}, but version ${this.version} was synced; refusing it (another client reloaded the engine?)`,
      );
    }
    return { ...res, version: res.version ?? this.version };
  }

  async syncWeights(u: WeightSync): Promise<void> {
    const retry = { ...this.retry, attempts: Math.min(this.retry.attempts, SYNC_RETRY_CAP) };
    const call = { engine: this.kind, baseUrl: this.url, retry, parse: checkSuccess };
    if (u.kind === 'full') {
      await callJson(
        '/update_weights_from_disk',
        { model_path: u.dir, weight_version: String(u.version), flush_cache: true },
        call,
      );
    } else {
      const name = `${this.o.loraName ?? 'policy'}-v${u.version}`;
      await callJson('/load_lora_adapter', { lora_name: name, lora_path: u.dir }, call);
      const old = this.lora;
      this.lora = name;
      if (old) await callJson('/unload_lora_adapter', { lora_name: old }, call).catch(() => undefined);
    }
    this.version = u.version;
  }

  async close(): Promise<void> {}
}

/** SGLang answers weight loads with {success, message}; success false is an error with its message. */
function checkSuccess(json: unknown): unknown {
  const j = json as { success?: unknown; message?: unknown } | null;
  if (!j || typeof j !== 'object' || typeof j.success !== 'boolean')
    throw new Error('expected {success, message}');
  if (!j.success) throw new Error(`engine refused: ${String(j.message ?? '(no message)')}`);
  return j;
}

// SGLang's native `/generate` wire format, both directions: the request our client sends (our own `input_ids`, the
// processor's image inputs as `{format: 'processor_output'}`, `return_logprob`) and the reply it reads
// (`output_token_logprobs` = [logprob, token_id, text] per token, `finish_reason.type`, `weight_version`), plus the
// server side `ovr-train serve` uses. Follows sgl-project/sglang docs/basic_usage/native_api.md, sampling_params.md
// and docs/advanced_features/sglang_for_rl.md (/update_weights_from_disk, /load_lora_adapter).
// Batch order with n > 1: reply r continues prompt floor(r / n) (SGLang expands each prompt into n requests in order).
import { z } from 'zod';
import { QWEN_REAL_VOCAB } from '../model/sampling.js';
import type { RolloutRequest, RolloutResult, RolloutSample, RolloutSampling } from './types.js';

const PATCH = 1176;

/** The JSON body of POST /generate for `requests`. */
export function generateBody(requests: RolloutRequest[], s: RolloutSampling): Record<string, unknown> {
  if (s.allowedVocab !== undefined && s.allowedVocab < QWEN_REAL_VOCAB)
    throw new Error(
      `sglang /generate has no allowed-token parameter: sampling.allowedVocab ${s.allowedVocab} cannot be honoured (use the vllm or local engine)`,
    );
  const body: Record<string, unknown> = {
    input_ids: requests.map((r) => r.promptIds),
    sampling_params: {
      n: s.n,
      max_new_tokens: s.maxNewTokens,
      temperature: s.temperature,
      top_p: s.topP ?? 1,
      top_k: s.topK && s.topK > 0 ? s.topK : -1,
      stop: s.stopStrings ?? [],
      stop_token_ids: s.eosIds,
      ignore_eos: true, // exactly eosIds end a row, as in the trainer
      sampling_seed: s.seed,
      repetition_penalty: s.repetitionPenalty ?? 1,
      no_stop_trim: true,
      skip_special_tokens: false,
    },
    return_logprob: true,
    logprob_start_len: -1,
  };
  if (requests.some((r) => r.pixels)) {
    body.image_data = requests.map((r) =>
      r.pixels
        ? [
            {
              format: 'processor_output',
              pixel_values: Array.from({ length: r.pixels.data.length / PATCH }, (_, i) =>
                Array.from(r.pixels?.data.subarray(i * PATCH, (i + 1) * PATCH) ?? []),
              ),
              image_grid_thw: r.pixels.gridThw,
            },
          ]
        : null,
    );
  }
  return body;
}

const ReplyItem = z.object({
  output_ids: z.array(z.number().int()).optional(),
  meta_info: z.object({
    finish_reason: z.object({ type: z.string() }).passthrough(),
    output_token_logprobs: z.array(
      z.tuple([z.number().nullable(), z.number().int(), z.unknown()]).rest(z.unknown()),
    ),
    weight_version: z.union([z.string(), z.number()]).optional(),
  }),
});

/** Parses a /generate reply into samples (rows r = b * n + s); throws naming the first malformed field. */
export function parseGenerateReply(json: unknown, numPrompts: number, n: number): RolloutResult {
  const parsed = (Array.isArray(json) ? z.array(ReplyItem) : ReplyItem).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`/generate reply: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const items = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
  const versions = new Set<string>();
  const samples: RolloutSample[] = items.map((it, r) => {
    const type = it.meta_info.finish_reason.type;
    if (type !== 'stop' && type !== 'length')
      throw new Error(`/generate reply ${r}: finish_reason ${JSON.stringify(it.meta_info.finish_reason)}`);
    const lp = it.meta_info.output_token_logprobs;
    const tokens = lp.map((x) => x[1]);
    if (it.output_ids && it.output_ids.join() !== tokens.join())
      throw new Error(`/generate reply ${r}: output_ids differ from the ids in output_token_logprobs`);
    if (lp.some((x) => x[0] === null)) throw new Error(`/generate reply ${r}: a null log-prob`);
    if (it.meta_info.weight_version !== undefined) versions.add(String(it.meta_info.weight_version));
    return {
      promptIndex: Math.floor(r / n),
      tokens,
      logprobs: lp.map((x) => x[0] as number),
      finishReason: type,
    };
  });
  if (versions.size > 1) throw new Error(`/generate reply mixes weight versions ${[...versions].join(', ')}`);
  const v = versions.size === 1 ? Number([...versions][0]) : null;
  void numPrompts;
  return { samples, version: v !== null && Number.isFinite(v) ? v : null };
}

// ---- server side (`ovr-train serve`) ----

const Ids = z.array(z.number().int().min(0));
const ProcessorOutput = z.object({
  format: z.literal('processor_output'),
  pixel_values: z.array(z.array(z.number()).length(PATCH)),
  image_grid_thw: z.array(z.tuple([z.number().int(), z.number().int(), z.number().int()])),
});
/** POST /generate body as `ovr-train serve` accepts it (token ids only: send `input_ids`, not `text`). */
export const GenerateRequest = z.object({
  input_ids: z.union([Ids.min(1), z.array(Ids.min(1)).min(1)]),
  image_data: z.array(z.union([z.array(ProcessorOutput), ProcessorOutput, z.null()])).optional(),
  sampling_params: z
    .object({
      n: z.number().int().min(1).default(1),
      max_new_tokens: z.number().int().min(1).default(128),
      temperature: z.number().min(0).default(1),
      top_p: z.number().gt(0).max(1).default(1),
      top_k: z.number().int().default(-1),
      stop: z.union([z.string(), z.array(z.string())]).default([]),
      stop_token_ids: z.array(z.number().int()).default([]),
      ignore_eos: z.boolean().default(false),
      sampling_seed: z.number().int().min(0).default(0),
      repetition_penalty: z.number().positive().default(1),
    })
    .passthrough()
    .prefault({}),
  return_logprob: z.boolean().default(false),
  lora_path: z
    .union([z.string(), z.array(z.string().nullable())])
    .nullish()
    .describe('Adapter name per request (SGLang); one adapter per batch here'),
});

/** Turns a parsed /generate body into engine requests + sampling (eos: stop_token_ids, plus `eos` unless ignore_eos). */
export function fromGenerateRequest(
  b: z.output<typeof GenerateRequest>,
  eos: number[],
  allowedVocab: number,
): { requests: RolloutRequest[]; sampling: RolloutSampling } {
  const ids = typeof b.input_ids[0] === 'number' ? [b.input_ids as number[]] : (b.input_ids as number[][]);
  if (b.image_data && b.image_data.length !== ids.length)
    throw new Error(
      `image_data has ${b.image_data.length} entries for ${ids.length} prompts (one per prompt, or null)`,
    );
  const requests = ids.map((promptIds, i): RolloutRequest => {
    const img = b.image_data?.[i];
    const list = img === null || img === undefined ? [] : Array.isArray(img) ? img : [img];
    if (list.length === 0) return { promptIds };
    const rows = list.flatMap((x) => x.pixel_values);
    const data = new Float32Array(rows.length * PATCH);
    for (const [k, row] of rows.entries()) data.set(row, k * PATCH);
    return { promptIds, pixels: { data, gridThw: list.flatMap((x) => x.image_grid_thw) } };
  });
  const p = b.sampling_params;
  const stop = typeof p.stop === 'string' ? [p.stop] : p.stop;
  return {
    requests,
    sampling: {
      n: p.n,
      maxNewTokens: p.max_new_tokens,
      temperature: p.temperature,
      topP: p.top_p,
      topK: Math.max(0, p.top_k),
      seed: p.sampling_seed,
      repetitionPenalty: p.repetition_penalty,
      eosIds: [...new Set([...(p.ignore_eos ? [] : eos), ...p.stop_token_ids])],
      stopStrings: stop.length ? stop : undefined,
      allowedVocab,
    },
  };
}

/** The /generate reply for `res` (a list, one item per row; a single object when one prompt and n = 1). */
export function generateReply(
  res: RolloutResult,
  decode: (ids: number[]) => string,
  promptLens: number[],
  single: boolean,
): unknown {
  const items = res.samples.map((s, r) => ({
    text: decode(s.tokens),
    output_ids: s.tokens,
    meta_info: {
      id: `ovr-${r}`,
      finish_reason:
        s.finishReason === 'stop'
          ? { type: 'stop', matched: s.tokens.at(-1) ?? null }
          : { type: 'length', length: s.tokens.length },
      prompt_tokens: promptLens[s.promptIndex],
      completion_tokens: s.tokens.length,
      output_token_logprobs: s.tokens.map((t, i) => [s.logprobs[i], t, null]),
      weight_version: String(res.version ?? 0),
    },
  }));
  return single && items.length === 1 ? items[0] : items;
}

// `ovr-train serve`'s vLLM/OpenAI-style endpoints: POST /v1/completions (prompt as text or token ids, single or
// batched) and POST /v1/chat/completions (text and image_url data-URL parts, optional request `chat_template`),
// with n, max_tokens, temperature, top_p, top_k, seed, stop, stop_token_ids, ignore_eos, allowed_token_ids (a
// 0..k-1 range), logprobs and return_token_ids. Follows vllm-project/vllm `entrypoints/openai/protocol.py`;
// choice index = prompt * n + sample. Unsupported fields that would change results (echo, best_of, top_logprobs > 0,
// remote image URLs) are refused with a 400 naming them, never silently ignored.
import { z } from 'zod';
import type { ContentPart } from '../data/chat.js';
import { processor } from '../data/processor.js';
import type { QwenTokenizer } from '../data/tokenizer.js';
import { cutAtStop } from '../model/generate.js';
import type { RolloutRequest, RolloutResult, RolloutSampling } from '../rollout/types.js';

/** What the handlers need from the server. */
export interface OpenAiContext {
  tok: QwenTokenizer;
  modelName: string;
  /** Ids that end a row unless ignore_eos. */
  eos: number[];
  /** Default sampling cap (the real tokenizer ids). */
  allowedVocab: number;
  /** Samples with the base model, or with the adapter when `model` names it (vLLM: adapter name = model name). */
  generate(requests: RolloutRequest[], s: RolloutSampling, model?: string): Promise<RolloutResult>;
}

/** A client mistake: answered with HTTP 400 and this message. */
export class BadRequest extends Error {}

const Common = {
  model: z.string().optional(),
  n: z.number().int().min(1).max(64).default(1),
  temperature: z.number().min(0).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  top_k: z.number().int().default(-1),
  seed: z.number().int().min(0).default(0),
  repetition_penalty: z.number().positive().default(1),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  stop_token_ids: z.array(z.number().int().min(0)).default([]),
  ignore_eos: z.boolean().default(false),
  allowed_token_ids: z.array(z.number().int().min(0)).nullish(),
  return_token_ids: z.boolean().default(false),
  skip_special_tokens: z.boolean().default(true),
  include_stop_str_in_output: z.boolean().default(false),
  echo: z.literal(false).optional(),
  best_of: z.literal(1).nullish(),
};

const Completions = z
  .object({
    ...Common,
    prompt: z.union([
      z.string(),
      z.array(z.string()).min(1),
      z.array(z.number().int().min(0)).min(1),
      z.array(z.array(z.number().int().min(0)).min(1)).min(1),
    ]),
    max_tokens: z.number().int().min(1).default(16),
    logprobs: z.number().int().min(0).max(0, 'only logprobs 0 (the sampled token) is supported').nullish(),
  })
  .passthrough();

const Part = z.union([
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('image_url'), image_url: z.object({ url: z.string() }) }),
]);
const Chat = z
  .object({
    ...Common,
    messages: z.array(z.object({ role: z.string(), content: z.union([z.string(), z.array(Part)]) })).min(1),
    max_tokens: z.number().int().min(1).optional(),
    max_completion_tokens: z.number().int().min(1).optional(),
    logprobs: z.boolean().default(false),
    top_logprobs: z.number().int().max(0, 'top_logprobs > 0 is not supported').nullish(),
    chat_template: z.string().optional(),
    add_generation_prompt: z.boolean().default(true),
  })
  .passthrough();

function parse<S extends z.ZodType>(schema: S, body: unknown, where: string): z.output<S> {
  const p = schema.safeParse(body);
  if (!p.success) {
    const i = p.error.issues[0];
    throw new BadRequest(`${where}: ${i.path.join('.') || 'body'}: ${i.message}`);
  }
  return p.data;
}

/** Sampling of a request; allowed_token_ids must be the range 0..k-1 (a vocabulary cap). */
function sampling(
  b: z.output<z.ZodObject<typeof Common>>,
  maxNewTokens: number,
  c: OpenAiContext,
): RolloutSampling {
  let allowedVocab = c.allowedVocab;
  if (b.allowed_token_ids) {
    const k = b.allowed_token_ids.length;
    if (b.allowed_token_ids.some((t, i) => t !== i))
      throw new BadRequest('allowed_token_ids: only a range 0..k-1 (a vocabulary cap) is supported');
    allowedVocab = Math.min(allowedVocab, k);
  }
  const stop = b.stop === null || b.stop === undefined ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return {
    n: b.n,
    maxNewTokens,
    temperature: b.temperature,
    topP: b.top_p,
    topK: Math.max(0, b.top_k),
    seed: b.seed,
    repetitionPenalty: b.repetition_penalty,
    eosIds: [...new Set([...(b.ignore_eos ? [] : c.eos), ...b.stop_token_ids])],
    stopStrings: stop.length ? stop : undefined,
    allowedVocab,
  };
}

/** Completion text as an OpenAI server shows it: stop string kept or cut, special tokens skipped or kept. */
function textOf(
  ids: number[],
  b: z.output<z.ZodObject<typeof Common>>,
  s: RolloutSampling,
  tok: QwenTokenizer,
): string {
  const text = tok.decode(ids, { skipSpecialTokens: b.skip_special_tokens });
  if (!s.stopStrings) return text;
  const cut = cutAtStop(text, s.stopStrings);
  if (b.include_stop_str_in_output || cut === text) return cut;
  const hit = s.stopStrings.find((x) => cut.endsWith(x)) ?? '';
  return cut.slice(0, cut.length - hit.length);
}

const usage = (promptLens: number[], res: RolloutResult) => {
  const p = promptLens.reduce((a, x) => a + x, 0);
  const c = res.samples.reduce((a, s) => a + s.tokens.length, 0);
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
};

/** POST /v1/completions. */
export async function completions(body: unknown, c: OpenAiContext): Promise<unknown> {
  const b = parse(Completions, body, '/v1/completions');
  const p = b.prompt;
  const prompts: number[][] =
    typeof p === 'string'
      ? [c.tok.encode(p, { addSpecialTokens: false })]
      : typeof p[0] === 'string'
        ? (p as string[]).map((x) => c.tok.encode(x, { addSpecialTokens: false }))
        : typeof p[0] === 'number'
          ? [p as number[]]
          : (p as number[][]);
  if (prompts.some((x) => x.length === 0)) throw new BadRequest('/v1/completions: an empty prompt');
  const s = sampling(b, b.max_tokens, c);
  const res = await c.generate(
    prompts.map((promptIds) => ({ promptIds })),
    s,
    b.model,
  );
  const choices = res.samples.map((smp, i) => {
    const choice: Record<string, unknown> = {
      index: i,
      text: textOf(smp.tokens, b, s, c.tok),
      finish_reason: smp.finishReason,
      logprobs:
        b.logprobs === null || b.logprobs === undefined
          ? null
          : {
              tokens: smp.tokens.map((t) => c.tok.decode([t])),
              token_logprobs: smp.logprobs,
              top_logprobs: null,
              text_offset: null,
            },
    };
    if (b.return_token_ids) {
      choice.token_ids = smp.tokens;
      choice.prompt_token_ids = prompts[smp.promptIndex];
    }
    return choice;
  });
  return {
    id: `cmpl-ovr-${Date.now()}`,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: b.model ?? c.modelName,
    choices,
    usage: usage(
      prompts.map((x) => x.length),
      res,
    ),
  };
}

/** A data URL's bytes; other URLs are refused (the server does not fetch). */
function dataUrlBytes(url: string): Uint8Array {
  const m = /^data:[^;,]*(;base64)?,(.*)$/s.exec(url);
  if (!m) throw new BadRequest(`image_url: only data: URLs are accepted (got '${url.slice(0, 40)}...')`);
  return m[1] ? Buffer.from(m[2], 'base64') : Buffer.from(decodeURIComponent(m[2]), 'utf8');
}

/** POST /v1/chat/completions. */
export async function chatCompletions(body: unknown, c: OpenAiContext): Promise<unknown> {
  const b = parse(Chat, body, '/v1/chat/completions');
  const messages = b.messages.map((m) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map(
            (part): ContentPart =>
              part.type === 'text'
                ? { type: 'text', text: part.text }
                : { type: 'image', image: dataUrlBytes(part.image_url.url) },
          ),
  }));
  const enc = await processor([messages], {
    tokenizer: c.tok,
    addGenerationPrompt: b.add_generation_prompt,
    template: b.chat_template,
  }).catch((e: Error) => {
    throw new BadRequest(`/v1/chat/completions: messages: ${e.message}`);
  });
  const promptIds = enc.inputIds[0];
  const req: RolloutRequest = { promptIds };
  if (enc.pixelValues) req.pixels = { data: enc.pixelValues, gridThw: enc.imageGridThw ?? [] };
  const s = sampling(b, b.max_completion_tokens ?? b.max_tokens ?? 256, c);
  const res = await c.generate([req], s, b.model);
  const choices = res.samples.map((smp, i) => {
    const choice: Record<string, unknown> = {
      index: i,
      message: { role: 'assistant', content: textOf(smp.tokens, b, s, c.tok) },
      finish_reason: smp.finishReason,
      logprobs: b.logprobs
        ? {
            content: smp.tokens.map((t, k) => {
              const token = c.tok.decode([t]);
              return {
                token,
                logprob: smp.logprobs[k],
                bytes: [...Buffer.from(token, 'utf8')],
                top_logprobs: [],
              };
            }),
          }
        : null,
    };
    if (b.return_token_ids) choice.token_ids = smp.tokens;
    return choice;
  });
  const reply: Record<string, unknown> = {
    id: `chatcmpl-ovr-${Date.now()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: b.model ?? c.modelName,
    choices,
    usage: usage([promptIds.length], res),
  };
  if (b.return_token_ids) reply.prompt_token_ids = promptIds;
  return reply;
}

// vLLM's OpenAI-compatible wire format, both directions: `/v1/completions` with token-id prompts (text-only
// requests, so the engine never re-tokenises) and `/v1/chat/completions` with images as data URLs (image
// requests), both with `logprobs` and `return_token_ids` (vLLM PR #22587) so completions come back as ids; plus the
// server side of `ovr-train serve`. Follows vllm-project/vllm `entrypoints/openai/protocol.py` (CompletionRequest,
// ChatCompletionRequest and their extra sampling params: top_k, seed, stop_token_ids, ignore_eos, allowed_token_ids,
// skip_special_tokens, include_stop_str_in_output) and the choice order `index = prompt * n + sample`.
//
// Image prompts keep OUR prompt text: the rendered prompt is split at each `<|vision_start|><|image_pad|><|vision_end|>`
// into text and image_url parts of one user message, and sent with VERBATIM_TEMPLATE as `chat_template`, which
// re-emits the parts unchanged (vLLM needs `--trust-request-chat-template` for a request template). The reply's
// `prompt_token_ids` must then equal ours; a difference is reported, never trained on.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { RolloutFinish, RolloutRequest, RolloutSample, RolloutSampling } from './types.js';

/** Qwen2.5-VL image placeholder as rendered by the chat template (before pad expansion). */
export const IMAGE_PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';

/** A chat template that renders the first message's parts verbatim (text as is, each image as its placeholder). */
export const VERBATIM_TEMPLATE =
  "{% for part in messages[0]['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}" +
  `{% else %}${IMAGE_PLACEHOLDER}{% endif %}{% endfor %}`;

const MIME: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
};

/** An image file or bytes as a base64 data URL. */
export async function imageDataUrl(img: string | Uint8Array): Promise<string> {
  const bytes = typeof img === 'string' ? await readFile(img) : img;
  const mime = typeof img === 'string' ? (MIME[path.extname(img).toLowerCase()] ?? 'image/png') : 'image/png';
  return `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
}

/** Sampling fields common to both endpoints (vLLM names; exactly `eosIds` end a row). */
export function samplingFields(s: RolloutSampling, model: string): Record<string, unknown> {
  const f: Record<string, unknown> = {
    model,
    n: s.n,
    max_tokens: s.maxNewTokens,
    temperature: s.temperature,
    top_p: s.topP ?? 1,
    top_k: s.topK && s.topK > 0 ? s.topK : -1,
    seed: s.seed,
    repetition_penalty: s.repetitionPenalty ?? 1,
    stop: s.stopStrings ?? [],
    stop_token_ids: s.eosIds,
    ignore_eos: true,
    skip_special_tokens: false,
    include_stop_str_in_output: true,
    return_token_ids: true,
  };
  if (s.allowedVocab !== undefined) f.allowed_token_ids = Array.from({ length: s.allowedVocab }, (_, i) => i);
  return f;
}

/** Body of POST /v1/completions for text-only requests (prompts as token-id lists). */
export const completionsBody = (reqs: RolloutRequest[], s: RolloutSampling, model: string) => ({
  ...samplingFields(s, model),
  prompt: reqs.map((r) => r.promptIds),
  logprobs: 0,
});

/** Body of POST /v1/chat/completions for one image request whose rendered prompt text is `promptText`. */
export async function chatBody(promptText: string, req: RolloutRequest, s: RolloutSampling, model: string) {
  const pieces = promptText.split(IMAGE_PLACEHOLDER);
  const images = req.images ?? [];
  if (pieces.length - 1 !== images.length)
    throw new Error(`prompt has ${pieces.length - 1} image placeholder(s) but ${images.length} image(s)`);
  const content: unknown[] = [];
  for (let i = 0; i < pieces.length; i++) {
    if (pieces[i]) content.push({ type: 'text', text: pieces[i] });
    if (i < images.length)
      content.push({ type: 'image_url', image_url: { url: await imageDataUrl(images[i]) } });
  }
  return {
    ...samplingFields(s, model),
    messages: [{ role: 'user', content }],
    chat_template: VERBATIM_TEMPLATE,
    add_generation_prompt: false,
    logprobs: true,
    top_logprobs: 0,
  };
}

const Finish = z.enum(['stop', 'length']);
const CompletionChoice = z.object({
  index: z.number().int(),
  finish_reason: Finish,
  token_ids: z.array(z.number().int()),
  logprobs: z.object({ token_logprobs: z.array(z.number()) }),
});
const ChatChoice = z.object({
  index: z.number().int(),
  finish_reason: Finish,
  token_ids: z.array(z.number().int()),
  logprobs: z.object({ content: z.array(z.object({ logprob: z.number() })) }),
});

function issueText(e: z.ZodError, where: string): string {
  const i = e.issues[0];
  return `${where}: ${i.path.join('.') || '(root)'}: ${i.message}`;
}

function toSamples(
  rows: { index: number; finish_reason: RolloutFinish; token_ids: number[]; lps: number[] }[],
  n: number,
  offset: number,
): RolloutSample[] {
  const sorted = [...rows].sort((a, b) => a.index - b.index);
  return sorted.map((c, r) => {
    if (c.index !== r) throw new Error(`choices: index ${c.index} missing or repeated`);
    if (c.lps.length !== c.token_ids.length)
      throw new Error(
        `choice ${r}: ${c.token_ids.length} token_ids but ${c.lps.length} log-probs (is return_token_ids supported?)`,
      );
    return {
      promptIndex: offset + Math.floor(r / n),
      tokens: c.token_ids,
      logprobs: c.lps,
      finishReason: c.finish_reason,
    };
  });
}

/** Parses a /v1/completions reply (choice index = prompt * n + sample). */
export function parseCompletionsReply(json: unknown, n: number): RolloutSample[] {
  const p = z.object({ choices: z.array(CompletionChoice) }).safeParse(json);
  if (!p.success) throw new Error(issueText(p.error, '/v1/completions reply'));
  return toSamples(
    p.data.choices.map((c) => ({ ...c, lps: c.logprobs.token_logprobs })),
    n,
    0,
  );
}

/** Parses a /v1/chat/completions reply for prompt `promptIndex`; checks `prompt_token_ids` against ours when given. */
export function parseChatReply(
  json: unknown,
  n: number,
  promptIndex: number,
  promptIds: number[],
): RolloutSample[] {
  const p = z
    .object({ choices: z.array(ChatChoice), prompt_token_ids: z.array(z.number().int()).nullish() })
    .safeParse(json);
  if (!p.success) throw new Error(issueText(p.error, '/v1/chat/completions reply'));
  const got = p.data.prompt_token_ids;
  if (got && got.join() !== promptIds.join()) {
    const at = got.findIndex((t, i) => t !== promptIds[i]);
    throw new Error(
      `the engine's prompt ids differ from ours at position ${at < 0 ? Math.min(got.length, promptIds.length) : at} ` +
        `(${got.length} vs ${promptIds.length} ids): image preprocessing or tokenisation drift; refusing the rollout`,
    );
  }
  return toSamples(
    p.data.choices.map((c) => ({ ...c, lps: c.logprobs.content.map((x) => x.logprob) })),
    n,
    promptIndex,
  );
}

// Qwen2.5-VL chat template (processor `chat_template.json`, spec §7) rendered with `@huggingface/jinja`,
// image-placeholder expansion (HF `Qwen2_5_VLProcessor`: one `<|image_pad|>` → t·h·w/4 copies) and the
// SFT label mask (loss on each assistant reply plus its closing `<|im_end|>`).
//
// The mask is computed from character spans of the rendered text (each assistant reply's span is found by
// rendering the conversation prefix, which this template extends without changing) mapped to token byte
// offsets from one tokenisation of the whole text; nothing is re-tokenised piecewise.
import { Template } from '@huggingface/jinja';
import { IGNORE_INDEX } from '../model/loss.js';
import type { ImageInput } from './image.js';
import type { QwenTokenizer } from './tokenizer.js';

export type ContentPart =
  /**
   * `train: false` on a text part of an assistant reply makes it context, not target: it stays in the input but carries
   * no loss (e.g. a given opening of the reply that the model should continue from but not learn to produce).
   */
  | { type: 'text'; text: string; train?: boolean }
  /** `image` may be omitted when the image is passed separately (processor `images` option). */
  | { type: 'image'; image?: ImageInput };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string | ContentPart[];
}

/**
 * The Qwen2-VL / Qwen2.5-VL processor chat template, written from spec §7: default system prompt when the
 * first message is not `system`; `<|im_start|>{role}\n` + content + `<|im_end|>\n` per message; image parts
 * become `<|vision_start|><|image_pad|><|vision_end|>` (optionally prefixed `Picture k: `), video parts the
 * same with `<|video_pad|>`; `add_generation_prompt` appends `<|im_start|>assistant\n`.
 */
export const QWEN2_5_VL_CHAT_TEMPLATE = [
  '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}',
  '{% for message in messages %}',
  "{% if loop.first and message['role'] != 'system' %}",
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n',
  '{% endif %}',
  "<|im_start|>{{ message['role'] }}\n",
  "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n",
  "{% else %}{% for part in message['content'] %}",
  "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}",
  '{% set image_count.value = image_count.value + 1 %}',
  '{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}',
  '<|vision_start|><|image_pad|><|vision_end|>',
  "{% elif part['type'] == 'video' or 'video' in part %}",
  '{% set video_count.value = video_count.value + 1 %}',
  '{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}',
  '<|vision_start|><|video_pad|><|vision_end|>',
  "{% elif 'text' in part %}{{ part['text'] }}{% endif %}",
  '{% endfor %}<|im_end|>\n',
  '{% endif %}',
  '{% endfor %}',
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
].join('');

export interface RenderOptions {
  /** Append `<|im_start|>assistant\n` so the model writes the next reply. */
  addGenerationPrompt?: boolean;
  /** Prefix each image with `Picture k: `. */
  addVisionId?: boolean;
  /** Jinja chat template; default {@link QWEN2_5_VL_CHAT_TEMPLATE}. */
  template?: string;
}

const compiled = new Map<string, Template>();

function templateFor(src: string): Template {
  let t = compiled.get(src);
  if (!t) {
    t = new Template(src);
    compiled.set(src, t);
  }
  return t;
}

/** Check the message shape and strip image payloads (the template only needs to know a part is an image). */
function plainMessages(messages: readonly ChatMessage[]): object[] {
  return messages.map((m, i) => {
    if (!m || typeof m.role !== 'string') throw new Error(`message ${i} has no string 'role'`);
    if (typeof m.content === 'string') return { role: m.role, content: m.content };
    if (!Array.isArray(m.content)) {
      throw new Error(
        `message ${i} (${m.role}): content must be a string or a list of {type:'text'|'image'} parts`,
      );
    }
    return {
      role: m.role,
      content: m.content.map((p, j) => {
        if (p.type === 'image') return { type: 'image' };
        if (p.type === 'text' && typeof p.text === 'string') return { type: 'text', text: p.text };
        throw new Error(`message ${i} (${m.role}) part ${j}: expected {type:'text', text} or {type:'image'}`);
      }),
    };
  });
}

/**
 * Render a conversation to text with the chat template (image placeholders not yet expanded).
 * @example renderChat([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })
 * // '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
 */
export function renderChat(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
  return templateFor(opts.template ?? QWEN2_5_VL_CHAT_TEMPLATE).render({
    messages: plainMessages(messages),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    add_vision_id: opts.addVisionId ?? false,
  });
}

/** Rendered text plus the character spans [start, end) that carry loss. */
export interface RenderedChat {
  text: string;
  trainSpans: [number, number][];
}

/**
 * Train spans of one assistant reply rendered at `start` as `rendered` (+ `<|im_end|>`): the whole reply, minus its
 * `train: false` text parts. Such parts need a reply made of text parts only, rendered verbatim one after another.
 */
function replySpans(m: ChatMessage, i: number, start: number, rendered: string): [number, number][] {
  const end = start + rendered.length + '<|im_end|>'.length;
  const parts = typeof m.content === 'string' ? [] : m.content;
  if (!parts.some((p) => p.type === 'text' && p.train === false)) return [[start, end]];
  const texts = parts.map((p) => (p.type === 'text' ? p.text : null));
  if (texts.some((t) => t === null) || texts.join('') !== rendered) {
    throw new Error(
      `assistant message ${i}: parts with train: false need a reply of text parts only, which the template renders ` +
        'verbatim; drop the image parts from this reply or mark none of its parts train: false',
    );
  }
  // One span per trained non-empty part, then `<|im_end|>`; tokenizeWithLabels labels a token overlapping any span.
  const spans: [number, number][] = [];
  let at = start;
  for (const p of parts as { text: string; train?: boolean }[]) {
    if (p.train !== false && p.text) spans.push([at, at + p.text.length]);
    at += p.text.length;
  }
  spans.push([at, end]);
  return spans;
}

/**
 * Render a conversation and locate every assistant reply: span = reply content + `<|im_end|>` (the
 * following newline is not trained), minus the reply's text parts marked `train: false`. Throws if the template
 * does not render prefixes as prefixes.
 * @example renderChatWithSpans(msgs).trainSpans // [[start, end]] of 'Paris.<|im_end|>'
 */
export function renderChatWithSpans(
  messages: readonly ChatMessage[],
  opts: RenderOptions = {},
): RenderedChat {
  const text = renderChat(messages, opts);
  const trainSpans: [number, number][] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = renderChat(messages.slice(0, i), { ...opts, addGenerationPrompt: true });
    const through = renderChat(messages.slice(0, i + 1), { ...opts, addGenerationPrompt: false });
    const close = '<|im_end|>\n';
    if (!text.startsWith(before) || !text.startsWith(through) || !through.endsWith(close)) {
      throw new Error(
        `cannot locate assistant message ${i} in the rendered chat: the template must render each conversation ` +
          'prefix (plus the generation prompt) as a prefix of the whole text. Start conversations with a system or user message.',
      );
    }
    trainSpans.push(...replySpans(m, i, before.length, through.slice(before.length, -close.length)));
  });
  return { text, trainSpans };
}

/** UTF-8 byte offset of character offset `at` in `text` after NFC normalisation (the tokenizer's input). */
function nfcByteOffset(text: string, at: number): number {
  return Buffer.byteLength(text.slice(0, at).normalize('NFC'), 'utf8');
}

/**
 * Tokenise a rendered chat and label the tokens that overlap a train span with their id; others get -100.
 * @example tokenizeWithLabels(tok, renderChatWithSpans(msgs)) // { ids, labels }
 */
export function tokenizeWithLabels(
  tok: QwenTokenizer,
  rendered: RenderedChat,
): { ids: number[]; labels: number[] } {
  const { ids, byteEnds } = tok.encodeWithOffsets(rendered.text);
  const spans = rendered.trainSpans.map(([s, e]) => [
    nfcByteOffset(rendered.text, s),
    nfcByteOffset(rendered.text, e),
  ]);
  const labels = ids.map((id, j) => {
    const start = j === 0 ? 0 : byteEnds[j - 1];
    const end = byteEnds[j];
    return spans.some(([s, e]) => start < e && end > s) ? id : IGNORE_INDEX;
  });
  return { ids, labels };
}

/**
 * Replace the k-th `<|image_pad|>` id by `counts[k]` copies (t·h·w/4 per image), labels -100 there.
 * Throws if the number of placeholders differs from the number of images.
 * @example expandImagePads([1, 151655, 2], null, [3], 151655).ids // [1, 151655, 151655, 151655, 2]
 */
export function expandImagePads(
  ids: readonly number[],
  labels: readonly number[] | null,
  counts: readonly number[],
  imagePad: number,
): { ids: number[]; labels: number[] | null } {
  const nPlaceholders = ids.filter((id) => id === imagePad).length;
  if (nPlaceholders !== counts.length) {
    throw new Error(
      `text has ${nPlaceholders} image placeholder(s) but ${counts.length} image(s) were given: ` +
        'add one {type:"image"} part per image (or pass exactly as many images as placeholders)',
    );
  }
  const outIds: number[] = [];
  const outLabels: number[] | null = labels ? [] : null;
  let k = 0;
  ids.forEach((id, j) => {
    const n = id === imagePad ? counts[k++] : 1;
    for (let r = 0; r < n; r++) {
      outIds.push(id);
      outLabels?.push(id === imagePad ? IGNORE_INDEX : (labels as readonly number[])[j]);
    }
  });
  return { ids: outIds, labels: outLabels };
}

/** Images carried inline by the messages, in order of appearance (`undefined` where a part has none). */
export function inlineImages(messages: readonly ChatMessage[]): (ImageInput | undefined)[] {
  const out: (ImageInput | undefined)[] = [];
  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const p of m.content) if (p.type === 'image') out.push(p.image);
  }
  return out;
}

// Named prompt templates for RL/eval prompts: `orz` (Open-Reasoner-Zero) and `qwen` (Qwen chat + CoT).
// `orz` text follows Open-Reasoner-Zero `playground/zero_setting_base.py` (prompt_template_jinja +
// prompt_instruction_template_jinja, as rendered by Python jinja2: bos_token is empty for Qwen, the
// instruction's trailing newline is dropped; the source's Python literal `"\\\\boxed{}"` renders as `\\boxed{}`).
import { renderChat } from './chat.js';

/** Names accepted by {@link buildPrompt}. */
export const PROMPT_TEMPLATES = ['orz', 'qwen'] as const;
export type PromptTemplateName = (typeof PROMPT_TEMPLATES)[number];

/** One image placeholder as the chat template writes it; the processor expands the pad. */
export const IMAGE_PLACEHOLDER = '<|vision_start|><|image_pad|><|vision_end|>';

/** ORZ system-style preamble (no chat markers: ORZ prompts the model as plain text). */
export const ORZ_PREAMBLE =
  'A conversation between User and Assistant. The User asks a question, and the Assistant solves it. ' +
  'The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. ' +
  'The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, ' +
  'respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.';

/** ORZ instruction wrapped around the question. */
export const ORZ_INSTRUCTION =
  'You must put your answer inside <answer> </answer> tags, i.e., <answer> answer here </answer>. ' +
  'And your final answer will be extracted automatically by the \\boxed{} tag.\nThis is the problem:\n';

/** Qwen2.5-Math chain-of-thought suffix used by the `qwen` template. */
export const QWEN_COT_SUFFIX = '\nPlease reason step by step, and put your final answer within \\boxed{}.';

export interface PromptOptions {
  /** Number of images shown with the question (placeholders go before the question text). */
  numImages?: number;
}

/**
 * Build a generation prompt (text with unexpanded image placeholders) for a question.
 * - `orz`: `{preamble} User: {images}{instruction}{question}\nAssistant: <think>` (plain text, no chat markers).
 * - `qwen`: Qwen2.5-VL chat with the default system prompt, user = images + question + CoT suffix, then
 *   the assistant generation prompt.
 * @example buildPrompt('orz', 'What is 1+1?').endsWith('What is 1+1?\nAssistant: <think>') // true
 */
export function buildPrompt(name: PromptTemplateName, question: string, opts: PromptOptions = {}): string {
  const n = opts.numImages ?? 0;
  if (!(Number.isInteger(n) && n >= 0))
    throw new Error(`buildPrompt: numImages (${n}) must be an integer >= 0`);
  if (name === 'orz') {
    return `${ORZ_PREAMBLE} User: ${IMAGE_PLACEHOLDER.repeat(n)}${ORZ_INSTRUCTION}${question}\nAssistant: <think>`;
  }
  if (name === 'qwen') {
    const images = Array.from({ length: n }, () => ({ type: 'image' as const }));
    const content = [...images, { type: 'text' as const, text: question + QWEN_COT_SUFFIX }];
    return renderChat([{ role: 'user', content }], { addGenerationPrompt: true });
  }
  throw new Error(`unknown prompt template '${name}': use one of ${PROMPT_TEMPLATES.join(', ')}`);
}

// Wire formats and retry math on literal data: SGLang /generate and vLLM /v1/completions + chat replies as the servers'
// docs show them (hand-written literals), what each parser rejects, the backoff schedule and checkResult.
import { describe, expect, it } from 'vitest';
import { renderChat } from '../../src/data/chat.js';
import { backoffDelay, normalizeBaseUrl, resolveRetry } from '../../src/rollout/http.js';
import { parseChatReply, parseCompletionsReply, VERBATIM_TEMPLATE } from '../../src/rollout/openai_wire.js';
import { generateBody, parseGenerateReply } from '../../src/rollout/sglang_wire.js';
import { checkResult } from '../../src/rollout/types.js';
import { promptTextForChat } from '../../src/rollout/vllm.js';

const sg = (ids: number[], lps: number[], type: string, version = '3') => ({
  text: 'x',
  meta_info: {
    id: 'a',
    finish_reason: type === 'stop' ? { type, matched: 151645 } : { type, length: ids.length },
    prompt_tokens: 5,
    completion_tokens: ids.length,
    output_token_logprobs: ids.map((t, i) => [lps[i], t, null]),
    weight_version: version,
  },
});

describe('SGLang /generate wire', () => {
  it('reads ids, log-probs, finish reasons and the weight version; rows r = b * n + s', () => {
    const res = parseGenerateReply(
      [sg([5, 151645], [-0.5, -0.1], 'stop'), sg([6], [-1.25], 'length'), sg([7], [-2], 'length')].slice(
        0,
        2,
      ),
      1,
      2,
    );
    expect(res).toEqual({
      version: 3,
      samples: [
        { promptIndex: 0, tokens: [5, 151645], logprobs: [-0.5, -0.1], finishReason: 'stop' },
        { promptIndex: 0, tokens: [6], logprobs: [-1.25], finishReason: 'length' },
      ],
    });
    expect(parseGenerateReply(sg([1], [-1], 'stop'), 1, 1).samples).toHaveLength(1); // a single object for one prompt
  });
  it('refuses aborts, mixed versions, null log-probs and ids that disagree with output_ids', () => {
    expect(() => parseGenerateReply([sg([1], [-1], 'abort')], 1, 1)).toThrow(
      /finish_reason \{"type":"abort"/,
    );
    expect(() => parseGenerateReply([sg([1], [-1], 'stop', '1'), sg([1], [-1], 'stop', '2')], 1, 2)).toThrow(
      /mixes weight versions 1, 2/,
    );
    expect(() => parseGenerateReply([sg([1], [null as unknown as number], 'stop')], 1, 1)).toThrow(
      /null log-prob/,
    );
    expect(() => parseGenerateReply([{ ...sg([1], [-1], 'stop'), output_ids: [2] }], 1, 1)).toThrow(
      /output_ids differ/,
    );
  });
  it('request: our ids, n, exactly our EOS set, the seed, processor_output images', () => {
    const body = generateBody(
      [
        { promptIds: [1, 2], pixels: { data: new Float32Array(1176 * 2).fill(0.5), gridThw: [[1, 1, 2]] } },
        { promptIds: [3] },
      ],
      {
        n: 4,
        maxNewTokens: 9,
        temperature: 0.7,
        seed: 11,
        eosIds: [7],
      },
    ) as {
      input_ids: number[][];
      sampling_params: Record<string, unknown>;
      image_data: unknown[];
      return_logprob: boolean;
    };
    expect(body.input_ids).toEqual([[1, 2], [3]]);
    expect(body.sampling_params).toMatchObject({
      n: 4,
      max_new_tokens: 9,
      temperature: 0.7,
      stop_token_ids: [7],
      ignore_eos: true,
      sampling_seed: 11,
      top_k: -1,
    });
    expect(body.return_logprob).toBe(true);
    const img = (body.image_data[0] as { pixel_values: number[][]; image_grid_thw: number[][] }[])[0];
    expect(img.pixel_values).toHaveLength(2);
    expect(img.pixel_values[0]).toHaveLength(1176);
    expect(img.image_grid_thw).toEqual([[1, 1, 2]]);
    expect(body.image_data[1]).toBeNull();
  });
});

describe('vLLM OpenAI wire', () => {
  const choice = (index: number, ids: number[], lps: number[]) => ({
    index,
    text: 'x',
    finish_reason: 'length',
    token_ids: ids,
    logprobs: { tokens: ids.map(String), token_logprobs: lps, top_logprobs: null, text_offset: [] },
  });
  it('completions: choices sorted by index, prompt = index / n', () => {
    const s = parseCompletionsReply(
      { choices: [choice(1, [4], [-1]), choice(0, [3], [-2]), choice(2, [5], [-3]), choice(3, [6], [-4])] },
      2,
    );
    expect(s.map((x) => [x.promptIndex, x.tokens[0]])).toEqual([
      [0, 3],
      [0, 4],
      [1, 5],
      [1, 6],
    ]);
  });
  it('completions: a missing token_ids (server without return_token_ids) or a gap in indices is refused', () => {
    expect(() =>
      parseCompletionsReply({ choices: [{ ...choice(0, [3], [-2]), token_ids: undefined }] }, 1),
    ).toThrow(/choices\.0\.token_ids/);
    expect(() => parseCompletionsReply({ choices: [choice(1, [3], [-2])] }, 1)).toThrow(
      /index 1 missing or repeated/,
    );
    expect(() => parseCompletionsReply({ choices: [choice(0, [3, 4], [-2])] }, 1)).toThrow(
      /2 token_ids but 1 log-probs/,
    );
  });
  it('chat: prompt_token_ids that differ from ours are refused (tokenisation drift)', () => {
    const reply = {
      prompt_token_ids: [1, 2, 9],
      choices: [
        {
          index: 0,
          finish_reason: 'stop',
          token_ids: [5],
          logprobs: { content: [{ token: 'a', logprob: -0.3 }] },
          message: { content: 'a' },
        },
      ],
    };
    expect(parseChatReply({ ...reply, prompt_token_ids: [1, 2, 3] }, 1, 4, [1, 2, 3])[0]).toEqual({
      promptIndex: 4,
      tokens: [5],
      logprobs: [-0.3],
      finishReason: 'stop',
    });
    expect(() => parseChatReply(reply, 1, 0, [1, 2, 3])).toThrow(
      /differ from ours at position 2 \(3 vs 3 ids\)/,
    );
  });
  it('the verbatim template re-renders our prompt text exactly', () => {
    const text = 'a<|vision_start|><|image_pad|><|vision_end|>b';
    const out = renderChat(
      [
        {
          role: 'user',
          content: [{ type: 'text', text: 'a' }, { type: 'image' }, { type: 'text', text: 'b' }],
        },
      ],
      { template: VERBATIM_TEMPLATE },
    );
    expect(out).toBe(text);
    const decode = (ids: number[]) =>
      ids
        .map((i) => ({ 1: 'a', 2: '<|vision_start|>', 3: '<|image_pad|>', 4: '<|vision_end|>', 5: 'b' })[i])
        .join('');
    expect(promptTextForChat([1, 2, 3, 3, 3, 4, 5], decode)).toBe(text);
  });
});

describe('retry policy and result checks', () => {
  it('backoff doubles from backoffMs and is capped', () => {
    const o = resolveRetry({ backoffMs: 100, maxBackoffMs: 350 });
    expect([0, 1, 2, 3, 4].map((i) => backoffDelay(i, o))).toEqual([0, 100, 200, 350, 350]);
    expect(() => resolveRetry({ attempts: 0 })).toThrow(/attempts must be an integer >= 1/);
    expect(() => normalizeBaseUrl('ftp://x')).toThrow(/must start with http/);
    expect(normalizeBaseUrl('http://127.0.0.1:3/')).toBe('http://127.0.0.1:3');
  });
  it('checkResult: row count, order, one log-prob per token, log-probs <= 0', () => {
    const ok = { promptIndex: 0, tokens: [1], logprobs: [-1], finishReason: 'stop' as const };
    expect(() => checkResult({ samples: [ok], version: 0 }, 1, 2)).toThrow(/1 samples for 1 prompts x 2/);
    expect(() => checkResult({ samples: [ok, { ...ok, promptIndex: 1 }], version: 0 }, 1, 2)).toThrow(
      /continues prompt 1, expected 0/,
    );
    expect(() => checkResult({ samples: [{ ...ok, logprobs: [0.5] }], version: 0 }, 1, 1)).toThrow(
      /log-prob 0.5 is not/,
    );
    expect(() => checkResult({ samples: [{ ...ok, logprobs: [Number.NaN] }], version: 0 }, 1, 1)).toThrow(
      /log-prob NaN/,
    );
  });
});

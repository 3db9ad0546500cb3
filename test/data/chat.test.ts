// Chat template (vs the processor chat_template.json), assistant label mask on literal examples,
// image placeholder expansion and the named prompt templates.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ChatMessage,
  expandImagePads,
  inlineImages,
  renderChat,
  renderChatWithSpans,
  tokenizeWithLabels,
} from '../../src/data/chat.js';
import { buildPrompt } from '../../src/data/templates.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { IGNORE_INDEX } from '../../src/model/loss.js';
import { shared } from '../helpers.js';

const HF_TEMPLATE: string = JSON.parse(
  readFileSync(shared('data', 'tokenizer', 'qwen2.5', 'chat_template.json'), 'utf8'),
).chat_template;

const SYS_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198];
const USER_2PLUS2 = [151644, 872, 198, 3838, 374, 220, 17, 5519, 220, 17, 30, 151645, 198];
const ASSISTANT_HEADER = [151644, 77091, 198];
const ign = (n: number) => new Array<number>(n).fill(IGNORE_INDEX);

let tok: QwenTokenizer;
beforeAll(async () => {
  tok = await defaultTokenizer();
});

const CONVERSATIONS: ChatMessage[][] = [
  [{ role: 'user', content: 'Hi' }],
  [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] },
    { role: 'assistant', content: 'A cat.' },
    { role: 'user', content: [{ type: 'text', text: 'And here?' }, { type: 'image' }, { type: 'image' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'Two dogs.' }] },
  ],
  [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b\n' },
      ],
    },
  ],
];

describe('renderChat', () => {
  it.each(CONVERSATIONS.map((c, i) => [i, c] as const))(
    'conversation %i renders exactly like the processor chat_template.json',
    (_i, msgs) => {
      for (const addGenerationPrompt of [false, true]) {
        for (const addVisionId of [false, true]) {
          const ours = renderChat(msgs, { addGenerationPrompt, addVisionId });
          const hf = renderChat(msgs, { addGenerationPrompt, addVisionId, template: HF_TEMPLATE });
          expect(ours).toBe(hf);
        }
      }
    },
  );
  it('writes the spec §7 example literally', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] },
    ];
    expect(renderChat(msgs, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n' +
        '<|vision_start|><|image_pad|><|vision_end|>What is shown?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(renderChat(msgs, { addVisionId: true })).toContain('user\nPicture 1: <|vision_start|>');
  });
  it('rejects malformed messages, naming the message', () => {
    expect(() => renderChat([{ role: 'user', content: 42 as unknown as string }])).toThrow(
      /message 0 \(user\)/,
    );
    expect(() => renderChat([{ role: 'user', content: [{ type: 'audio' } as never] }])).toThrow(/part 0/);
  });
});

describe('assistant label mask', () => {
  const labelsOf = (msgs: ChatMessage[]) => tokenizeWithLabels(tok, renderChatWithSpans(msgs));
  it('trains exactly the reply and its <|im_end|> (one turn, literal ids)', () => {
    const { ids, labels } = labelsOf([
      { role: 'user', content: 'What is 2 plus 2?' },
      { role: 'assistant', content: 'Hello world' },
    ]);
    expect(ids).toEqual([...SYS_IDS, ...USER_2PLUS2, ...ASSISTANT_HEADER, 9707, 1879, 151645, 198]);
    expect(labels).toEqual([...ign(27), 9707, 1879, 151645, IGNORE_INDEX]);
  });
  it('covers every assistant reply and nothing else (two turns, literal ids)', () => {
    const { ids, labels } = labelsOf([
      { role: 'user', content: 'What is 2 plus 2?' },
      { role: 'assistant', content: 'Hello world' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: [{ type: 'text', text: 'Hello' }] },
    ]);
    const user2 = [151644, 872, 198, 9707, 151645, 198];
    expect(ids).toEqual([
      ...SYS_IDS,
      ...USER_2PLUS2,
      ...ASSISTANT_HEADER,
      9707,
      1879,
      151645,
      198,
      ...user2,
      ...ASSISTANT_HEADER,
      9707,
      151645,
      198,
    ]);
    expect(labels).toEqual([...ign(27), 9707, 1879, 151645, ...ign(1 + 6 + 3), 9707, 151645, IGNORE_INDEX]);
  });
  it('decoded trained spans are the replies (unicode, think tags, trailing newline in content)', () => {
    const replies = ['<think> 2+2 </think> <answer>\\boxed{4}</answer>', '答案是 4 🙂\n'];
    const { ids, labels } = labelsOf([
      { role: 'system', content: 'S' },
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: replies[0] },
      { role: 'user', content: 'q2' },
      { role: 'assistant', content: replies[1] },
    ]);
    const runs: number[][] = [];
    labels.forEach((l, j) => {
      if (l === IGNORE_INDEX) return;
      expect(l).toBe(ids[j]);
      if (j === 0 || labels[j - 1] === IGNORE_INDEX) runs.push([]);
      runs[runs.length - 1].push(l);
    });
    expect(runs.map((r) => tok.decode(r))).toEqual(replies.map((r) => `${r}<|im_end|>`));
  });
  it('a reply starting with whitespace trains the token it shares with the header newline', () => {
    // "assistant\n" + "\n\nx": the BPE merges the header "\n" with the reply's "\n\n" into one token.
    const { ids, labels } = labelsOf([
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: '\n\nHello' },
    ]);
    const trained = ids.filter((_, j) => labels[j] !== IGNORE_INDEX);
    expect(tok.decode(trained)).toBe('\n\n\nHello<|im_end|>');
  });
  it('text parts marked train: false stay in the input without loss (literal ids)', () => {
    const { ids, labels } = labelsOf([
      { role: 'user', content: 'What is 2 plus 2?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Hello', train: false },
          { type: 'text', text: ' world' },
        ],
      },
    ]);
    // Same ids as the plain 'Hello world' reply: marking a part changes the labels, never the tokens.
    expect(ids).toEqual([...SYS_IDS, ...USER_2PLUS2, ...ASSISTANT_HEADER, 9707, 1879, 151645, 198]);
    expect(labels).toEqual([...ign(28), 1879, 151645, IGNORE_INDEX]);
    // A given part in the middle; the trained runs decode to the parts around it.
    const mid = labelsOf([
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: '<think> a' },
          { type: 'text', text: ' b c', train: false },
          { type: 'text', text: ' d </think>' },
        ],
      },
    ]);
    const runs: string[] = [];
    mid.labels.forEach((l, j) => {
      if (l === IGNORE_INDEX) return;
      if (j === 0 || mid.labels[j - 1] === IGNORE_INDEX) runs.push('');
      runs[runs.length - 1] += tok.decode([l]);
    });
    expect(runs).toEqual(['<think> a', ' d </think><|im_end|>']);
    // A fully given reply trains only its <|im_end|>.
    const given = labelsOf([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: [{ type: 'text', text: 'Hello', train: false }] },
    ]);
    expect(given.labels.filter((l) => l !== IGNORE_INDEX)).toEqual([151645]);
  });
  it('train: false beside an image part in a reply is refused, naming the message', () => {
    expect(() =>
      renderChatWithSpans([
        { role: 'user', content: 'q' },
        {
          role: 'assistant',
          content: [{ type: 'image' }, { type: 'text', text: 'x', train: false }],
        },
      ]),
    ).toThrow(/assistant message 1: parts with train: false need a reply of text parts only/);
  });
  it('no assistant message -> no labels; assistant first -> clear error', () => {
    expect(labelsOf([{ role: 'user', content: 'Hello' }]).labels.every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(() => renderChatWithSpans([{ role: 'assistant', content: 'x' }])).toThrow(
      /cannot locate assistant message 0.*Start conversations with a system or user message/,
    );
  });
});

describe('image placeholders', () => {
  it('expands one and two images to t*h*w/4 pads, labels -100 there', () => {
    const one = renderChat(
      [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] }],
      {
        addGenerationPrompt: true,
      },
    );
    const e1 = expandImagePads(tok.encode(one), null, [6], tok.special.imagePad);
    expect(e1.ids).toEqual([
      ...SYS_IDS,
      151644,
      872,
      198,
      151652,
      ...new Array(6).fill(151655),
      151653,
      3838,
      374,
      6839,
      30,
      151645,
      198,
      ...ASSISTANT_HEADER,
    ]);
    const two = renderChat([
      { role: 'user', content: [{ type: 'image' }, { type: 'image' }, { type: 'text', text: 'Hi' }] },
    ]);
    const ids = tok.encode(two);
    const e2 = expandImagePads(ids, ids, [6, 24], tok.special.imagePad);
    expect(e2.ids.filter((i) => i === 151655)).toHaveLength(30);
    expect(e2.ids.filter((i) => i === 151652)).toHaveLength(2);
    const firstPad = e2.ids.indexOf(151655);
    expect(e2.ids.slice(firstPad, firstPad + 7)).toEqual([...new Array(6).fill(151655), 151653]);
    expect(e2.labels?.filter((_, j) => e2.ids[j] === 151655).every((l) => l === IGNORE_INDEX)).toBe(true);
  });
  it('names a placeholder/image count mismatch', () => {
    expect(() => expandImagePads([1, 151655, 2], null, [], 151655)).toThrow(
      /1 image placeholder\(s\) but 0 image\(s\)/,
    );
  });
  it('inlineImages lists images in order of appearance', () => {
    const buf = new Uint8Array([1]);
    expect(
      inlineImages([
        {
          role: 'user',
          content: [{ type: 'image', image: 'a.png' }, { type: 'text', text: 'x' }, { type: 'image' }],
        },
        { role: 'assistant', content: 'y' },
        { role: 'user', content: [{ type: 'image', image: buf }] },
      ]),
    ).toEqual(['a.png', undefined, buf]);
  });
});

describe('named prompt templates', () => {
  it('orz is the Open-Reasoner-Zero prompt', () => {
    expect(buildPrompt('orz', 'What is 1+1?')).toBe(
      'A conversation between User and Assistant. The User asks a question, and the Assistant solves it. ' +
        'The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. ' +
        'The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, ' +
        'respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. ' +
        'User: You must put your answer inside <answer> </answer> tags, i.e., <answer> answer here </answer>. ' +
        'And your final answer will be extracted automatically by the \\boxed{} tag.\nThis is the problem:\n' +
        'What is 1+1?\nAssistant: <think>',
    );
    expect(buildPrompt('orz', 'Q', { numImages: 2 })).toContain(
      'User: <|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>You must',
    );
  });
  it('qwen is the chat template with the CoT suffix and a generation prompt', () => {
    expect(buildPrompt('qwen', 'What is 1+1?', { numImages: 1 })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n' +
        '<|vision_start|><|image_pad|><|vision_end|>What is 1+1?\n' +
        'Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  it('rejects unknown names and bad image counts', () => {
    expect(() => buildPrompt('r1' as 'orz', 'Q')).toThrow(
      /unknown prompt template 'r1': use one of orz, qwen/,
    );
    expect(() => buildPrompt('orz', 'Q', { numImages: -1 })).toThrow(/numImages/);
  });
});

// processor(): HF parity on the model cases (ids, mask, pixel_values, grids), padding sides, labels,
// image sources (inline, option list, prompt strings) and input errors.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/data/chat.js';
import { processor } from '../../src/data/processor.js';
import { buildPrompt } from '../../src/data/templates.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';
import { type HostTensor, readSafetensors } from '../../src/io/safetensors.js';
import { expectClose, FIXTURE } from '../helpers.js';

interface Case {
  input_ids: number[][];
  attention_mask: number[][];
  image_names_in_order: string[];
  image_grid_thw: number[][] | null;
}
const CASES: Record<string, Case> = JSON.parse(readFileSync(`${FIXTURE}/cases.json`, 'utf8')).cases;
const img = (name: string) => `${FIXTURE}/images/${name}.png`;
const PAD = 151643;
const IMAGE_PAD = 151655;

let tok: QwenTokenizer;
beforeAll(async () => {
  tok = await defaultTokenizer();
});

/** The case's text with each image's pads collapsed to one placeholder and padding removed. */
function caseTexts(c: Case): string[] {
  return c.input_ids.map((row, b) => {
    const real = row.filter((_, j) => c.attention_mask[b][j] === 1);
    return tok.decode(real.filter((id, j) => !(id === IMAGE_PAD && real[j - 1] === IMAGE_PAD)));
  });
}

describe('parity with the HF model cases (left padding, pad expansion, pixel values)', () => {
  it.each(['text_only_batch', 'one_image', 'multi_image_batch'])('%s', async (name) => {
    const c = CASES[name];
    const out = await processor(caseTexts(c), { images: c.image_names_in_order.map(img), tokenizer: tok });
    expect(out.inputIds).toEqual(c.input_ids);
    expect(out.attentionMask).toEqual(c.attention_mask);
    expect(out.imageGridThw ?? null).toEqual(c.image_grid_thw);
    if (c.image_names_in_order.length === 0) {
      expect(out.pixelValues).toBeUndefined();
      return;
    }
    const st = await readSafetensors(`${FIXTURE}/case_${name}.safetensors`);
    const ref = st.get('pixel_values') as HostTensor;
    expect(out.pixelShape).toEqual(ref.shape);
    expectClose(out.pixelValues as Float32Array, ref.data, 1e-6, `${name}.pixel_values`);
  });
});

const QA: ChatMessage[] = [
  { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is 2 plus 2?' }] },
  { role: 'assistant', content: 'Hello world' },
];
const TEXT_ONLY: ChatMessage[] = [
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hello' },
];

describe('batching and padding', () => {
  it('right padding: shapes, pad ids, mask and labels', async () => {
    const out = await processor([QA, TEXT_ONLY], {
      images: [img('img_h56_w84')],
      padding: 'right',
      labels: true,
      tokenizer: tok,
    });
    // QA: 11 system + 3 user header + (1 + 6 + 1) vision + 8 text ids + 2 end + 3 header + 3 reply + 1 newline = 39
    const lens = [39, 11 + 6 + 3 + 3];
    expect(out.inputIds.map((r) => r.length)).toEqual([39, 39]);
    expect(out.attentionMask.map((r) => r.reduce((a, b) => a + b, 0))).toEqual(lens);
    expect(out.inputIds[1].slice(lens[1])).toEqual(new Array(39 - lens[1]).fill(PAD));
    expect(out.attentionMask[1].slice(0, lens[1]).every((m) => m === 1)).toBe(true);
    const labels = out.labels as number[][];
    expect(labels[0].slice(-4)).toEqual([9707, 1879, 151645, -100]);
    expect(labels[0].filter((l) => l !== -100)).toHaveLength(3);
    expect(labels[1].filter((l) => l !== -100)).toEqual([9707, 151645]);
    expect(labels[1].slice(lens[1]).every((l) => l === -100)).toBe(true);
    expect(out.pixelShape).toEqual([24, 1176]);
    expect(out.imageGridThw).toEqual([[1, 4, 6]]);
  });
  it('left padding puts pads (mask 0, label -100) first and keeps the same real rows', async () => {
    const opts = { images: [img('img_h56_w84')], labels: true, tokenizer: tok };
    const left = await processor([QA, TEXT_ONLY], { ...opts, padding: 'left' });
    const right = await processor([QA, TEXT_ONLY], { ...opts, padding: 'right' });
    const n = 39 - 23;
    expect(left.inputIds[1].slice(0, n)).toEqual(new Array(n).fill(PAD));
    expect(left.attentionMask[1].slice(0, n)).toEqual(new Array(n).fill(0));
    expect(left.inputIds[1].slice(n)).toEqual(right.inputIds[1].slice(0, 23));
    expect((left.labels as number[][])[1].slice(n)).toEqual((right.labels as number[][])[1].slice(0, 23));
    expect(left.inputIds[0]).toEqual(right.inputIds[0]);
  });
  it('a single conversation equals a batch of one; no images -> no pixel fields', async () => {
    const one = await processor(TEXT_ONLY, { tokenizer: tok, addGenerationPrompt: true });
    const batch = await processor([TEXT_ONLY], { tokenizer: tok, addGenerationPrompt: true });
    expect(one).toEqual(batch);
    expect(one.inputIds[0].slice(-3)).toEqual([151644, 77091, 198]);
    expect(one.pixelValues).toBeUndefined();
    expect(one.labels).toBeUndefined();
  });
});

describe('image sources', () => {
  it('inline images, option images and prompt-string placeholders give the same pixels in order', async () => {
    const inline: ChatMessage[] = [
      {
        role: 'user',
        content: [
          { type: 'image', image: img('img_h112_w56') },
          { type: 'image', image: readFileSync(img('img_h70_w100')) },
          { type: 'text', text: 'Compare.' },
        ],
      },
    ];
    const a = await processor(inline, { tokenizer: tok, addGenerationPrompt: true });
    const plain: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image' }, { type: 'image' }, { type: 'text', text: 'Compare.' }] },
    ];
    const b = await processor(plain, {
      tokenizer: tok,
      addGenerationPrompt: true,
      images: [img('img_h112_w56'), img('img_h70_w100')],
    });
    expect(a).toEqual(b);
    expect(a.imageGridThw).toEqual([
      [1, 8, 4],
      [1, 4, 8],
    ]);
    expect(a.inputIds[0].filter((id) => id === IMAGE_PAD)).toHaveLength(8 + 8);
    const c = await processor(buildPrompt('orz', 'Compare.', { numImages: 2 }), {
      tokenizer: tok,
      images: [img('img_h112_w56'), img('img_h70_w100')],
    });
    expect(c.pixelValues).toEqual(a.pixelValues);
  });
  it('passes minPixels/maxPixels to smart_resize', async () => {
    const out = await processor(buildPrompt('qwen', 'Q', { numImages: 1 }), {
      tokenizer: tok,
      images: [img('img_h168_w112')],
      maxPixels: 12544,
    });
    expect(out.imageGridThw).toEqual([[1, 8, 6]]);
    expect(out.inputIds[0].filter((id) => id === IMAGE_PAD)).toHaveLength(12);
  });
});

describe('input errors', () => {
  it('too few / too many images, labels on prompt strings, bad padding, empty batch', async () => {
    await expect(processor(QA, { tokenizer: tok })).rejects.toThrow(/sample 0 needs more images/);
    await expect(processor(TEXT_ONLY, { tokenizer: tok, images: [img('img_h56_w84')] })).rejects.toThrow(
      /1 image\(s\) in 'images' were not used/,
    );
    await expect(processor('plain prompt', { tokenizer: tok, labels: true })).rejects.toThrow(
      /sample 0 is a prompt string: labels need chat messages/,
    );
    await expect(processor(TEXT_ONLY, { tokenizer: tok, padding: 'middle' as 'left' })).rejects.toThrow(
      /padding must be 'left' or 'right'/,
    );
    await expect(processor([], { tokenizer: tok })).rejects.toThrow(/non-empty list/);
  });
  it('a corrupt inline image names itself', async () => {
    const bad: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image', image: new Uint8Array([1, 2, 3]) }] },
    ];
    await expect(processor(bad, { tokenizer: tok })).rejects.toThrow(
      /cannot decode image <Buffer of 3 bytes>/,
    );
  });
});

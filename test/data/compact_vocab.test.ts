// CompactTokenizer: round trips on literal strings, fixed special slots, image pad expansion through the processor,
// the <unk> policy and culprit-naming errors.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CompactTokenizer, UNK_TOKEN } from '../../src/data/compact_vocab.js';
import { processor } from '../../src/data/processor.js';
import { defaultTokenizer, type QwenTokenizer } from '../../src/data/tokenizer.js';

let base: QwenTokenizer;
beforeAll(async () => {
  base = await defaultTokenizer();
});

const CORPUS = ['<|im_start|>user\nHow many red circles?<|im_end|>\n', 'Hello world'];

describe('CompactTokenizer', () => {
  it('round-trips corpus strings and keeps the Qwen byte offsets', () => {
    const ct = CompactTokenizer.build(base, CORPUS);
    // 'Hello world' is Qwen [9707, 1879]: two text slots, ascending Qwen order after the 3 text specials
    const ids = ct.encode('Hello world');
    expect(ids).toHaveLength(2);
    expect(ct.qwenIds[ids[0]]).toBe(9707);
    expect(ct.qwenIds[ids[1]]).toBe(1879);
    expect(ct.decode(ids)).toBe('Hello world');
    expect(ct.decode(ct.encode(CORPUS[0]))).toBe(CORPUS[0]);
    expect(ct.encodeWithOffsets('Hello world').byteEnds).toEqual([5, 11]);
    expect(Math.max(...ct.encode(CORPUS[0]))).toBeLessThan(ct.textEnd);
    // exact size: 3 text specials + text tokens + <unk> + 4 vision specials
    expect(ct.vocabSize).toBe(ct.textEnd + 5);
  });

  it('puts specials at fixed slots, whatever the corpus', () => {
    const ct = CompactTokenizer.build(base, CORPUS, { vocabSize: 64 });
    expect(ct.special).toEqual({
      pad: 0,
      imStart: 1,
      eos: 2,
      imEnd: 2,
      visionStart: 60,
      visionEnd: 61,
      imagePad: 62,
      videoPad: 63,
    });
    expect(ct.tokenToId('<|image_pad|>')).toBe(62);
    expect(ct.tokenToId(UNK_TOKEN)).toBe(59);
    expect(ct.idToToken(0)).toBe('<|endoftext|>');
    expect(ct.tokenToId('elephant')).toBeUndefined();
    expect(ct.decode([1, 2, 0], { skipSpecialTokens: true })).toBe('');
    expect(() => ct.decode([40])).toThrow(/id 40 is not a token/);
  });

  it('works in the processor: image pads expand to compact ids, pad with the compact pad', async () => {
    const ct = CompactTokenizer.build(base, CORPUS, { vocabSize: 64 });
    const img = await sharp({ create: { width: 56, height: 56, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const prompts = ['<|vision_start|><|image_pad|><|vision_end|>Hello world', 'Hello'];
    const out = await processor(prompts, { tokenizer: ct.asQwenTokenizer(), images: [new Uint8Array(img)] });
    const row = out.inputIds[0];
    // a 56x56 image is a 4x4 patch grid merged 2x2: 4 image tokens between vision start and end
    expect(row.filter((id) => id === 62)).toHaveLength(4);
    expect(row.slice(0, 6)).toEqual([60, 62, 62, 62, 62, 61]);
    expect(out.inputIds[1].slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(Math.max(...out.inputIds.flat())).toBeLessThan(64);
  });

  it("unknown ids: a clear error by default, the <unk> slot with unknown: 'unk'", () => {
    const strict = CompactTokenizer.build(base, CORPUS);
    expect(() => strict.encode(' elephant')).toThrow(/not in the compact vocabulary.*rebuild/);
    const lax = CompactTokenizer.build(base, CORPUS, { unknown: 'unk' });
    const ids = lax.encode('Hello elephant');
    expect(ids[1]).toBe(lax.vocabSize - 5);
    expect(lax.decode(ids)).toBe(`Hello${UNK_TOKEN}`);
    expect(lax.decode(ids, { skipSpecialTokens: true })).toBe('Hello');
  });

  it('names the culprit: too small a vocab, a config pointing elsewhere', () => {
    expect(() => CompactTokenizer.build(base, CORPUS, { vocabSize: 8 })).toThrow(
      /needs \d+ slots.*vocabSize is 8/,
    );
    const ct = CompactTokenizer.build(base, CORPUS, { vocabSize: 64 });
    const cfg = {
      vocab_size: 64,
      eos_token_id: 2,
      vision_start_token_id: 60,
      vision_end_token_id: 61,
      image_token_id: 62,
      video_token_id: 63,
    };
    expect(() => ct.checkConfig(cfg)).not.toThrow();
    expect(() => ct.checkConfig({ ...cfg, image_token_id: 151655 })).toThrow(
      /image_token_id is 151655, expected 62/,
    );
  });

  it('saves and loads the same vocabulary', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-compact-'));
    try {
      const ct = CompactTokenizer.build(base, CORPUS, { vocabSize: 40, unknown: 'unk' });
      // A folder that does not exist yet is created (as saveWeights does for a checkpoint folder).
      await ct.save(path.join(dir, 'new', 'ckpt'));
      const back = await CompactTokenizer.load(path.join(dir, 'new', 'ckpt'), base);
      expect(back.qwenIds).toEqual(ct.qwenIds);
      expect(back.unknown).toBe('unk');
      expect(back.encode(CORPUS[0])).toEqual(ct.encode(CORPUS[0]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

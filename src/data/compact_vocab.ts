// A compact vocabulary over the Qwen2.5 tokenizer, for tiny models trained in minutes on a CPU.
//
// Why: the Qwen2.5 embedding has 151,936 rows; a toy task uses a few hundred of them. A tiny model with the full
// vocabulary spends almost all of its FLOPs in the LM head. `CompactTokenizer` tokenises with the real Qwen
// tokenizer (same BPE, same chat template, same special tokens) and then maps every id to its slot in a small
// vocabulary built from a corpus; decoding maps back. It has the public surface of `QwenTokenizer` (encode,
// encodeWithOffsets, decode, tokenToId, idToToken, special, vocabSize), so the processor, `trainSft`, `trainGrpo`
// and `generate` work unchanged with a model whose `vocab_size` is the compact size.
//
// Slot layout (V = size): 0 `<|endoftext|>` (pad), 1 `<|im_start|>`, 2 `<|im_end|>` (eos), 3.. the corpus ids in
// ascending Qwen order, then unused filler slots, then V-5 `<unk>`, V-4 `<|vision_start|>`, V-3 `<|vision_end|>`,
// V-2 `<|image_pad|>`, V-1 `<|video_pad|>`. Everything from `textEnd` up can never be a sensible generated token,
// so pass `textEnd` as generate's `allowedVocab`.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EncodingWithOffsets, QwenTokenizer, SpecialIds } from './tokenizer.js';

/** Text specials at the first slots, in this order. */
export const COMPACT_TEXT_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
/** Vision specials at the last four slots, in this order. */
export const COMPACT_VISION_SPECIALS = [
  '<|vision_start|>',
  '<|vision_end|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;
/** Text of the unknown slot when decoded (Qwen has no unk token; this one is the compact vocabulary's own). */
export const UNK_TOKEN = '<unk>';
export const COMPACT_VOCAB_FILE = 'compact_vocab.json';
/** Slot marker in `qwenIds` for an unused filler slot. */
const FILLER = -1;
/** Slot marker in `qwenIds` for `<unk>`. */
const UNK = -2;

/** What to do with a Qwen id outside the compact vocabulary: throw (default) or map it to `<unk>`. */
export type UnknownPolicy = 'error' | 'unk';

export interface CompactBuildOptions {
  /** Total slots (the model's vocab_size); default: exactly what the corpus needs. */
  vocabSize?: number;
  unknown?: UnknownPolicy;
}

/** Config fields that must point at the compact slots (checked by {@link CompactTokenizer.checkConfig}). */
export interface CompactConfigFields {
  vocab_size: number;
  eos_token_id?: number | number[];
  vision_start_token_id: number;
  vision_end_token_id: number;
  image_token_id: number;
  video_token_id: number;
}

/** The Qwen tokenizer with ids remapped to a compact vocabulary (see the file comment). */
export class CompactTokenizer {
  readonly special: Readonly<SpecialIds>;
  /** Ids >= textEnd are `<unk>`, vision specials or unused: generate's `allowedVocab`. */
  readonly textEnd: number;
  readonly unknown: UnknownPolicy;
  private readonly index: Map<number, number>;
  private readonly unkSlot: number;

  /**
   * @param qwenIds slot -> Qwen id (-1 unused, -2 `<unk>`), in the layout of the file comment.
   * @example const ct = new CompactTokenizer(base, saved.qwenIds); // usually via build() or load()
   */
  constructor(
    readonly base: QwenTokenizer,
    readonly qwenIds: readonly number[],
    opts: { unknown?: UnknownPolicy } = {},
  ) {
    const V = qwenIds.length;
    const want: [number, string][] = [
      ...COMPACT_TEXT_SPECIALS.map((t, i): [number, string] => [i, t]),
      ...COMPACT_VISION_SPECIALS.map((t, i): [number, string] => [V - 4 + i, t]),
    ];
    for (const [slot, tok] of want) {
      if (qwenIds[slot] !== base.tokenToId(tok))
        throw new Error(
          `CompactTokenizer: slot ${slot} must hold '${tok}'; rebuild with CompactTokenizer.build`,
        );
    }
    if (qwenIds[V - 5] !== UNK)
      throw new Error(`CompactTokenizer: slot ${V - 5} (V - 5) must be ${UNK_TOKEN}`);
    this.index = new Map(qwenIds.flatMap((id, i) => (id >= 0 ? [[id, i] as [number, number]] : [])));
    this.unkSlot = V - 5;
    this.unknown = opts.unknown ?? 'error';
    const firstFree = qwenIds.findIndex((id) => id < 0);
    this.textEnd = firstFree;
    const s = base.special;
    const to = (id: number) => this.index.get(id) as number;
    this.special = Object.freeze({
      eos: to(s.eos),
      pad: to(s.pad),
      imStart: to(s.imStart),
      imEnd: to(s.imEnd),
      visionStart: to(s.visionStart),
      visionEnd: to(s.visionEnd),
      imagePad: to(s.imagePad),
      videoPad: to(s.videoPad),
    });
  }

  /**
   * Compact vocabulary of every Qwen id that `corpus` tokenises to, plus the specials.
   * @example const ct = CompactTokenizer.build(await defaultTokenizer(), ['Hello world'], { vocabSize: 16 });
   */
  static build(
    base: QwenTokenizer,
    corpus: readonly string[],
    opts: CompactBuildOptions = {},
  ): CompactTokenizer {
    const idsOf = (xs: readonly string[]) => xs.map((t) => base.tokenToId(t) as number);
    const specials = new Set([...idsOf(COMPACT_TEXT_SPECIALS), ...idsOf(COMPACT_VISION_SPECIALS)]);
    const seen = new Set<number>();
    for (const text of corpus) for (const id of base.encode(text)) if (!specials.has(id)) seen.add(id);
    const text = [...seen].sort((a, b) => a - b);
    const need = COMPACT_TEXT_SPECIALS.length + text.length + 1 + COMPACT_VISION_SPECIALS.length;
    const V = opts.vocabSize ?? need;
    if (V < need) {
      throw new Error(
        `CompactTokenizer: the corpus needs ${need} slots (${text.length} text tokens + 8 specials) but vocabSize is ${V}; ` +
          `raise vocab_size in the model config to at least ${need}`,
      );
    }
    const qwenIds = [
      ...idsOf(COMPACT_TEXT_SPECIALS),
      ...text,
      ...new Array(V - need).fill(FILLER),
      UNK,
      ...idsOf(COMPACT_VISION_SPECIALS),
    ];
    return new CompactTokenizer(base, qwenIds, { unknown: opts.unknown });
  }

  /** Number of slots (the model's vocab_size). */
  get vocabSize(): number {
    return this.qwenIds.length;
  }

  /**
   * This object typed as `QwenTokenizer`, for APIs declared with that class (processor, trainer deps). Safe:
   * those APIs use only the public members, which this class implements with compact ids.
   * @example await trainSft(cfg, { model, tokenizer: ct.asQwenTokenizer() });
   */
  asQwenTokenizer(): QwenTokenizer {
    return this as unknown as QwenTokenizer;
  }

  /** Qwen ids -> compact slots; -100 (ignored label) passes through. */
  toCompact(ids: readonly number[]): number[] {
    return ids.map((id) => {
      if (id === -100) return id;
      const c = this.index.get(id);
      if (c !== undefined) return c;
      if (this.unknown === 'unk') return this.unkSlot;
      throw new Error(
        `CompactTokenizer: token ${id} ('${this.base.idToToken(id)}') is not in the compact vocabulary; add text ` +
          "using it to the corpus and rebuild, or build with { unknown: 'unk' } to map it to <unk>",
      );
    });
  }

  /**
   * Text -> compact ids (Qwen BPE, then the remap).
   * @example ct.decode(ct.encode('Hello world')) // 'Hello world'
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.toCompact(this.base.encode(text, opts));
  }

  /** Compact ids plus UTF-8 byte end offsets (the remap is one-to-one, so the offsets are the Qwen ones). */
  encodeWithOffsets(text: string): EncodingWithOffsets {
    const e = this.base.encodeWithOffsets(text);
    return { ids: this.toCompact(e.ids), byteEnds: e.byteEnds };
  }

  /**
   * Compact ids -> text; `<unk>` decodes to '<unk>' (dropped with skipSpecialTokens), filler slots throw.
   * @example ct.decode([ct.special.imStart]) // '<|im_start|>'
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) parts.push(this.base.decode(run, opts));
      run = [];
    };
    for (const c of ids) {
      const q = this.qwenIds[c];
      if (q === undefined || q === FILLER)
        throw new Error(
          `CompactTokenizer.decode: id ${c} is not a token of this vocabulary (size ${this.vocabSize})`,
        );
      if (q === UNK) {
        flush();
        if (!opts.skipSpecialTokens) parts.push(UNK_TOKEN);
      } else run.push(q);
    }
    flush();
    return parts.join('');
  }

  /** Token string -> compact id, or undefined when not in the vocabulary. @example ct.tokenToId('<|im_end|>') // 2 */
  tokenToId(token: string): number | undefined {
    if (token === UNK_TOKEN) return this.unkSlot;
    const q = this.base.tokenToId(token);
    return q === undefined ? undefined : this.index.get(q);
  }

  /** Compact id -> token string, or undefined. */
  idToToken(id: number): string | undefined {
    const q = this.qwenIds[id];
    if (q === UNK) return UNK_TOKEN;
    return q === undefined || q < 0 ? undefined : this.base.idToToken(q);
  }

  /** Throws unless the model config's token ids point at this vocabulary's slots. */
  checkConfig(cfg: CompactConfigFields): void {
    const V = this.vocabSize;
    const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id;
    const want: [string, number | undefined, number][] = [
      ['vocab_size', cfg.vocab_size, V],
      ['eos_token_id', eos, this.special.eos],
      ['vision_start_token_id', cfg.vision_start_token_id, this.special.visionStart],
      ['vision_end_token_id', cfg.vision_end_token_id, this.special.visionEnd],
      ['image_token_id', cfg.image_token_id, this.special.imagePad],
      ['video_token_id', cfg.video_token_id, this.special.videoPad],
    ];
    const bad = want.filter(([, got, exp]) => got !== exp);
    if (bad.length) {
      throw new Error(
        `model config does not match the compact vocabulary: ${bad.map(([k, got, exp]) => `${k} is ${got}, expected ${exp}`).join('; ')}`,
      );
    }
  }

  /** Writes `compact_vocab.json` into `dir` (next to a checkpoint), creating the folder if needed. */
  async save(dir: string): Promise<void> {
    const json = { qwenIds: this.qwenIds, unknown: this.unknown };
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, COMPACT_VOCAB_FILE), `${JSON.stringify(json)}\n`);
  }

  /**
   * Reads `compact_vocab.json` from `dir`.
   * @example const ct = await CompactTokenizer.load('runs/demo/checkpoints/rl', await defaultTokenizer());
   */
  static async load(dir: string, base: QwenTokenizer): Promise<CompactTokenizer> {
    const file = path.join(dir, COMPACT_VOCAB_FILE);
    const json = JSON.parse(await readFile(file, 'utf8')) as { qwenIds?: unknown; unknown?: UnknownPolicy };
    if (!Array.isArray(json.qwenIds) || json.qwenIds.some((x) => !Number.isInteger(x)))
      throw new Error(`${file}: expected {"qwenIds": integer[]}`);
    return new CompactTokenizer(base, json.qwenIds as number[], { unknown: json.unknown });
  }
}

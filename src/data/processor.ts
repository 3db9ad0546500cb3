// Qwen2.5-VL processor: chat messages (or pre-rendered prompts) + images → padded token ids, attention mask,
// SFT labels and pixel values. Mirrors HF `Qwen2_5_VLProcessor.__call__` + `apply_chat_template`
// (spec §2, §5, §7). Outputs are plain arrays; model code turns them into tensors.
//
// Shape legend: B samples, T padded length, N image patch rows (all images, sample by sample), 1176 = C·tp·P·P.
import { IGNORE_INDEX } from '../model/loss.js';
import {
  type ChatMessage,
  expandImagePads,
  inlineImages,
  type RenderOptions,
  renderChatWithSpans,
  tokenizeWithLabels,
} from './chat.js';
import {
  concatImages,
  type ImageInput,
  type ImageProbe,
  type ImageProcessorOptions,
  PATCH_DIM,
  type ProcessedImage,
  probeImage,
  processImage,
} from './image.js';
import { defaultTokenizer, type QwenTokenizer } from './tokenizer.js';

/** One sample: a conversation, or a prompt string already rendered (e.g. by `buildPrompt`). */
export type ProcessorSample = ChatMessage[] | string;

export interface ProcessorOptions extends ImageProcessorOptions, Omit<RenderOptions, 'addGenerationPrompt'> {
  /** Images for `{type:'image'}` parts without an inline image and for placeholders in prompt strings, in order. */
  images?: ImageInput[];
  /** Side to pad on (default 'left', as for generation and the parity fixtures). */
  padding?: 'left' | 'right';
  /** Also return SFT labels: token id on assistant replies (+ their `<|im_end|>`), -100 elsewhere. */
  labels?: boolean;
  /** Append `<|im_start|>assistant\n` to each conversation. */
  addGenerationPrompt?: boolean;
  /** Tokenizer to use; default {@link defaultTokenizer}. */
  tokenizer?: QwenTokenizer;
  /**
   * Default true. false: image sizes come from the file headers only (no pixel decoding, no `pixelValues`), for
   * token counts and labels: tokenizing a dataset then costs no image decoding, whatever the image sizes.
   */
  pixels?: boolean;
}

export interface ProcessorOutput {
  /** [B, T], padded with `<|endoftext|>` (151643). */
  inputIds: number[][];
  /** [B, T], 1 on real tokens. */
  attentionMask: number[][];
  /** [B, T], only with `labels: true`. */
  labels?: number[][];
  /** [N, 1176] row-major, only when there are images. */
  pixelValues?: Float32Array;
  pixelShape?: [number, 1176];
  /** [num_images, 3] = [t, h, w] in patch units. */
  imageGridThw?: number[][];
}

function isSample(x: unknown): x is ProcessorSample {
  return typeof x === 'string' || Array.isArray(x);
}

/** A single conversation, a single prompt string, or a batch of either. */
function toBatch(input: ProcessorSample | ProcessorSample[]): ProcessorSample[] {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) {
    throw new Error('processor: input must be a conversation, a prompt string, or a non-empty list of them');
  }
  if (input.every(isSample)) return input as ProcessorSample[];
  if (input.some(isSample)) {
    throw new Error(
      'processor: mix of messages and samples; pass one conversation or a list of conversations',
    );
  }
  return [input as ChatMessage[]];
}

/** Take the images each sample needs: inline ones first-class, the rest from `queue` in order. */
function takeImages(slots: (ImageInput | undefined)[], queue: ImageInput[], sample: number): ImageInput[] {
  return slots.map((img) => {
    if (img !== undefined) return img;
    const next = queue.shift();
    if (next === undefined) {
      throw new Error(
        `sample ${sample} needs more images than were given: pass one image per {type:'image'} part`,
      );
    }
    return next;
  });
}

interface Encoded {
  ids: number[];
  labels: number[] | null;
  images: ImageInput[];
}

function encodeSample(
  s: ProcessorSample,
  i: number,
  tok: QwenTokenizer,
  opts: ProcessorOptions,
  queue: ImageInput[],
) {
  if (typeof s === 'string') {
    if (opts.labels) {
      throw new Error(`sample ${i} is a prompt string: labels need chat messages with assistant replies`);
    }
    const ids = tok.encode(s);
    const n = ids.filter((id) => id === tok.special.imagePad).length;
    return {
      ids,
      labels: null,
      images: takeImages(new Array(n).fill(undefined), queue, i),
    } satisfies Encoded;
  }
  const rendered = renderChatWithSpans(s, opts);
  const { ids, labels } = tokenizeWithLabels(tok, rendered);
  return {
    ids,
    labels: opts.labels ? labels : null,
    images: takeImages(inlineImages(s), queue, i),
  } satisfies Encoded;
}

/**
 * Grids (and pixels unless `pixels: false`) of every image in order. Images are decoded one after another, so a batch
 * of large photos never holds more than one decoded photo at a time.
 */
async function processAll(
  images: ImageInput[],
  opts: ProcessorOptions,
): Promise<(ProcessedImage | ImageProbe)[]> {
  if (opts.pixels === false) return Promise.all(images.map((img) => probeImage(img, opts)));
  const out: ProcessedImage[] = [];
  for (const img of images) out.push(await processImage(img, opts));
  return out;
}

/** Pad rows to the longest with `value` on the given side. */
export function padRows(rows: number[][], value: number, side: 'left' | 'right'): number[][] {
  const T = Math.max(...rows.map((r) => r.length));
  return rows.map((r) => {
    const pad = new Array<number>(T - r.length).fill(value);
    return side === 'left' ? [...pad, ...r] : [...r, ...pad];
  });
}

/**
 * Turn conversations (or prompt strings) and their images into model inputs, like HF
 * `processor.apply_chat_template(..., tokenize=True)`: each image placeholder becomes
 * `<|vision_start|>` + t·h·w/4 × `<|image_pad|>` + `<|vision_end|>`.
 * @example
 * const out = await processor([{ role: 'user', content: [{ type: 'image', image: 'cat.png' }, { type: 'text', text: 'What is this?' }] }],
 *   { addGenerationPrompt: true });
 * out.inputIds[0].length; out.imageGridThw // [[1, h/14, w/14]]
 */
export async function processor(
  input: ProcessorSample | ProcessorSample[],
  opts: ProcessorOptions = {},
): Promise<ProcessorOutput> {
  const tok = opts.tokenizer ?? (await defaultTokenizer());
  const side = opts.padding ?? 'left';
  if (side !== 'left' && side !== 'right')
    throw new Error(`padding must be 'left' or 'right', got '${side}'`);
  const queue = [...(opts.images ?? [])];
  const samples = toBatch(input).map((s, i) => encodeSample(s, i, tok, opts, queue));
  if (queue.length > 0) {
    throw new Error(
      `${queue.length} image(s) in 'images' were not used: the messages have fewer image parts`,
    );
  }
  const processed = await processAll(
    samples.flatMap((s) => s.images),
    opts,
  );
  let k = 0;
  const expanded = samples.map((s) => {
    const counts = s.images.map(() => {
      const [t, h, w] = processed[k++].gridThw;
      return (t * h * w) / 4;
    });
    return expandImagePads(s.ids, s.labels, counts, tok.special.imagePad);
  });
  const out: ProcessorOutput = {
    inputIds: padRows(
      expanded.map((e) => e.ids),
      tok.special.pad,
      side,
    ),
    attentionMask: padRows(
      expanded.map((e) => e.ids.map(() => 1)),
      0,
      side,
    ),
  };
  if (opts.labels)
    out.labels = padRows(
      expanded.map((e) => e.labels as number[]),
      IGNORE_INDEX,
      side,
    );
  if (processed.length > 0 && opts.pixels === false) {
    out.imageGridThw = processed.map((p) => [...p.gridThw]);
  } else if (processed.length > 0) {
    const { pixelValues, imageGridThw } = concatImages(processed as ProcessedImage[]);
    Object.assign(out, {
      pixelValues,
      imageGridThw,
      pixelShape: [pixelValues.length / PATCH_DIM, PATCH_DIM],
    });
  }
  return out;
}

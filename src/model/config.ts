// Qwen2.5-VL model config: parse a Hub `config.json` (flat or nested layout) into ONE normalised shape.
// Mirrors HF `configuration_qwen2_5_vl.py` (Qwen2_5_VLConfig + Qwen2_5_VLVisionConfig); field names keep their HF spelling.
// Spec: ../shared/spec/qwen2_5_vl.md §1 (values, consistency rules) and §6 (tensor names and shapes).
//
// Defaults. A missing field takes the HF class default ONLY where that default is harmless and documented (spec §1.1):
//   text:   rms_norm_eps 1e-5, rope_theta 1e6, tie_word_embeddings false, hidden_act "silu", max_position_embeddings 32768,
//           special token ids = the Qwen2.5-VL tokenizer's (bos 151643, eos 151645, image 151655, video 151656,
//           vision_start 151652, vision_end 151653; newer HF classes default the last four to these values);
//   vision: patch_size 14, temporal_patch_size 2, spatial_merge_size 2, in_channels 3, window_size 112,
//           fullatt_block_indexes [7,15,23,31], tokens_per_second 4, hidden_act "silu".
// Shape-defining fields (sizes, layer/head counts, vocab_size, mrope_section, vision depth/sizes/out_hidden_size) are REQUIRED:
// the class defaults (an 8192-wide 80-layer text model, a 3584-wide vision tower, V=152064) are never what a file meant.
import path from 'node:path';
import { z } from 'zod';
import { readJsonFile } from '../io/files.js';
import { runFolderHint } from '../io/run_folder.js';
import { checkConfigKeys, TOKEN_ID_KEYS } from './config_keys.js';

/** Normalised vision tower config (HF `Qwen2_5_VLVisionConfig` names). */
export interface VisionConfig {
  depth: number;
  hidden_size: number;
  num_heads: number;
  intermediate_size: number;
  patch_size: number;
  temporal_patch_size: number;
  spatial_merge_size: number;
  in_channels: number;
  window_size: number;
  fullatt_block_indexes: number[];
  out_hidden_size: number;
  tokens_per_second: number;
  hidden_act: string;
}

/** Normalised Qwen2.5-VL config (HF `Qwen2_5_VLConfig` names, text fields flat). */
export interface Qwen2_5_VLConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
  mrope_section: [number, number, number];
  max_position_embeddings: number;
  bos_token_id: number;
  eos_token_id: number;
  image_token_id: number;
  video_token_id: number;
  vision_start_token_id: number;
  vision_end_token_id: number;
  hidden_act: string;
  vision_config: VisionConfig;
}

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();
const act = z.literal('silu', {
  message: 'only "silu" is implemented (Qwen2.5-VL uses silu in text and vision)',
});

const VisionSchema = z.object({
  depth: posInt.describe('number of vision blocks (32 in the published models)'),
  hidden_size: posInt.describe('vision width Dv (1280)'),
  num_heads: posInt.describe('vision attention heads Hv (16)'),
  intermediate_size: posInt.describe('vision MLP width (3420)'),
  patch_size: posInt.default(14).describe('spatial patch side in pixels'),
  temporal_patch_size: posInt.default(2).describe('frames per patch (images are duplicated to 2)'),
  spatial_merge_size: posInt.default(2).describe('merger groups merge x merge patches'),
  in_channels: posInt.default(3).describe('image channels (`in_chans` on the Hub)'),
  window_size: posInt.default(112).describe('window side in pixels for windowed attention'),
  fullatt_block_indexes: z.array(z.number().int().nonnegative()).default([7, 15, 23, 31]),
  out_hidden_size: posInt.describe('merger output width; must equal the text hidden_size'),
  tokens_per_second: z.number().positive().default(4).describe('video temporal scale (published: 2)'),
  hidden_act: act.default('silu'),
});

const TextShape = {
  hidden_size: posInt.describe('text width D'),
  intermediate_size: posInt.describe('text MLP width I'),
  num_hidden_layers: posInt.describe('decoder layers L'),
  num_attention_heads: posInt.describe('query heads H'),
  num_key_value_heads: posInt.describe('key/value heads Hkv (GQA)'),
  rms_norm_eps: z
    .number()
    .positive()
    .default(1e-5)
    .describe('RMSNorm eps (published: 1e-6; class default 1e-5)'),
  rope_theta: z.number().positive().default(1e6),
  vocab_size: posInt.describe('embedding rows V'),
  tie_word_embeddings: z.boolean().default(false).describe('lm_head shares model.embed_tokens.weight'),
  mrope_section: z.tuple([posInt, posInt, posInt]).describe('M-RoPE split of Dh/2 into [t, h, w]'),
  max_position_embeddings: posInt.default(32768),
  bos_token_id: tokenId.default(151643),
  eos_token_id: tokenId.default(151645),
  image_token_id: tokenId.default(151655),
  video_token_id: tokenId.default(151656),
  vision_start_token_id: tokenId.default(151652),
  vision_end_token_id: tokenId.default(151653),
  hidden_act: act.default('silu'),
  vision_config: VisionSchema,
};

type Issue = { path: (string | number)[]; message: string };

/** Spec §1.2 consistency rules; each message says what to change. `ropeKey` names where mrope_section came from. */
export function consistencyIssues(c: Qwen2_5_VLConfig, ropeKey = 'rope_scaling'): Issue[] {
  const out: Issue[] = [];
  const add = (p: (string | number)[], message: string) => out.push({ path: p, message });
  const { hidden_size: D, num_attention_heads: H, num_key_value_heads: Hkv } = c;
  if (D % H !== 0) {
    add(['hidden_size'], `hidden_size (${D}) must be divisible by num_attention_heads (${H})`);
  } else {
    const dh = D / H;
    if (dh % 2 !== 0)
      add(
        ['hidden_size'],
        `head_dim = hidden_size/num_attention_heads = ${D}/${H} = ${dh} must be even (rotate-half rope)`,
      );
    const sum = c.mrope_section.reduce((a, b) => a + b, 0);
    if (sum * 2 !== dh) {
      add(
        [ropeKey, 'mrope_section'],
        `${ropeKey}.mrope_section [${c.mrope_section.join(',')}] sums to ${sum} but must equal head_dim/2 = ${dh / 2} (head_dim = hidden_size/num_attention_heads = ${D}/${H})`,
      );
    }
  }
  if (H % Hkv !== 0) {
    add(
      ['num_key_value_heads'],
      `num_attention_heads (${H}) must be divisible by num_key_value_heads (${Hkv})`,
    );
  }
  out.push(...visionIssues(c));
  for (const k of TOKEN_ID_KEYS) {
    if (c[k] >= c.vocab_size)
      add(
        [k],
        `${k} (${c[k]}) must be < vocab_size (${c.vocab_size}); raise vocab_size (the real tokenizer needs >= 151665)`,
      );
  }
  return out;
}

function visionIssues(c: Qwen2_5_VLConfig): Issue[] {
  const v = c.vision_config;
  const out: Issue[] = [];
  const add = (k: string, message: string) => out.push({ path: ['vision_config', k], message });
  if (v.hidden_size % v.num_heads !== 0) {
    add(
      'hidden_size',
      `vision_config.hidden_size (${v.hidden_size}) must be divisible by vision_config.num_heads (${v.num_heads})`,
    );
  } else if ((v.hidden_size / v.num_heads) % 4 !== 0) {
    const d = v.hidden_size / v.num_heads;
    add(
      'num_heads',
      `vision head dim = hidden_size/num_heads = ${v.hidden_size}/${v.num_heads} = ${d} must be a multiple of 4 (2-D rope: Dhv/4 row + Dhv/4 column angles)`,
    );
  }
  if (v.out_hidden_size !== c.hidden_size) {
    add(
      'out_hidden_size',
      `vision_config.out_hidden_size (${v.out_hidden_size}) must equal the text hidden_size (${c.hidden_size})`,
    );
  }
  const bad = v.fullatt_block_indexes.filter((i) => i >= v.depth);
  if (bad.length > 0) {
    add(
      'fullatt_block_indexes',
      `vision_config.fullatt_block_indexes [${bad.join(',')}] must be < depth (${v.depth}); blocks are numbered 0..${v.depth - 1}`,
    );
  }
  const side = Math.floor(Math.floor(v.window_size / v.spatial_merge_size) / v.patch_size);
  if (side < 1) {
    add(
      'window_size',
      `window side window_size//spatial_merge_size//patch_size = ${v.window_size}//${v.spatial_merge_size}//${v.patch_size} = ${side} must be >= 1; use window_size >= ${v.spatial_merge_size * v.patch_size}`,
    );
  }
  return out;
}

const schemas = new Map<string, z.ZodType<Qwen2_5_VLConfig>>();
/** The normalised-config schema; `ropeKey` only changes how the mrope_section error is worded. */
function configSchema(ropeKey: string): z.ZodType<Qwen2_5_VLConfig> {
  let s = schemas.get(ropeKey);
  if (!s) {
    s = z.object(TextShape).superRefine((c, ctx) => {
      for (const i of consistencyIssues(c as Qwen2_5_VLConfig, ropeKey)) {
        ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
      }
    }) as unknown as z.ZodType<Qwen2_5_VLConfig>;
    schemas.set(ropeKey, s);
  }
  return s;
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Reads the rope dict (rope_parameters or rope_scaling, nested text_config first) and checks its type. */
function ropeFields(top: Obj, text: Obj): { ropeKey: string; mrope_section: unknown; rope_theta: unknown } {
  for (const [scope, o] of [
    ['text_config.', text],
    ['', top],
  ] as const) {
    for (const key of ['rope_parameters', 'rope_scaling']) {
      const r = o[key];
      if (r === undefined || r === null) continue;
      const where = scope + key;
      if (!isObj(r))
        throw new Error(`${where} must be an object like {"type":"mrope","mrope_section":[16,24,24]}`);
      const kind = r.rope_type ?? r.type;
      if (kind !== undefined && kind !== 'mrope' && kind !== 'default') {
        throw new Error(
          `${where} type "${String(kind)}" is not supported: Qwen2.5-VL needs "mrope" (or rope_type "default" with mrope_section)`,
        );
      }
      return {
        ropeKey: where,
        mrope_section: r.mrope_section,
        rope_theta: r.rope_theta ?? text.rope_theta ?? top.rope_theta,
      };
    }
  }
  return { ropeKey: 'rope_scaling', mrope_section: undefined, rope_theta: text.rope_theta ?? top.rope_theta };
}

/** Flattens the Hub flat layout or the nested text_config/rope_parameters layout into the schema's input shape. */
function flattenLayout(json: Obj): { flat: Obj; ropeKey: string } {
  const text = isObj(json.text_config) ? json.text_config : {};
  const merged: Obj = { ...json, ...text };
  const rope = ropeFields(json, text);
  merged.mrope_section = rope.mrope_section;
  merged.rope_theta = rope.rope_theta;
  // Newer files keep the special token ids at the top level; older ones also in text_config. Top level wins.
  for (const k of ['image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id']) {
    if (json[k] !== undefined) merged[k] = json[k];
  }
  for (const k of ['bos_token_id', 'eos_token_id']) {
    if (Array.isArray(merged[k])) merged[k] = (merged[k] as unknown[])[0];
  }
  const v = isObj(json.vision_config) ? { ...json.vision_config } : json.vision_config;
  if (isObj(v) && v.in_channels === undefined && v.in_chans !== undefined) v.in_channels = v.in_chans;
  merged.vision_config = v;
  return { flat: merged, ropeKey: rope.ropeKey };
}

const warned = new Set<string>();
/** Prints each config warning once per process (a config is parsed again at every checkpoint load). */
function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.error(`warning: ${message}`);
}

function formatIssues(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues
    .map((i) => `  - ${i.path.length ? `${i.path.map(String).join('.')}: ` : ''}${i.message}`)
    .join('\n');
}

/**
 * Parses a Qwen2.5-VL config.json (Hub flat layout, or nested `text_config` + `rope_parameters`) into the normalised
 * shape. Inconsistent configs and misspelt keys (see config_keys.ts) throw one error listing every problem and how
 * to fix it; other unknown keys are reported through `warn` (default: once per process on stderr) and dropped.
 * @example
 * const cfg = parseConfig(JSON.parse(await readFile('models/tiny/config.json', 'utf8')));
 * headDim(cfg); // 16
 */
export function parseConfig(json: unknown, source = 'config', warn = warnOnce): Qwen2_5_VLConfig {
  if (!isObj(json))
    throw new Error(
      `${source}: a Qwen2.5-VL config must be a JSON object, got ${json === null ? 'null' : typeof json}`,
    );
  const keys = checkConfigKeys(json);
  for (const w of keys.warnings) warn(`${source}: ${w}`);
  const keyIssues = keys.errors.map((message) => ({ path: [] as PropertyKey[], message }));
  let flat: Obj;
  let ropeKey: string;
  try {
    ({ flat, ropeKey } = flattenLayout(json));
  } catch (e) {
    throw new Error(`${source}: invalid Qwen2.5-VL config:\n  - ${(e as Error).message}`);
  }
  const r = configSchema(ropeKey).safeParse(flat);
  if (!r.success) {
    const issues = r.error.issues.map((i) =>
      i.path[0] === 'mrope_section' && i.code !== 'custom' ? { ...i, path: [ropeKey, ...i.path] } : i,
    );
    throw new Error(`${source}: invalid Qwen2.5-VL config:\n${formatIssues([...keyIssues, ...issues])}`);
  }
  if (keyIssues.length > 0)
    throw new Error(`${source}: invalid Qwen2.5-VL config:\n${formatIssues(keyIssues)}`);
  return r.data;
}

/**
 * Reads and parses `<dir>/config.json` (or `dir` itself when it names a .json file).
 * @example const cfg = await loadConfig('models/qwen2.5-vl-3b');
 */
export async function loadConfig(dir: string): Promise<Qwen2_5_VLConfig> {
  const file = dir.endsWith('.json') ? dir : path.join(dir, 'config.json');
  let json: unknown;
  try {
    json = await readJsonFile(file, 'model config');
  } catch (e) {
    throw new Error(`${(e as Error).message}${file === dir ? '' : runFolderHint(dir)}`);
  }
  return parseConfig(json, file);
}

/** Text head dim Dh = hidden_size / num_attention_heads. @example headDim(tiny) // 16 */
export function headDim(cfg: Qwen2_5_VLConfig): number {
  return cfg.hidden_size / cfg.num_attention_heads;
}

/**
 * The Hub flat-layout config.json object for `cfg` (what HF `from_pretrained` reads), with `torch_dtype` set.
 * @example await writeFile('out/config.json', JSON.stringify(toHubConfig(cfg, 'bfloat16'), null, 2));
 */
export function toHubConfig(
  cfg: Qwen2_5_VLConfig,
  torchDtype: 'bfloat16' | 'float32',
): Record<string, unknown> {
  const { mrope_section, vision_config: v, ...text } = cfg;
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    attention_dropout: 0.0,
    initializer_range: 0.02,
    max_window_layers: cfg.num_hidden_layers,
    sliding_window: 32768,
    use_sliding_window: false,
    use_cache: true,
    vision_token_id: 151654,
    ...text,
    torch_dtype: torchDtype,
    vision_config: {
      ...v,
      in_chans: v.in_channels,
      spatial_patch_size: v.patch_size,
      torch_dtype: torchDtype,
    },
    rope_scaling: { type: 'mrope', mrope_section: [...mrope_section] },
  };
}

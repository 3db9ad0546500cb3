// Unknown-key check for Qwen2.5-VL config.json: a typo must not silently fall back to a default and change the
// outputs. Every key is one of: used by us (src/model/config.ts), an HF-compatible extra that real HF configs carry
// and we ignore (checked for values that would change the model, e.g. use_sliding_window: true), or unknown. An unknown
// key near a used key (`rms_norm_epsilon`, `windowsize`, `tie_word_embedings`) is an error naming the key it resembles;
// any other unknown key is a warning. Key lists follow transformers `configuration_qwen2_5_vl.py` (Qwen2_5_VLConfig,
// Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig) and `PretrainedConfig` (configuration_utils.py), and the keys of the
// Hub files for Qwen2.5-VL-3B/7B-Instruct (models/*/config.json).

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The config's special-token id keys (config.ts checks each is < vocab_size). */
export const TOKEN_ID_KEYS = [
  'bos_token_id',
  'eos_token_id',
  'image_token_id',
  'video_token_id',
  'vision_start_token_id',
  'vision_end_token_id',
] as const;

/** Text keys read by parseConfig (top level, or in text_config). */
const TEXT_USED = [
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'rms_norm_eps',
  'rope_theta',
  'vocab_size',
  'tie_word_embeddings',
  'max_position_embeddings',
  ...TOKEN_ID_KEYS,
  'hidden_act',
  'rope_scaling',
  'rope_parameters',
  'model_type',
];
const TOP_USED = [...TEXT_USED, 'text_config', 'vision_config'];
const VISION_USED = [
  'depth',
  'hidden_size',
  'num_heads',
  'intermediate_size',
  'patch_size',
  'temporal_patch_size',
  'spatial_merge_size',
  'in_channels',
  'in_chans',
  'window_size',
  'fullatt_block_indexes',
  'out_hidden_size',
  'tokens_per_second',
  'hidden_act',
  'model_type',
];
const ROPE_USED = ['type', 'rope_type', 'mrope_section', 'rope_theta'];

/** `PretrainedConfig` attributes every HF config may carry (serialised by `to_dict`); none changes our model. */
const PRETRAINED_EXTRAS = [
  'architectures',
  'transformers_version',
  'torch_dtype',
  'dtype',
  '_name_or_path',
  '_attn_implementation',
  '_attn_implementation_autoset',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'pruned_heads',
  'chunk_size_feed_forward',
  'is_encoder_decoder',
  'is_decoder',
  'cross_attention_hidden_size',
  'add_cross_attention',
  'tie_encoder_decoder',
  'finetuning_task',
  'id2label',
  'label2id',
  'num_labels',
  'tokenizer_class',
  'prefix',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'task_specific_params',
  'problem_type',
  'initializer_range',
  'use_cache',
];
/** Qwen2(-VL) text extras we do not use; `attention_dropout`/`use_sliding_window` are value-checked below. */
const TEXT_EXTRAS = [
  ...PRETRAINED_EXTRAS,
  'attention_dropout',
  'use_sliding_window',
  'sliding_window',
  'max_window_layers',
  'layer_types',
  'vision_token_id',
];
const VISION_EXTRAS = [...PRETRAINED_EXTRAS, 'spatial_patch_size', 'embed_dim', 'num_channels'];
const ROPE_EXTRAS = ['factor', 'original_max_position_embeddings'];

/** What the check found: errors stop the load, warnings are printed. */
export interface KeyReport {
  errors: string[];
  warnings: string[];
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

const squash = (k: string): string => k.toLowerCase().replace(/[_\-\s]/g, '');

/**
 * The known key `key` most likely stands for, or undefined: same letters ignoring case and `_`/`-` (`windowSize`),
 * an edit distance of 1 (2 for keys of 8+ characters), or one a prefix of the other (`rms_norm_epsilon`).
 * @example nearestKey('rms_norm_epsilon', ['rms_norm_eps', 'rope_theta']) // 'rms_norm_eps'
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { k: string; d: number } | undefined;
  const s = squash(key);
  for (const k of known) {
    const t = squash(k);
    const shorter = Math.min(s.length, t.length);
    let d = editDistance(s, t);
    if (d > (Math.max(s.length, t.length) >= 8 ? 2 : 1)) {
      const prefix = shorter >= 6 && (s.startsWith(t) || t.startsWith(s));
      if (!prefix) continue;
      d = 3; // a prefix match ranks after close spellings
    }
    if (!best || d < best.d) best = { k, d };
  }
  return best?.k;
}

/** Checks one object's keys against `used` and `extras`; `scope` prefixes key names in messages. */
function checkScope(o: Obj, scope: string, used: string[], extras: string[], out: KeyReport): void {
  for (const key of Object.keys(o)) {
    if (used.includes(key) || extras.includes(key)) continue;
    const name = `${scope}${key}`;
    const near = nearestKey(key, used);
    if (near !== undefined) {
      out.errors.push(
        `unknown key '${name}': did you mean '${scope}${near}'? (a misspelt key would silently fall back to the default)`,
      );
      continue;
    }
    const extra = nearestKey(key, extras);
    out.warnings.push(
      extra
        ? `unknown key '${name}' ignored (did you mean '${scope}${extra}'? that one is ignored too)`
        : `unknown key '${name}' ignored: not a Qwen2.5-VL config key`,
    );
  }
}

/** Values of HF extras (and model_type / architectures) that mean a model we do not implement. */
function checkValues(top: Obj, text: Obj, vision: Obj, out: KeyReport): void {
  for (const [scope, o, want] of [
    ['', top, ['qwen2_5_vl']],
    ['text_config.', text, ['qwen2_5_vl_text', 'qwen2_5_vl']],
    ['vision_config.', vision, ['qwen2_5_vl', 'qwen2_5_vl_vision']],
  ] as const) {
    const t = o.model_type;
    if (t !== undefined && !(want as readonly string[]).includes(t as string)) {
      const hint = t === 'qwen2_vl' ? ' (that is Qwen2-VL, whose vision tower differs)' : '';
      out.errors.push(
        `${scope}model_type is ${JSON.stringify(t)}${hint}: only Qwen2.5-VL ("${want[0]}") is implemented`,
      );
    }
  }
  const arch = top.architectures;
  if (Array.isArray(arch) && arch.length > 0 && !arch.some((a) => String(a).startsWith('Qwen2_5_VL'))) {
    out.warnings.push(
      `architectures ${JSON.stringify(arch)} names no Qwen2_5_VL class; loading it as Qwen2_5_VLForConditionalGeneration`,
    );
  }
  for (const [scope, o] of [
    ['', top],
    ['text_config.', text],
  ] as const) {
    if (o.use_sliding_window === true)
      out.warnings.push(
        `${scope}use_sliding_window is true but sliding-window attention is not implemented: full causal attention is used`,
      );
    if (typeof o.attention_dropout === 'number' && o.attention_dropout !== 0)
      out.warnings.push(`${scope}attention_dropout ${o.attention_dropout} is ignored (no dropout here)`);
  }
  const sps = vision.spatial_patch_size;
  if (sps !== undefined && vision.patch_size !== undefined && sps !== vision.patch_size)
    out.warnings.push(
      `vision_config.spatial_patch_size (${sps}) differs from patch_size (${vision.patch_size}); patch_size is used, as in HF`,
    );
  const inC = vision.in_channels;
  if (inC !== undefined && vision.in_chans !== undefined && inC !== vision.in_chans)
    out.warnings.push(
      `vision_config.in_chans (${vision.in_chans}) differs from in_channels (${inC}); in_channels is used`,
    );
}

/**
 * Reports unknown and suspicious keys of a config.json object (flat Hub layout or nested text_config /
 * rope_parameters). Errors: a near-miss of a key we read, a model_type other than Qwen2.5-VL. Warnings: other
 * unknown keys, HF extras set to values we do not implement.
 * @example checkConfigKeys({ rms_norm_epsilon: 1e-6 }).errors[0] // "unknown key 'rms_norm_epsilon': did you mean 'rms_norm_eps'? ..."
 */
export function checkConfigKeys(json: Obj): KeyReport {
  const out: KeyReport = { errors: [], warnings: [] };
  const text = isObj(json.text_config) ? json.text_config : {};
  const vision = isObj(json.vision_config) ? json.vision_config : {};
  checkScope(json, '', TOP_USED, TEXT_EXTRAS, out);
  checkScope(text, 'text_config.', TEXT_USED, TEXT_EXTRAS, out);
  checkScope(vision, 'vision_config.', VISION_USED, VISION_EXTRAS, out);
  for (const [scope, o] of [
    ['', json],
    ['text_config.', text],
  ] as const) {
    for (const k of ['rope_scaling', 'rope_parameters']) {
      if (isObj(o[k])) checkScope(o[k] as Obj, `${scope}${k}.`, ROPE_USED, ROPE_EXTRAS, out);
    }
  }
  checkValues(json, text, vision, out);
  return out;
}

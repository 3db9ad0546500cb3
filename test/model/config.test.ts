// Config parsing: both layouts, defaults, spec §1.2 rejections, param shapes and the published parameter counts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { headDim, loadConfig, parseConfig, toHubConfig } from '../../src/model/config.js';
import { countParams, describeConfig, paramShapes } from '../../src/model/params.js';
import { FIXTURE, ROOT } from '../helpers.js';

const hub3b = (): Record<string, any> =>
  JSON.parse(readFileSync(path.join(ROOT, 'models/qwen2.5-vl-3b/config.json'), 'utf8'));
const tinyJson = (): Record<string, any> =>
  JSON.parse(readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));

/** The error message of parseConfig(json), or '' if it parsed. */
function errorOf(json: unknown): string {
  try {
    parseConfig(json);
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('published configs', () => {
  it('3B and 7B parameter counts equal the published sizes (shape-only)', async () => {
    const c3 = await loadConfig(path.join(ROOT, 'models/qwen2.5-vl-3b'));
    const c7 = await loadConfig(path.join(ROOT, 'models/qwen2.5-vl-7b'));
    expect(countParams(c3)).toBe(3_754_622_976);
    expect(countParams(c7)).toBe(8_292_166_656);
    expect(c3.tie_word_embeddings).toBe(true);
    expect(c7.tie_word_embeddings).toBe(false);
    expect(headDim(c3)).toBe(128);
    expect(headDim(c7)).toBe(128);
  });

  it('3B shapes follow spec §6.1; tied 3B has no lm_head, 7B has one', async () => {
    const s3 = paramShapes(await loadConfig(path.join(ROOT, 'models/qwen2.5-vl-3b')));
    const s7 = paramShapes(await loadConfig(path.join(ROOT, 'models/qwen2.5-vl-7b')));
    expect(s3.get('visual.patch_embed.proj.weight')).toEqual([1280, 3, 2, 14, 14]);
    expect(s3.get('visual.blocks.31.attn.qkv.weight')).toEqual([3840, 1280]);
    expect(s3.get('visual.blocks.0.mlp.down_proj.weight')).toEqual([1280, 3420]);
    expect(s3.get('visual.merger.mlp.0.weight')).toEqual([5120, 5120]);
    expect(s3.get('visual.merger.mlp.2.weight')).toEqual([2048, 5120]);
    expect(s3.get('model.layers.35.self_attn.k_proj.weight')).toEqual([256, 2048]);
    expect(s7.get('model.layers.27.self_attn.v_proj.bias')).toEqual([512]);
    expect(s3.get('model.embed_tokens.weight')).toEqual([151936, 2048]);
    expect(s3.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    expect(s3.has('visual.patch_embed.proj.bias')).toBe(false);
    expect(s3.has('lm_head.weight')).toBe(false);
    expect(s7.get('lm_head.weight')).toEqual([152064, 3584]);
  });

  it('models/tiny equals the fixture config and has its 80 tensors', async () => {
    const shipped = await loadConfig(path.join(ROOT, 'models/tiny'));
    const fixture = await loadConfig(FIXTURE);
    expect(shipped).toEqual(fixture);
    expect(paramShapes(fixture).size).toBe(80);
    // 9,903,008 params x 2 bytes = the fixture index's total_size (19,806,016).
    expect(countParams(fixture) * 2).toBe(19_806_016);
    expect(describeConfig(fixture)).toContain('D=64 L=2 H=4/2 Dh=16');
  });
});

describe('parseConfig layouts', () => {
  it('reads the fixture (flat) layout with HF names, strips unknown keys', () => {
    const c = parseConfig(tinyJson());
    expect(c.mrope_section).toEqual([2, 3, 3]);
    expect(c.vision_config.in_channels).toBe(3);
    expect(c.vision_config.fullatt_block_indexes).toEqual([1, 3]);
    expect(c.rms_norm_eps).toBe(1e-6);
    expect(c.image_token_id).toBe(151655);
    expect(c).not.toHaveProperty('sliding_window');
    expect(c).not.toHaveProperty('rope_scaling');
    expect(c.vision_config).not.toHaveProperty('in_chans');
  });

  it('nested text_config + rope_parameters (rope_type default) gives the same config', () => {
    const flat = hub3b();
    const { vision_config, rope_scaling, rope_theta, image_token_id, video_token_id, ...text } = flat;
    const nested = {
      model_type: 'qwen2_5_vl',
      image_token_id,
      video_token_id,
      vision_config: { ...vision_config, in_channels: 3, in_chans: undefined },
      text_config: {
        ...text,
        rope_parameters: { rope_type: 'default', rope_theta, mrope_section: rope_scaling.mrope_section },
      },
    };
    expect(parseConfig(nested)).toEqual(parseConfig(flat));
  });

  it('accepts rope_scaling {rope_type: default, type: default}, and eos as a list', () => {
    const j = hub3b();
    j.rope_scaling = { rope_type: 'default', type: 'default', mrope_section: [16, 24, 24] };
    j.eos_token_id = [151645, 151643];
    const c = parseConfig(j);
    expect(c.mrope_section).toEqual([16, 24, 24]);
    expect(c.eos_token_id).toBe(151645);
  });

  it('rope_parameters.rope_theta (transformers v5) wins over a top-level rope_theta', () => {
    const j = hub3b();
    j.rope_scaling = null;
    j.rope_parameters = { rope_type: 'default', rope_theta: 5e5, mrope_section: [16, 24, 24] };
    expect(parseConfig(j).rope_theta).toBe(5e5);
  });

  it('applies the documented class defaults only (rms_norm_eps 1e-5, tokens_per_second 4, tie false)', () => {
    const j = hub3b();
    delete j.rms_norm_eps;
    delete j.tie_word_embeddings;
    delete j.vision_config.tokens_per_second;
    delete j.vision_config.in_chans;
    const c = parseConfig(j);
    expect(c.rms_norm_eps).toBe(1e-5);
    expect(c.tie_word_embeddings).toBe(false);
    expect(c.vision_config.tokens_per_second).toBe(4);
    expect(c.vision_config.in_channels).toBe(3);
  });

  it('requires shape-defining fields (no 8192-wide class default)', () => {
    const j = hub3b();
    delete j.hidden_size;
    delete j.vision_config.depth;
    const msg = errorOf(j);
    expect(msg).toMatch(/hidden_size/);
    expect(msg).toMatch(/vision_config\.depth/);
    const k = hub3b();
    delete k.rope_scaling;
    expect(errorOf(k)).toMatch(/rope_scaling\.mrope_section/);
  });

  it('toHubConfig round-trips through parseConfig and is the flat Hub layout', () => {
    const c = parseConfig(tinyJson());
    const hub = toHubConfig(c, 'bfloat16');
    expect(parseConfig(hub)).toEqual(c);
    expect(hub.torch_dtype).toBe('bfloat16');
    expect(hub.rope_scaling).toEqual({ type: 'mrope', mrope_section: [2, 3, 3] });
    expect((hub.vision_config as any).in_chans).toBe(3);
    expect(hub.architectures).toEqual(['Qwen2_5_VLForConditionalGeneration']);
  });
});

describe('parseConfig rejections (spec §1.2) say what to fix', () => {
  const tiny = tinyJson;
  it('mrope_section sum', () => {
    const j = tiny();
    j.rope_scaling.mrope_section = [2, 3, 4];
    expect(errorOf(j)).toContain(
      'rope_scaling.mrope_section [2,3,4] sums to 9 but must equal head_dim/2 = 8 (head_dim = hidden_size/num_attention_heads = 64/4)',
    );
  });
  it('the rope key in the message follows the layout', () => {
    const j = tiny();
    j.text_config = { rope_parameters: { rope_type: 'default', mrope_section: [1, 1, 1] } };
    expect(errorOf(j)).toContain('text_config.rope_parameters.mrope_section [1,1,1] sums to 3');
  });
  it('hidden % heads, even head dim, heads % kv', () => {
    expect(errorOf({ ...tiny(), num_attention_heads: 5 })).toContain(
      'hidden_size (64) must be divisible by num_attention_heads (5)',
    );
    expect(errorOf({ ...tiny(), hidden_size: 60, num_attention_heads: 4 })).toContain('= 15 must be even');
    expect(errorOf({ ...tiny(), num_key_value_heads: 3 })).toContain(
      'num_attention_heads (4) must be divisible by num_key_value_heads (3)',
    );
  });
  it('vision head dim % 4, out_hidden_size, fullatt indexes, window side', () => {
    const v = (patch: object) => ({ ...tiny(), vision_config: { ...tiny().vision_config, ...patch } });
    expect(errorOf(v({ hidden_size: 24, num_heads: 4 }))).toContain(
      'vision head dim = hidden_size/num_heads = 24/4 = 6',
    );
    expect(errorOf(v({ num_heads: 8 }))).toBe(''); // Dhv = 4 is allowed
    expect(errorOf(v({ num_heads: 16 }))).toContain('= 2 must be a multiple of 4');
    expect(errorOf(v({ num_heads: 5 }))).toContain('vision_config.hidden_size (32) must be divisible by');
    expect(errorOf(v({ out_hidden_size: 32 }))).toContain(
      'vision_config.out_hidden_size (32) must equal the text hidden_size (64)',
    );
    expect(errorOf(v({ fullatt_block_indexes: [1, 4, 7] }))).toContain(
      'fullatt_block_indexes [4,7] must be < depth (4)',
    );
    expect(errorOf(v({ window_size: 27 }))).toContain('use window_size >= 28');
  });
  it('token ids < vocab_size, rope type, activation, non-object', () => {
    expect(errorOf({ ...tiny(), vocab_size: 151000 })).toMatch(
      /image_token_id \(151655\) must be < vocab_size \(151000\)/,
    );
    expect(errorOf({ ...tiny(), rope_scaling: { type: 'yarn', mrope_section: [2, 3, 3] } })).toContain(
      'rope_scaling type "yarn" is not supported',
    );
    expect(errorOf({ ...tiny(), hidden_act: 'gelu' })).toMatch(/hidden_act: only "silu"/);
    expect(errorOf([1, 2])).toContain('must be a JSON object');
  });
  it('lists every problem in one error', () => {
    const msg = errorOf({ ...tiny(), num_key_value_heads: 3, vocab_size: 100 });
    expect(msg).toContain('num_key_value_heads');
    expect(msg).toContain('bos_token_id (151643) must be < vocab_size (100)');
  });
});

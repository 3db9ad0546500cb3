// config.json key check: the silent typos of issue #19 item 6 are errors naming the intended key, the real Hub and
// fixture configs load without a single warning, unknown extras warn, model_type other than Qwen2.5-VL is refused.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/model/config.js';
import { checkConfigKeys, editDistance, nearestKey } from '../../src/model/config_keys.js';
import { FIXTURE, ROOT } from '../helpers.js';

const REAL = [
  path.join(ROOT, 'models/qwen2.5-vl-3b/config.json'),
  path.join(ROOT, 'models/qwen2.5-vl-7b/config.json'),
  path.join(ROOT, 'models/tiny/config.json'),
  path.join(ROOT, 'models/demo/config.json'),
  path.join(FIXTURE, 'config.json'),
];
const tiny = (): Record<string, any> => JSON.parse(readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));

/** parseConfig's error message ('' when it parsed) and its warnings. */
function parse(json: unknown): { error: string; warnings: string[] } {
  const warnings: string[] = [];
  try {
    parseConfig(json, 'cfg.json', (w) => warnings.push(w));
    return { error: '', warnings };
  } catch (e) {
    return { error: (e as Error).message, warnings };
  }
}

describe('edit distance and nearest key', () => {
  it('counts edits and adjacent swaps', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('abcd', 'abdc')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });
  it('finds the key a typo stands for, and nothing for unrelated keys', () => {
    const keys = ['rms_norm_eps', 'rope_theta', 'window_size', 'tie_word_embeddings', 'bos_token_id'];
    expect(nearestKey('rms_norm_epsilon', keys)).toBe('rms_norm_eps');
    expect(nearestKey('windowsize', keys)).toBe('window_size');
    expect(nearestKey('windowSize', keys)).toBe('window_size');
    expect(nearestKey('tie_word_embedings', keys)).toBe('tie_word_embeddings');
    expect(nearestKey('rope_theeta', keys)).toBe('rope_theta');
    expect(nearestKey('my_custom_flag', keys)).toBeUndefined();
    expect(nearestKey('foo', keys)).toBeUndefined();
  });
});

describe('checkConfigKeys on real configs', () => {
  it.each(REAL)('%s: no error and no warning', (file) => {
    const r = checkConfigKeys(JSON.parse(readFileSync(file, 'utf8')));
    expect(r).toEqual({ errors: [], warnings: [] });
  });
});

describe('parseConfig refuses the typos of issue #19', () => {
  it.each([
    [
      'rms_norm_epsilon',
      (j: any) => (j.rms_norm_epsilon = 1e-6),
      "'rms_norm_epsilon': did you mean 'rms_norm_eps'?",
    ],
    [
      'vision_config.windowsize',
      (j: any) => (j.vision_config.windowsize = 56),
      "'vision_config.windowsize': did you mean 'vision_config.window_size'?",
    ],
    [
      'tie_word_embedings',
      (j: any) => (j.tie_word_embedings = true),
      "'tie_word_embedings': did you mean 'tie_word_embeddings'?",
    ],
    [
      'text_config.num_hiden_layers',
      (j: any) => (j.text_config = { num_hiden_layers: 3 }),
      "'text_config.num_hiden_layers': did you mean 'text_config.num_hidden_layers'?",
    ],
    [
      'rope_scaling.mrope_sections',
      (j: any) => (j.rope_scaling.mrope_sections = [1, 1, 2]),
      "'rope_scaling.mrope_sections': did you mean 'rope_scaling.mrope_section'?",
    ],
  ])('%s', (_name, edit, msg) => {
    const j = tiny();
    edit(j);
    const { error } = parse(j);
    expect(error).toContain('cfg.json: invalid Qwen2.5-VL config');
    expect(error).toContain(msg);
  });

  it('lists a typo together with the schema problem it causes', () => {
    const j = tiny();
    j.hidden_sise = j.hidden_size;
    delete j.hidden_size;
    const { error } = parse(j);
    expect(error).toContain("'hidden_sise': did you mean 'hidden_size'?");
    expect(error).toContain('hidden_size: Invalid input: expected number');
  });

  it.each([
    ['llama', 'only Qwen2.5-VL ("qwen2_5_vl") is implemented'],
    ['qwen2_vl', 'that is Qwen2-VL'],
  ])('model_type %s is refused', (t, msg) => {
    const j = tiny();
    j.model_type = t;
    expect(parse(j).error).toContain(`model_type is "${t}"`);
    expect(parse(j).error).toContain(msg);
  });

  it('loadConfig names the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-cfg-'));
    const j = tiny();
    j.rms_norm_epsilon = 1e-6;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(j));
    await expect(loadConfig(dir)).rejects.toThrow(
      `${path.join(dir, 'config.json')}: invalid Qwen2.5-VL config:\n  - unknown key 'rms_norm_epsilon'`,
    );
  });
});

describe('warnings', () => {
  it('an unrelated unknown key warns and the config still parses', () => {
    const j = tiny();
    j.my_note = 'trained on cats';
    const { error, warnings } = parse(j);
    expect(error).toBe('');
    expect(warnings).toEqual(["cfg.json: unknown key 'my_note' ignored: not a Qwen2.5-VL config key"]);
  });

  it('HF extras with values we do not implement warn; at their neutral values they are silent', () => {
    const j = tiny();
    expect(parse(j).warnings).toEqual([]);
    j.use_sliding_window = true;
    j.attention_dropout = 0.1;
    j.vision_config.spatial_patch_size = 16;
    const { error, warnings } = parse(j);
    expect(error).toBe('');
    expect(warnings.join('\n')).toMatch(
      /use_sliding_window is true but sliding-window attention is not implemented/,
    );
    expect(warnings.join('\n')).toMatch(/attention_dropout 0.1 is ignored/);
    expect(warnings.join('\n')).toMatch(/spatial_patch_size \(16\) differs from patch_size \(14\)/);
  });

  it('a typo of an ignored HF extra warns, naming it', () => {
    const j = tiny();
    j.use_sliding_windows = false;
    expect(parse(j).warnings).toEqual([
      "cfg.json: unknown key 'use_sliding_windows' ignored (did you mean 'use_sliding_window'? that one is ignored too)",
    ]);
  });
});

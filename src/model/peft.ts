// LoRA adapters in PEFT's file layout: `adapter_config.json` + `adapter_model.safetensors`, what
// `peft.PeftModel.from_pretrained`, transformers `load_adapter`, vLLM (`--enable-lora`, `/v1/load_lora_adapter`) and
// SGLang load. Mirrors peft `utils/save_and_load.py` (`get_peft_model_state_dict`: keys
// `base_model.model.<module>.lora_A.weight` [r, in] / `.lora_B.weight` [out, r], the adapter name dropped) and
// `tuners/lora/config.py` (LoraConfig fields).
//
// Key layout. We WRITE the module paths of transformers < 4.52 (`model.layers.*`, `visual.*`: the Hub checkpoint layout
// the library reads and writes). transformers >= 4.52 names the modules `model.language_model.layers.*` /
// `model.visual.*`; PEFT >= 0.16 (huggingface/peft#2574) maps old adapter keys onto the new modules on load, the reverse
// does not work, so the old layout is the one that loads everywhere. We READ both layouts. `target_modules` is written
// as a regular expression that PEFT fullmatches against module names of either layout (a plain list such as
// ["gate_proj"] would also select the vision tower's MLP, which an LM-only adapter must not touch).
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { toLegacyName } from '../io/checkpoint.js';
import { readSafetensors, writeSafetensorsFrom } from '../io/safetensors.js';
import type { Qwen2_5_VLConfig } from './config.js';
import type { Params } from './layers.js';
import { attachAdapter, detachAdapter, LoraAdapter, LoraConfig, linearModules, loraKeys } from './lora.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT's prefix of every adapter tensor (PeftModel.base_model.model = the transformers model). */
const PREFIX = 'base_model.model.';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The `target_modules` regex for the adapted modules, valid for both key layouts.
 * @example targetRegex(['model.layers.0.self_attn.q_proj']) // '(?:model\\.(?:language_model\\.)?layers\\.\\d+\\.self_attn\\.(?:q_proj))'
 */
export function targetRegex(modules: string[]): string {
  const groups = new Map<string, Set<string>>();
  for (const m of modules) {
    const parts = m.split('.');
    const leaf = parts.pop() as string;
    const lm = /^model\.layers\.\d+\.(\w+)$/.exec(parts.join('.'));
    const vis = /^visual\.blocks\.\d+\.(\w+)$/.exec(parts.join('.'));
    const head = lm
      ? `model\\.(?:language_model\\.)?layers\\.\\d+\\.${lm[1]}`
      : vis
        ? `(?:model\\.)?visual\\.blocks\\.\\d+\\.${vis[1]}`
        : `(?:model\\.)?${esc(parts.join('.'))}`;
    if (!groups.has(head)) groups.set(head, new Set());
    groups.get(head)?.add(leaf);
  }
  return [...groups].map(([h, leaves]) => `(?:${h}\\.(?:${[...leaves].sort().join('|')}))`).join('|');
}

/** The adapter_config.json object PEFT 0.15 writes for a LoRA adapter (fields it does not know are not written). */
export function peftConfigJson(adapter: LoraAdapter, baseModel: string): Record<string, unknown> {
  const c = adapter.config;
  return {
    alpha_pattern: {},
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: targetRegex(adapter.modules()),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.rslora,
  };
}

/**
 * Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (F32, PEFT keys, legacy layout); atomic per file.
 * @example await saveAdapter('out/adapter', lora, { baseModel: 'Qwen/Qwen2.5-VL-7B-Instruct' });
 */
export async function saveAdapter(
  dir: string,
  adapter: LoraAdapter,
  opts: { baseModel?: string; dtype?: 'F32' | 'BF16' } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const sources = Object.entries(adapter.tensors).map(([k, t]) => ({
    name: `${PREFIX}${k}`,
    dtype: 'float32' as const,
    shape: t.shape,
    data: async () => (await t.data()) as Float32Array,
  }));
  await writeSafetensorsFrom(path.join(dir, ADAPTER_WEIGHTS), sources, { dtype: opts.dtype ?? 'F32' });
  const json = `${JSON.stringify(peftConfigJson(adapter, opts.baseModel ?? ''), null, 2)}\n`;
  const tmp = path.join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  await writeFile(tmp, json);
  await rename(tmp, path.join(dir, ADAPTER_CONFIG));
}

/** Whether a folder holds a PEFT adapter (adapter_config.json), not full weights. */
export const holdsAdapter = (dir: string): Promise<boolean> =>
  stat(path.join(dir, ADAPTER_CONFIG)).then(
    () => true,
    () => false,
  );

type PeftJson = Record<string, unknown>;

/** Refuses PEFT features this implementation does not compute, naming the field. */
function checkSupported(json: PeftJson, file: string): void {
  const bad: string[] = [];
  if (json.peft_type !== 'LORA') bad.push(`peft_type ${JSON.stringify(json.peft_type)} (only "LORA")`);
  if ((json.bias ?? 'none') !== 'none') bad.push(`bias ${JSON.stringify(json.bias)} (only "none")`);
  if (json.use_dora) bad.push('use_dora true (DoRA)');
  if (json.fan_in_fan_out) bad.push('fan_in_fan_out true');
  if (json.modules_to_save) bad.push(`modules_to_save ${JSON.stringify(json.modules_to_save)}`);
  for (const k of ['rank_pattern', 'alpha_pattern'])
    if (json[k] && Object.keys(json[k] as object).length > 0)
      bad.push(`${k} ${JSON.stringify(json[k])} (one r and alpha for all)`);
  if (json.lora_bias) bad.push('lora_bias true');
  if (bad.length > 0) throw new Error(`${file}: unsupported PEFT settings: ${bad.join('; ')}`);
}

/** `base_model.model.<module>.lora_A.weight` (either layout) → legacy `<module>` and which matrix; null otherwise. */
export function parsePeftKey(key: string): { module: string; which: 'A' | 'B' } | null {
  const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(key);
  if (!m) return null;
  return { module: toLegacyName(`${m[1]}.weight`).slice(0, -'.weight'.length), which: m[2] as 'A' | 'B' };
}

/**
 * Reads a PEFT LoRA adapter folder into a {@link LoraAdapter} for `cfg` (Variables, float32), either key layout.
 * Every tensor must be a lora_A/lora_B of a linear of this model with rank `r`; one error lists every problem.
 * @example const lora = await loadAdapter('runs/a/adapter', model.config); attachAdapter(model.params, lora);
 */
export async function loadAdapter(dir: string, cfg: Qwen2_5_VLConfig): Promise<LoraAdapter> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const json = JSON.parse(
    await readFile(cfgFile, 'utf8').catch(() => {
      throw new Error(
        `${cfgFile} not found: expected a PEFT adapter folder (adapter_config.json + ${ADAPTER_WEIGHTS})`,
      );
    }),
  ) as PeftJson;
  checkSupported(json, cfgFile);
  const r = Number(json.r);
  const host = await readSafetensors(path.join(dir, ADAPTER_WEIGHTS));
  const all = linearModules(cfg);
  const problems: string[] = [];
  const found = new Map<string, { A?: Float32Array; B?: Float32Array }>();
  for (const [key, t] of host) {
    const p = parsePeftKey(key);
    const shape = all.get(p?.module ?? '');
    if (!p || !shape) {
      problems.push(`unexpected tensor ${key} [${t.shape}] (not lora_A/lora_B of a linear of this model)`);
      continue;
    }
    const want = p.which === 'A' ? [r, shape[1]] : [shape[0], r];
    if (t.shape.join() !== want.join())
      problems.push(`mis-shaped: ${key} [${t.shape}], want [${want}] (r ${r})`);
    const e = found.get(p.module) ?? {};
    e[p.which] = t.data as Float32Array;
    found.set(p.module, e);
  }
  for (const [m, e] of found) if (!e.A || !e.B) problems.push(`${m}: lora_${e.A ? 'B' : 'A'} missing`);
  if (found.size === 0) problems.push('no lora_A/lora_B tensors');
  if (problems.length > 0)
    throw new Error(`${dir}: adapter does not fit this model:\n  ${problems.join('\n  ')}`);
  const modules = [...found.keys()];
  const config = LoraConfig.parse({
    r,
    alpha: Number(json.lora_alpha ?? r),
    dropout: Number(json.lora_dropout ?? 0),
    rslora: Boolean(json.use_rslora),
    targetModules: [...modules],
    vision: modules.some((m) => m.startsWith('visual.')),
  });
  const tensors: Record<string, tf.Variable> = {};
  for (const m of modules) {
    const k = loraKeys(m);
    const shape = all.get(m) as number[];
    const e = found.get(m) as { A: Float32Array; B: Float32Array };
    tensors[k.a] = tf.tidy(() => tf.variable(tf.tensor2d(e.A, [r, shape[1]]), true));
    tensors[k.b] = tf.tidy(() => tf.variable(tf.tensor2d(e.B, [shape[0], r]), true));
  }
  return new LoraAdapter(config, tensors);
}

/**
 * Assigns the tensors of a PEFT adapter folder into an existing adapter's Variables (keeping their identity, so an
 * optimizer bound to them stays valid): the resume of a LoRA run. The folder must hold the same modules and rank.
 * @example await restoreAdapter(lora, 'runs/a/checkpoint-00000020', model.config);
 */
export async function restoreAdapter(target: LoraAdapter, dir: string, cfg: Qwen2_5_VLConfig): Promise<void> {
  const loaded = await loadAdapter(dir, cfg);
  try {
    const want = Object.keys(target.tensors).sort();
    const got = Object.keys(loaded.tensors).sort();
    if (want.join() !== got.join() || loaded.config.r !== target.config.r) {
      throw new Error(
        `${dir}: adapter has ${got.length / 2} modules at r ${loaded.config.r}, the run has ${want.length / 2} at r ${target.config.r}; resume with the same lora settings`,
      );
    }
    for (const k of want) (target.tensors[k] as tf.Variable).assign(loaded.tensors[k]);
  } finally {
    loaded.dispose();
  }
}

/**
 * Serves the PEFT adapter folder `dir` on `model` in place of the one it carries: reads and checks every tensor
 * first (a bad folder throws naming the folder and the problem, leaving the current adapter and the base weights
 * untouched), then detaches and disposes the previous adapter and attaches the new one. One adapter at a time: this
 * is the loader of `ovr-train serve` and of the owned LocalEngine.
 * @example const lora = await swapAdapter(model, 'runs/a/rollout-weights/v00000012');
 */
export async function swapAdapter(
  model: { params: Params; config: Qwen2_5_VLConfig },
  dir: string,
): Promise<LoraAdapter> {
  let next: LoraAdapter;
  try {
    next = await loadAdapter(dir, model.config);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.includes(dir) ? msg : `${dir}: ${msg}`);
  }
  const prev = detachAdapter(model.params);
  try {
    attachAdapter(model.params, next);
  } catch (e) {
    next.dispose();
    if (prev) attachAdapter(model.params, prev);
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
  prev?.dispose();
  return next;
}

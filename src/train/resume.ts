// The resume guard shared by every trainer: a resumed run must be the run that was started, so any setting that
// changes what is trained (seed, data files, batch and generation sizes, lr, temperature, ...) must equal the
// checkpoint's saved config, unless the user overrides on purpose (`allowConfigChange`, `--allow-config-change`).
// Settings that only change bookkeeping (how long, how often to log/save/eval, where, which backend) may change.
// Follows HF Trainer's resume_from_checkpoint (which warns) made strict, as STYLE.md asks ("nothing silent").

/**
 * Config keys (dotted paths) a resume may change: run length, cadence of logging/saving/evaluation, the run folder,
 * the backend, reward parallelism, the override flag itself.
 */
export const RESUME_FREE_KEYS: ReadonlySet<string> = new Set([
  'steps',
  'epochs',
  'outDir',
  'resume',
  'allowConfigChange',
  'logEvery',
  'saveEvery',
  'keepLast',
  'evalEvery',
  'backend',
  'maxConsecutiveNonFinite',
  'data.eval',
  'reward.workers',
]);

/** Leaves of a plain JSON object as dotted paths (arrays are one leaf). */
function leaves(x: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
    for (const [k, v] of Object.entries(x)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out.set(prefix, x);
  return out;
}

/**
 * Settings that differ between a checkpoint's saved config and the current one, as `name was A, now B`, skipping
 * {@link RESUME_FREE_KEYS} and keys the saved config does not have (written by an older version).
 * @example resumeMismatches({ batchSize: 2 }, { batchSize: 4 }) // ['batchSize was 2, now 4']
 */
export function resumeMismatches(saved: unknown, now: unknown): string[] {
  const a = leaves(saved);
  const b = leaves(JSON.parse(JSON.stringify(now ?? {})));
  const out: string[] = [];
  for (const [k, v] of a) {
    if (RESUME_FREE_KEYS.has(k)) continue;
    const w = b.get(k);
    if (JSON.stringify(v) !== JSON.stringify(w))
      out.push(`${k} was ${JSON.stringify(v)}, now ${w === undefined ? 'unset' : JSON.stringify(w)}`);
  }
  return out;
}

/**
 * Throws when a resume would change the run (see {@link resumeMismatches}), naming each setting with its old and new
 * value and the override; with `allow`, returns the changes so the caller can report them.
 * @example const changed = checkResumeConfig(dir, saved, cfg, cfg.allowConfigChange);
 */
export function checkResumeConfig(dir: string, saved: unknown, now: unknown, allow: boolean): string[] {
  const changed = resumeMismatches(saved, now);
  if (changed.length > 0 && !allow) {
    throw new Error(
      `resume from ${dir}: ${changed.join('; ')}. These settings change the run, so it would not continue as ` +
        'it started: use the saved values, pass --allow-config-change (allowConfigChange: true) to continue with ' +
        'the new ones on purpose, or start a fresh run in another outDir',
    );
  }
  return changed;
}

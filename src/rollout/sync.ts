// Weight folders for engine syncs, written atomically: everything goes into a temporary sibling folder, which is
// renamed to `<root>/v<version>` only when complete, so an engine never reads a half-written folder and a crash
// leaves at most a `.tmp-*` folder (removed on the next write). Older versions are pruned after a successful sync.
// Follows the checkpoint writer's rename-into-place (src/train/state.ts saveTrainState).
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

const TMP = '.tmp-v';

/** Folder of a version: `<root>/v00000012`. */
export const syncDirName = (root: string, version: number): string =>
  path.join(root, `v${String(version).padStart(8, '0')}`);

/**
 * Writes version `version` with `write(tmpDir)` and renames it into place; returns the final folder (absolute).
 * @example const dir = await writeSyncDir('runs/a/rollout-weights', 12, (d) => saveWeights(d, model.params, model.config));
 */
export async function writeSyncDir(
  root: string,
  version: number,
  write: (dir: string) => Promise<unknown>,
): Promise<string> {
  const abs = path.resolve(root);
  await mkdir(abs, { recursive: true });
  for (const e of await readdir(abs))
    if (e.startsWith(TMP)) await rm(path.join(abs, e), { recursive: true, force: true });
  const final = syncDirName(abs, version);
  const tmp = path.join(abs, `${TMP}${version}-${process.pid}`);
  try {
    await mkdir(tmp);
    await write(tmp);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}

/** Removes version folders other than `keep` (absolute paths). */
export async function pruneSyncDirs(root: string, keep: string[]): Promise<void> {
  const abs = path.resolve(root);
  const kept = new Set(keep.map((k) => path.resolve(k)));
  for (const e of await readdir(abs).catch(() => [] as string[])) {
    const full = path.join(abs, e);
    if (/^v\d{8}$/.test(e) && !kept.has(full)) await rm(full, { recursive: true, force: true });
  }
}

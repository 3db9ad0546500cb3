// writeSyncDir / pruneSyncDirs on a temp folder: a complete write lands as v<version>, a failing writer leaves
// neither a final nor a temporary folder (and the previous version untouched), a stale temp folder is cleaned.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pruneSyncDirs, writeSyncDir } from '../../src/rollout/sync.js';

let root: string;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('sync folders', () => {
  it('writes atomically, keeps the old version on failure, prunes', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'ovr-sync-'));
    const v1 = await writeSyncDir(root, 1, (d) => writeFile(path.join(d, 'w'), 'one'));
    expect(path.basename(v1)).toBe('v00000001');
    await expect(
      writeSyncDir(root, 2, async (d) => {
        await writeFile(path.join(d, 'w'), 'half');
        throw new Error('disk full (injected)');
      }),
    ).rejects.toThrow('disk full (injected)');
    expect((await readdir(root)).sort()).toEqual(['v00000001']);
    await mkdir(path.join(root, '.tmp-v9-123')); // a crash left this
    const v3 = await writeSyncDir(root, 3, (d) => writeFile(path.join(d, 'w'), 'three'));
    expect((await readdir(root)).sort()).toEqual(['v00000001', 'v00000003']);
    expect(await readFile(path.join(v3, 'w'), 'utf8')).toBe('three');
    await pruneSyncDirs(root, [v3]);
    expect(await readdir(root)).toEqual(['v00000003']);
  });
});

// Every notebook-style example runs top to bottom as a user would run it (`npx tsx examples/NN-*.ts`), in quick
// mode (OVR_EXAMPLE_QUICK=1), as a subprocess from the project root; the test checks the exit code and the lines
// each script promises to print. The examples generate their own tiny model, images and data (no ../shared).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

/** Async spawn (a sync one would block the vitest worker's RPC for minutes). */
function runExample(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(TSX, [path.join('examples', file)], {
      cwd: ROOT,
      env: { ...process.env, OVR_EXAMPLE_QUICK: '1', OVR_BACKEND: 'wasm' },
      timeout: 280_000,
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => {
      if (code !== 0) console.log(out.slice(-3000));
      resolve({ code, out });
    });
  });
}

const EXPECT: Record<string, RegExp[]> = {
  '01-load-and-generate.ts': [
    /loaded runs\/examples\/01\/tiny-model: hidden 64, 2 layers/,
    /image grid \[\[1,6,6\]\]/,
    /completion \(\d+ tokens/,
  ],
  '02-grade-answers.ts': [
    /\\frac\{1\}\{2\}\s+vs .* -> correct/,
    /3\s+vs \\boxed\{4\}\s+-> wrong/,
    /ORZ reward: 1/,
    /ORZ reward, truncated: 0/,
  ],
  '03-sft-5-minutes.ts': [/wrote \d+ rows/, /3 steps: loss \d+\.\d+ -> \d+\.\d+/, /checkpoint: /],
  '04-grpo-custom-reward.ts': [
    /2 GRPO steps; reward per step: -?\d\.\d\d -?\d\.\d\d/,
    /rollouts \(completion \+ reward per sample\)/,
  ],
};

describe('examples/', () => {
  it('every example script has expectations here', () => {
    const files = readdirSync(path.join(ROOT, 'examples')).filter((f) => /^\d\d-.*\.ts$/.test(f));
    expect(files.sort()).toEqual(Object.keys(EXPECT).sort());
  });

  for (const [file, patterns] of Object.entries(EXPECT)) {
    it(`${file} runs in quick mode`, async () => {
      const t0 = performance.now();
      const { code, out } = await runExample(file);
      console.log(`${file}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      expect(code).toBe(0);
      for (const p of patterns) expect(out).toMatch(p);
    }, 300_000);
  }
});

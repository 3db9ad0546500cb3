// RL prompt rows (data/prompts.ts + data/rows.ts): gold answers of any JSON scalar type read the same way (#19: a
// numeric gold used to be dropped, so every GRPO reward was 0), the \boxed{} fallback, and a prompt set without any
// gold answer refused before training with a message naming the file and the fields looked at.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrompts, requireGoldAnswers, rowToPrompt } from '../../src/data/prompts.js';
import { goldAnswer, scalarText } from '../../src/data/rows.js';
import { GrpoConfig } from '../../src/train/grpo_config.js';

const data = GrpoConfig.parse({ model: 'tiny', data: { train: 'x.jsonl' } }).data;
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ovr-prompts-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const row = (value: unknown, line = 1) => ({ file: 'p.jsonl', line, value });

describe('gold answers', () => {
  it('a number, a boolean and a string are read the same way; null, "" and objects are no answer', () => {
    const golds = [72, '72', 7.5, true, false, 0].map(
      (a) => rowToPrompt(row({ question: 'q', answer: a }), data, '/').answer,
    );
    expect(golds).toEqual(['72', '72', '7.5', 'true', 'false', '0']);
    for (const a of [null, '', { v: 1 }, [1], Number.NaN]) expect(scalarText(a)).toBeUndefined();
    expect(rowToPrompt(row({ question: 'q', answer: null }), data, '/').answer).toBeNull();
  });

  it("falls back to the last \\boxed{} of 'solution', and honours answerField", () => {
    // the reward's lastBoxed: the last box, or the last run of boxes joined by connectors (an answer set)
    expect(
      goldAnswer({ solution: 'first \\boxed{4}; then we check the sum again carefully: \\boxed{5}' }, 'auto'),
    ).toBe('5');
    expect(goldAnswer({ solution: 'so \\boxed{4}, not \\boxed{5}' }, 'auto')).toBe('4, 5');
    expect(goldAnswer({ final: 9, answer: 1 }, 'final')).toBe('9');
    expect(goldAnswer({ solution: '\\boxed{4}' }, 'final')).toBeNull();
  });

  it('a file whose rows have no gold answer is refused, naming the file and the fields', async () => {
    const file = path.join(tmp, 'nogold.jsonl');
    await writeFile(
      file,
      `${JSON.stringify({ question: 'a' })}\n${JSON.stringify({ question: 'b', answer: null })}\n`,
    );
    const prompts = await loadPrompts(file, data);
    expect(() => requireGoldAnswers(prompts, file, 'auto')).toThrow(
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: none of its 2 row\\(s\\) has a gold answer: looked for 'answer'`,
      ),
    );
    expect(() => requireGoldAnswers(prompts, file, 'final')).toThrow(
      /looked for 'final'.*custom reward function/,
    );
    const one = await loadPrompts(file, data);
    one[0].answer = '3';
    expect(() => requireGoldAnswers(one, file, 'auto')).not.toThrow();
  });
});

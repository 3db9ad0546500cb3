import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BEHAVIOR_PATTERNS,
  BEHAVIORS,
  type Behavior,
  behaviorRates,
  detectBehaviors,
  explainBehaviors,
} from '../../src/analysis/behaviors.js';
import { ROOT } from '../helpers.js';

// Literal examples: each positive must fire its behaviour, each negative must not.
const CASES: Record<Behavior, { yes: string[]; no: string[] }> = {
  backtracking: {
    yes: [
      'So the total is 5. Wait, I counted the square twice.',
      "That's wrong, the circle is green.",
      'I made a mistake in the second step.',
      'I miscounted the triangles.',
      'Let me try again with the digits.',
      'On second thought, the answer is 4.',
      'This approach fails, so try a different approach.',
      'Hmm, that is not right.',
      'Let’s reconsider the sizes.',
    ],
    no: [
      'The answer is 5.',
      'We await the result.',
      'The waiter brings 3 plates.',
      'Count the circles and add them.',
      'Right triangles have one right angle.',
    ],
  },
  verification: {
    yes: [
      'Let me check the sum: 3 + 4 = 7.',
      "Let's verify this by substitution.",
      'I will double-check the count.',
      'Recheck: 7 - 4 = 3.',
      'Check: 2 red shapes.',
      'This confirms the answer.',
      'Plugging x = 2 back into the equation gives 0.',
      'So 8 - 5 = 3, correct.',
      'Multiply back to verify the quotient.',
      'Both counts are consistent with the picture.',
    ],
    no: ['The sum is 7.', 'A checkered flag is shown.', 'Add 3 and 4 to get 7.', 'The checker moved.'],
  },
  subgoal: {
    yes: [
      'First, find the red shapes.',
      'First we need to count the circles.',
      'Step 1: read the digits.',
      'Then, add the two numbers.',
      'We need to find the radius before the area.',
      "Let's break this problem down into parts.",
      'Break it into two cases.',
      'Solve each subproblem separately.',
    ],
    no: [
      'The answer is 4.',
      'She came first in the race.',
      'Then the sum is 7.',
      'There are two steps in the figure.',
    ],
  },
  backwardChaining: {
    yes: [
      'Working backwards: 8 - 5 = 3.',
      'Let me work backward from the target.',
      'Start from the answer and undo each step.',
      'To get a sum of 10, we need the other digit to be 6.',
      'For the total to be 12, each side must be 3.',
      'Reasoning backwards, the last move was a swap.',
    ],
    no: ['Work forward step by step.', 'The backward arrow points left.', 'To get there. We need a map.'],
  },
  visualReflection: {
    yes: [
      'Let me look at the image again.',
      'Looking at the figure again, the triangle is green.',
      'Looking back at the diagram, there are 3 circles.',
      'Let me re-examine the figure.',
      'I should reexamine the picture carefully.',
      'Recheck the image: two squares.',
      'Taking a closer look at the image, the digit is 8.',
      'Checking the graph once more, the peak is at 4.',
    ],
    no: [
      'The image shows 3 circles.',
      'Let me look at the image.',
      'In the figure, the triangle is green.',
      'Look again at your notes.',
      'We draw a new picture.',
    ],
  },
};

describe('detectBehaviors on literal examples', () => {
  for (const b of BEHAVIORS) {
    it(`${b}: positives fire, negatives do not`, () => {
      for (const s of CASES[b].yes) expect(detectBehaviors(s)[b], `should fire: "${s}"`).toBe(true);
      for (const s of CASES[b].no) expect(detectBehaviors(s)[b], `should not fire: "${s}"`).toBe(false);
    });
  }

  it('every lexicon pattern fires on at least one literal positive', () => {
    for (const b of BEHAVIORS) {
      for (const p of BEHAVIOR_PATTERNS[b]) {
        const hit = CASES[b].yes.some((s) => p.re.test(s.replace(/\u2019/g, "'")));
        expect(hit, `${b} pattern /${p.re.source}/ has no literal positive`).toBe(true);
      }
    }
  });

  it('a full chain is tagged with several behaviours at once, and explained', () => {
    const text =
      '<think> First, read the digits: 3 and 5. Then add: 3 + 5 = 9. Wait, that is wrong: 3 + 5 = 8. ' +
      'Let me look at the image again: 3 and 5. Working backwards: 8 - 5 = 3, correct. </think>';
    expect(detectBehaviors(text)).toEqual({
      backtracking: true,
      verification: true,
      subgoal: true,
      backwardChaining: true,
      visualReflection: true,
    });
    expect(detectBehaviors('')).toEqual({
      backtracking: false,
      verification: false,
      subgoal: false,
      backwardChaining: false,
      visualReflection: false,
    });
    const why = explainBehaviors(text);
    expect(why.backtracking).toContain(BEHAVIOR_PATTERNS.backtracking[0].re.source);
    expect(explainBehaviors('The answer is 3.').subgoal).toEqual([]);
  });

  it('rejects a non-string', () => {
    expect(() => detectBehaviors(3 as any)).toThrow(/expected a string, got number/);
  });
});

describe('behaviorRates', () => {
  it('is the fraction of completions per behaviour', () => {
    const r = behaviorRates(['Wait, no. First, count.', 'Wait.', 'Look at the image again.', 'Done.']);
    expect(r).toEqual({
      backtracking: 0.5,
      verification: 0,
      subgoal: 0.25,
      backwardChaining: 0,
      visualReflection: 0.25,
    });
    expect(Object.values(behaviorRates([]))).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('linear time on 1 MB adversarial inputs', () => {
  const MB = 1 << 20;
  const inputs: Record<string, string> = {
    spaces: `look${' '.repeat(MB)}x`,
    'to get, no period': `to get ${'a '.repeat(MB / 2)}`,
    'repeated near-misses': 'to get we nee re-examin the imag looking back at the '.repeat(MB / 50),
    'image again spam': 'the image the picture again '.repeat(MB / 28),
    'word soup': 'wait check first working backward look image '.repeat(MB / 45),
  };
  for (const [name, text] of Object.entries(inputs)) {
    it(name, () => {
      const t0 = performance.now();
      detectBehaviors(text);
      explainBehaviors(text);
      const ms = performance.now() - t0;
      console.log(`${name}: ${(text.length / MB).toFixed(2)} MB in ${ms.toFixed(1)} ms`);
      expect(ms).toBeLessThan(2000);
    });
  }
});

describe('docs/behaviors.md', () => {
  it('lists every pattern of the lexicon verbatim', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'behaviors.md'), 'utf8');
    for (const b of BEHAVIORS) {
      expect(doc, `docs/behaviors.md lacks a section for ${b}`).toContain(`\`${b}\``);
      for (const p of BEHAVIOR_PATTERNS[b]) {
        expect(doc, `docs/behaviors.md lacks /${p.re.source}/`).toContain(p.re.source);
      }
    }
  });
});

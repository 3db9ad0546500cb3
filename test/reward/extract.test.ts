// Answer extraction: the documented priority, brace matching, several boxes, tags, phrases, delimiters, letters.
import { describe, expect, it } from 'vitest';
import { extractAnswer, extractChoice, findBoxes, isConnectorGap } from '../../src/reward/extract.js';

const text = (s: string, targets?: ('latex' | 'expr')[]) => extractAnswer(s, { targets })?.text ?? null;

describe('extractAnswer', () => {
  it('takes the last \\boxed{} with brace matching, \\fbox and \\boxed 5', () => {
    expect(
      text(
        'first \\boxed{1}, long prose here that is clearly a sentence with words, then \\boxed{\\frac{1}{2}}',
      ),
    ).toBe('\\frac{1}{2}');
    expect(text('so \\fbox{x^{2}}')).toBe('x^{2}');
    expect(text('hence \\boxed 5.')).toBe('5');
    expect(text('\\boxed{\\{1, 2\\}}')).toBe('\\{1, 2\\}');
  });

  it('merges boxes joined only by connectors into one set answer', () => {
    expect(extractAnswer('\\boxed{1} and \\boxed{2} and \\boxed{3}')).toEqual({
      kind: 'boxed_set',
      text: '1, 2, 3',
      parts: ['1', '2', '3'],
    });
    expect(extractAnswer('$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$')?.kind).toBe(
      'boxed_set',
    );
    // Same answer boxed twice is one answer; boxes separated by prose are not merged.
    expect(
      extractAnswer('\\boxed{840}. But let me explain more here.\n\n**Final Answer**\n\\boxed{840}'),
    ).toEqual({
      kind: 'boxed',
      text: '840',
    });
    expect(isConnectorGap(' \\quad \\text{and} \\quad ')).toBe(true);
    expect(isConnectorGap('. Then we compute the next quantity, which is')).toBe(false);
  });

  it('searches inside the last <answer> tag first', () => {
    expect(text('\\boxed{1} <answer>\\boxed{2}</answer>')).toBe('2');
    expect(text('<think>\\boxed{1}</think><answer>The answer is 7</answer>')).toBe('7');
  });

  it('reads "final answer is" / "the answer is" phrases to the end of the sentence', () => {
    expect(text('Final Answer: The final answer is $(0, 1)$. I hope it is correct.')).toBe('(0, 1)');
    expect(text('Final Answer: The largest $n$ is 34.')).toBe('34');
    expect(text('So answer is consistent.\n\n✅ Final Answer: **73**')).toBe('73');
    expect(text('Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.')).toBe('3');
  });

  it('uses LaTeX delimiters; inline ones may not span lines', () => {
    expect(text('Answer \\( 9 \\)', ['latex'])).toBe('9');
    expect(text('Therefore $x \\geq 5$ is the solution.', ['latex'])).toBe('x \\geq 5');
    expect(text('Answer $ \n 9 \n $', ['latex'])).toBeNull();
    expect(text('Answer $$ \n 9 \n $$', ['latex'])).toBe('9');
  });

  it('falls back to the last plain number, not glued to letters', () => {
    expect(text('the probability is 2/3. <|im_start|>user')).toBe('2/3');
    expect(text('not it is not 10 it is 1,000.99m²', ['expr'])).toBe('1,000.99');
    expect(text('AZYUK2A', ['expr'])).toBeNull();
  });

  it('is linear on huge and hostile inputs', () => {
    const t0 = performance.now();
    extractAnswer('\\boxed{'.repeat(100_000));
    extractAnswer(`${'$'.repeat(200_000)}x`);
    extractAnswer(`${'\\['.repeat(100_000)}1`);
    extractAnswer('1,'.repeat(300_000));
    extractAnswer('a'.repeat(1_000_000));
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(findBoxes('\\boxed{'.repeat(1000)).length).toBeLessThanOrEqual(20);
  });

  it('rejects non-strings', () => {
    expect(() => extractAnswer(42 as any)).toThrow(/must be a string/);
  });
});

describe('extractChoice', () => {
  const L = ['A', 'B', 'C', 'D', 'E'];
  it.each([
    ['Final answer is B', 'B'],
    ['A. Because B is not valid', 'A'],
    ['Because B is valid', 'B'],
    ['\\mathrm{(D)\\}1,008,016', 'D'],
    ['the answer is $\\boxed{\\text{(C)}}$', 'C'],
    ['No valid answer here', null],
    ['A quick check gives $\\boxed{12}$', null],
  ])('%s → %s', (s, want) => {
    expect(extractChoice(s, L)).toBe(want);
  });
});

// The generalisations of issue #18, each with its near-miss (a rule that only accepts would be a false-positive
// factory): relation left sides, `\approx`, decimal comma against a scalar gold, matrices in array form, option
// letters in sizing brackets, a phrase answer that is one delimited block.
import { describe, expect, it } from 'vitest';
import { verify } from '../../src/reward/verify.js';

describe('generalisations (equal / near-miss pairs)', () => {
  it.each([
    ['11:21', 'V_1:V_2 = 11:21', 'V_1:V_2 = 11:20'],
    ['1', '|AB| = 1', '|AB| = 2'],
    ['4', '\\overline{AB} = 4', '\\overline{AB} = 5'],
    ['11', 'x \\approx 11', 'x \\approx 12'],
    ['\\frac13', '\\frac13 \\approx 0.33', '\\frac14 \\approx 0.25'],
    ['1.25', '\\boxed{1,25}', '\\boxed{1,26}'],
    ['0.0000672', 'The final answer is $0,0000672$.', 'The final answer is $0,0000673$.'],
    ['2.74', 'so it costs 2,74 euros', 'so it costs 2,75 euros'],
    [
      '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}',
      '\\left[\\begin{array}{cc}1&2\\\\3&4\\end{array}\\right]',
      '\\left[\\begin{array}{cc}1&2\\\\4&3\\end{array}\\right]',
    ],
    [
      '\\begin{pmatrix}-1/3\\\\2/3\\end{pmatrix}',
      '\\boxed{\\left(\\begin{array}{r}-\\frac13\\\\ \\frac23\\end{array}\\right)}',
      '\\boxed{\\left(\\begin{array}{r}\\frac13\\\\ \\frac23\\end{array}\\right)}',
    ],
    [
      '\\begin{pmatrix}1\\\\2\\end{pmatrix}',
      '\\begin{bmatrix}1\\\\2\\end{bmatrix}',
      '\\begin{bmatrix}2\\\\1\\end{bmatrix}',
    ],
    ['C', '\\boxed{\\left(C\\right)}', '\\boxed{\\left(D\\right)}'],
    ['F', 'The answer is \\[F\\]', 'The answer is \\[G\\]'],
    ['domain: (2,8]', 'The final answer is $domain: (2,8]$.', 'The final answer is $domain: [2,8]$.'],
  ])('%s: %s is equal, %s is not', (gold, yes, no) => {
    expect(verify(gold, yes).equal).toBe(true);
    expect(verify(gold, no).equal).toBe(false);
  });

  it.each([
    ['|x| > 3', '(-\\infty,-3)\\cup(3,\\infty)', '(-\\infty,-3]\\cup[3,\\infty)'],
    ['|x-1| \\le 2', '[-1, 3]', '[-1, 2]'],
    ['|x+2| < 1', '(-3,-1)', '(-3,-1]'],
    ['|x+2| < 1', 'x \\in (-3,-1)', 'x \\in (-3,1)'],
    ['x < 1 \\text{ or } x > 2', '(-\\infty,1)\\cup(2,\\infty)', '(-\\infty,1]\\cup(2,\\infty)'],
    ['x > 5', '(5, \\infty)', '(5, 6)'],
  ])('gold inequality %s solves to %s, not to %s', (gold, yes, no) => {
    expect(verify(gold, yes).equal).toBe(true);
    expect(verify(gold, no).equal).toBe(false);
  });

  it('a predicted inequality against a gold set needs allowSetRelationComp (Math-Verify default)', () => {
    const gold = '(-\\infty,-3)\\cup(3,\\infty)';
    expect(verify(gold, '|x| > 3').equal).toBe(false);
    expect(verify(gold, '|x| > 3', { allowSetRelationComp: true }).equal).toBe(true);
    expect(verify(gold, '|x| \\ge 3', { allowSetRelationComp: true }).equal).toBe(false);
    expect(verify('[-1,3]', '|z - 1| \\le 2', { allowSetRelationComp: true }).equal).toBe(true);
  });

  it('a decimal to >= 6 significant digits stands for the exact value it rounds to; fewer digits never', () => {
    expect(verify('\\frac13', '0.333333').equal).toBe(true);
    expect(verify('\\frac83', '2.666667').equal).toBe(true);
    expect(verify('\\pi', '3.14159').equal).toBe(true);
    expect(verify('\\frac83', '2.666666').equal).toBe(false); // truncated, not rounded
    expect(verify('\\frac13', '0.33').equal).toBe(false);
    expect(verify('10^{-7}', '0.000000').equal).toBe(false); // no significant digits (Math-Verify: equal)
    expect(verify('\\frac{1}{2^{99}}', '0.000000').equal).toBe(false);
    expect(verify('0.333333', '0.3333333').equal).toBe(false); // two literals still compare exactly
  });

  it('space-separated thousands are one number; other digit-space-digit is no number (the CAS reads 1 2 as 12)', () => {
    expect(verify('1000000', '1 000 000').equal).toBe(true);
    expect(verify('2220', '\\boxed{2\\,220}').equal).toBe(true);
    expect(verify('12', '1 2').equal).toBe(false);
    expect(verify('2', '1 2').equal).toBe(false);
  });

  it('a decimal comma is read as such only against a one-number gold', () => {
    expect(verify('1, 25', '1,25').equal).toBe(true); // a list gold keeps the list reading
    expect(verify('1.25', '1,25').equal).toBe(true);
    expect(verify('1250', '1,250').equal).toBe(true); // three digits: thousands separator
    expect(verify('1.25', '1,250').equal).toBe(false);
  });
});

// verify(): hand-checked equalities and non-equalities for every answer shape the brief names, plus input errors.
import { describe, expect, it } from 'vitest';
import { verify } from '../../src/reward/verify.js';

const T: [string, string, string][] = [
  // [what, gold, prediction] — must be equal
  ['dfrac / tfrac', '\\frac{1}{2}', '\\dfrac{1}{2}'],
  ['\\frac13 shorthand', '\\frac{1}{3}', '\\tfrac13'],
  ['\\sqrt3 shorthand', '\\sqrt{3}', '\\sqrt3'],
  ['left/right', '(3, \\frac{\\pi}{2})', '\\left( 3, \\frac{\\pi}{2} \\right)'],
  ['\\text unwrap', '5', '\\text{5}'],
  ['units', '3.5', '3.5 \\text{ cm}'],
  ['degrees', '90', '90^\\circ'],
  ['percent sign stripped (hendrycks)', '28', '28\\%'],
  ['percent as value', '0.28', '28\\%'],
  ['thousands separators', '32348', '\\$32,\\!348'],
  ['decimal comma (plain number)', '2.74', 'Soucis : 2,74 $ a..'],
  ['currency', '18.90', '\\$18.90'],
  ['mixed number', '\\frac{7}{2}', '3\\frac{1}{2}'],
  ['unicode', '\\pi\\sqrt{2}', 'π√2'],
  ['fraction vs decimal', '\\frac{1}{8}', '0.125'],
  ['reordered sum', 'x^2+2x+1', '1+2x+x^2'],
  ['factored form', '(x+1)^2', 'x^2+2x+1'],
  ['trig identity (probing)', '1', '\\sin^2 x+\\cos^2 x'],
  ['sec/tan identity', '\\tan^2(y)+1', '\\sec^2(y)'],
  ['x=1 vs 1', '1', 'x=1'],
  ['chain keeps last value', '0', '1 = \\zzz = x = 0'],
  ['equation scaled', 'x^2/4 + y^2/3 = 1', 'x^2/16 + y^2/12 = 1/4'],
  ['flipped inequality', 'x \\le 5', '5 \\ge x'],
  ['negated inequality', 'x \\le 1', '-x \\ge -1'],
  ['inequality vs interval (gold relation)', '-2 \\le x \\le 7', 'x \\in [-2,7]'],
  ['union of intervals', '(-\\infty, -3] \\cup [2, \\infty)', '(-\\infty,-3]\\cup[2,\\infty)'],
  ['tuple', '(1, 2)', '\\left(1,2\\right)'],
  ['set order', '\\{1,2,3\\}', '\\{3,1,2\\}'],
  ['pm expands', '\\{1+\\sqrt{5}, 1-\\sqrt{5}\\}', '1 \\pm \\sqrt{5}'],
  ['matrix', '\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}', '\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}'],
  [
    'vector with fractions',
    '\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}',
    '\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}',
  ],
  ['text answer', '\\text{Evelyn}', 'The winner is $\\boxed{\\text{Evelyn}}$.'],
  ['multiple choice', 'C', 'so the answer is \\boxed{\\text{(C)}}'],
  ['several boxes form a set', '\\{-2, 1\\}', 'roots: $\\boxed{1}$ and $\\boxed{-2}$'],
  ['complex', '\\frac34 i', '0.75i'],
];

const F: [string, string, string][] = [
  // must NOT be equal
  ['tiny values keep relative precision', '\\frac{1}{2^{99}}', '\\frac{1}{2^{98}}'],
  ['1e-11 is not 0', '0', '10^{-11}'],
  ['huge powers are not "close"', '(x+1)^{1000}', '(x+1)^{1000}+1'],
  ['division by zero is not a value', '\\frac{1}{0}', '\\frac{1}{0}+1'],
  ['rounded gold is not exact', '33.3', '\\frac{100}{3}'],
  ['opposite inequality', 'x > 5', 'x < 5'],
  ['half-open vs closed', '[1,2]', '[1,2)'],
  ['equation vs its right side', '2x+z=1', '1'],
  ['assignment order matters', 'a=3, b=2', 'a=2, b=3'],
  ['bare list order matters (hendrycks)', '4, 10, -2', '10, 4, -2'],
  ['pm is two values', '\\pm 2021', '2021'],
  [
    'different matrix',
    '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}',
    '\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}',
  ],
  ['variable names matter by default', 'f(x)', 'f(y)'],
  ['wrong choice', 'C', 'The answer is (B).'],
  ['letters glued to a digit', '2', 'AZYUK2A'],
  ['no answer', '5', 'I do not know.'],
  ['sqrt( is not 1', '4', '4\\sqrt(2)'],
  ['different text', '\\text{east}', '\\text{west}'],
  ['sequences', '1, 2, \\ldots, n', '1, 3, 5, \\ldots, 2n-1'],
  ['different planes', '5x - 7y + 11z + 4 = 0', 'x + y - z + 2 = 0'],
];

describe('verify: equal', () => {
  it.each(T)('%s', (_what, gold, pred) => {
    const v = verify(gold, pred);
    expect(v.equal, `${gold} vs ${pred}: ${v.reason} (extracted ${v.extracted})`).toBe(true);
  });
});

describe('verify: not equal', () => {
  it.each(F)('%s', (_what, gold, pred) => {
    const v = verify(gold, pred);
    expect(v.equal, `${gold} vs ${pred}: ${v.reason} (extracted ${v.extracted})`).toBe(false);
  });
});

describe('verify: options', () => {
  it('floatRounding compares rounded numbers', () => {
    expect(verify('\\frac{1}{3}', '0.3333').equal).toBe(false);
    expect(verify('\\frac{1}{3}', '0.3333', { floatRounding: 4 }).equal).toBe(true);
  });
  it('strict: false ignores variable names', () => {
    expect(verify('f(x)', 'f(y)', { strict: false }).equal).toBe(true);
  });
  it('unorderedLists compares bare lists as sets', () => {
    expect(verify('4, 10, -2', '10, 4, -2', { unorderedLists: true }).equal).toBe(true);
  });
  it('allowSetRelationComp lets a predicted inequality match a gold interval', () => {
    expect(verify('x \\in [-2,7]', '-2 \\le x \\le 7').equal).toBe(false);
    expect(verify('x \\in [-2,7]', '-2 \\le x \\le 7', { allowSetRelationComp: true }).equal).toBe(true);
  });
  it('seed-free: the same inputs give the same verdict', () => {
    const { ms: _a, ...a } = verify('\\sin^2 x', '1-\\cos^2 x');
    const { ms: _b, ...b } = verify('\\sin^2 x', '1-\\cos^2 x');
    expect(a).toEqual(b);
  });
});

describe('verify: bad input', () => {
  it('names the culprit', () => {
    expect(() => verify(undefined as any, '1')).toThrow(/gold must be a string/);
    expect(() => verify('1', 3 as any)).toThrow(/prediction must be a string/);
    expect(() => verify('1', '1', { floatRounding: -1 })).toThrow(/floatRounding/);
    expect(() => verify('1', '1', { rtol: 2 })).toThrow(/rtol/);
  });
  it('rejects over-long answers instead of parsing them', () => {
    const v = verify('1', `\\boxed{${'1+'.repeat(5000)}1}`);
    expect(v.equal).toBe(false);
    expect(v.reason).toMatch(/longer than/);
  });
});

describe('verify: numeric probing', () => {
  it('separates sign-sensitive functions and keeps branch-cut identities', () => {
    expect(verify('x', '|x|').equal).toBe(false);
    expect(verify('x', '\\sqrt{x^2}').equal).toBe(false);
    expect(verify('\\sqrt{1/n}', '\\frac{1}{\\sqrt{n}}').equal).toBe(true);
    expect(verify('\\frac{x+2}{7}', '\\frac{x}{7}+\\frac{2}{7}').equal).toBe(true);
  });
  it('probes sums at integers', () => {
    expect(verify('\\frac{n(n+1)}{2}', '\\sum_{k=1}^{n} k').equal).toBe(true);
    expect(verify('\\frac{n(n+1)}{2}', '\\sum_{k=1}^{n+1} k').equal).toBe(false);
  });
});

describe('verify: degrees and repeating decimals', () => {
  it('reads 90^\\circ as 90 or as π/2, and 0.\\overline{3} as 1/3', () => {
    expect(verify('90^\\circ', '90').equal).toBe(true);
    expect(verify('90^\\circ', '\\frac{\\pi}{2}').equal).toBe(true);
    expect(verify('\\frac{\\pi}{4}', '45°').equal).toBe(true);
    expect(verify('90^\\circ', '\\frac{\\pi}{3}').equal).toBe(false);
    expect(verify('\\frac{1}{3}', '0.\\overline{3}').equal).toBe(true);
    expect(verify('\\frac{1}{6}', '0.1\\overline{6}').equal).toBe(true);
    expect(verify('\\frac{1}{3}', '0.\\overline{33}').equal).toBe(true);
    expect(verify('\\frac{1}{3}', '0.\\overline{4}').equal).toBe(false);
  });
});

// Common answer pairs in the style of Math-Verify's suite (gold, prediction, expected).
const MORE: [string, string, boolean][] = [
  ['$\\frac{1}{2}$', '0.5', true],
  ['$2\\sqrt{2}$', '$\\sqrt{8}$', true],
  ['$(1,2)$', '$(1, 2)$', true],
  ['$\\{1,2\\}$', '$\\{2,1\\}$', true],
  ['$a+b$', '$b+a$', true],
  ['$x \\in [1,2]$', '$[1,2]$', true],
  ['1000000', '1 000 000', true],
  ['$\\frac{\\sqrt{3}}{3}$', '$\\frac{1}{\\sqrt{3}}$', true],
  ['$y = 2x + 3$', '$y=3+2x$', true],
  ['$x^2+y^2=4$', '$y^2+x^2=4$', true],
  ['$\\log_2 8$', '3', true],
  ['$-\\frac{1}{2}$', '$\\frac{-1}{2}$', true],
  ['$(1,2)$', '$(2,1)$', false],
  ['$\\{(1,2),(2,1)\\}$', '$(2,1),(1,2)$', true],
  ['$2^{10}$', '1024', true],
  ['$e^{i\\pi}$', '-1', true],
  ['$3 \\text{ and } 4$', '$3, 4$', true],
  ['$x<1$', '$x \\le 1$', false],
  ['$\\frac{\\pi}{3}$', '$60^\\circ$', true],
  ['$\\infty$', '$\\infty$', true],
  ['$-\\infty$', '−∞', true],
  ['$\\text{(B)}$', 'The answer is B', true],
  ['$5$', 'The answer is $5$.', true],
  ['$(-\\infty, 2) \\cup (3, \\infty)$', '$x \\in (-\\infty,2)\\cup(3,\\infty)$', true],
  ['$\\$5.00$', '5', true],
  ['$5\\%$', '$0.05$', true],
  ['$\\frac{1}{4}$', '$25\\%$', true],
  ['8', '8.0', true],
  ['$\\sqrt{2}$', '1.414', false],
  ['$1.414$', '$\\sqrt{2}$', false],
  ['$f(x)=x^2$', '$x^2$', true],
  ['$\\begin{pmatrix}1\\\\2\\end{pmatrix}$', '$(1,2)$', false],
  ['12', 'twelve', false],
  ['$x=2$ or $x=3$', '$2, 3$', true],
  ['$\\frac{a}{b}$', '$a/b$', true],
  ['$ab$', '$ba$', true],
  ['$\\angle ABC = 30^\\circ$', '30', true],
  ['$k \\ge 2$', '$[2, \\infty)$', true],
  ['$x > 2$', '$(2,\\infty)$', true],
  ['$x>2$', '$(-\\infty, 2)$', false],
  ['\\text{No}', '\\text{no}', true],
  ['\\text{yes}', '\\text{no}', false],
  ['$0$', '$-0$', true],
  ['$\\emptyset$', '$\\{1\\}$', false],
  ['$1$', '$1.0000001$', false],
  ['$\\frac{2}{3}$', '$0.6666666667$', true],
  ['$\\frac{2}{3}$', '$0.666666666666667$', true],
];

describe('verify: common pairs', () => {
  it.each(MORE)('%s vs %s → %s', (gold, pred, want) => {
    const v = verify(gold, pred);
    expect(v.equal, `${v.reason} (extracted ${v.extracted})`).toBe(want);
  });
});

describe('verify: empty answers', () => {
  it('never matches answers with no content', () => {
    expect(verify('$$', '$$').equal).toBe(false);
    expect(verify('2', '\\boxed{\\%}').equal).toBe(false);
    expect(verify('\\boxed{cm\\%}', '\\boxed{\\%}').equal).toBe(false);
    expect(verify('', '').equal).toBe(false);
  });
});

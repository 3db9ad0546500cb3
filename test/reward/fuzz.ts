// Seeded generator of adversarial (gold, prediction) pairs for the reward fuzz test and bench.
import { Rng } from '../../src/util/rng.js';

const ATOMS = [
  '0',
  '1',
  '7',
  '42',
  '-3',
  '.5',
  '1,000',
  '2,74',
  '9999999999999999999999',
  '10^{10^{10}}',
  '9^{9^9}',
  '2^{-99}',
  '\\frac{',
  '\\frac',
  '\\dfrac13',
  '}',
  '{',
  '\\sqrt',
  '\\sqrt[3]{',
  '\\boxed{',
  '\\boxed ',
  '\\fbox{',
  '$',
  '$$',
  '\\(',
  '\\)',
  '\\[',
  '\\]',
  '<answer>',
  '</answer>',
  'x',
  'y',
  'n',
  '\\pi',
  'e',
  'i',
  '\\infty',
  ',',
  ';',
  ':',
  '=',
  '<',
  '>',
  '\\le',
  '\\geq',
  '\\ne',
  '\\pm',
  '\\mp',
  '\\cup',
  '\\in',
  '(',
  ')',
  '[',
  ']',
  '\\{',
  '\\}',
  '\\begin{pmatrix}',
  '\\end{pmatrix}',
  '\\begin{bmatrix}',
  '&',
  '\\\\',
  '\\text{',
  '\\mathrm{',
  'the answer is ',
  'Final Answer: ',
  ' and ',
  ' or ',
  '%',
  '\\%',
  ' percent',
  '^\\circ',
  '°',
  '∅',
  '√',
  '−',
  '±',
  '\u0000',
  '\t',
  '\n',
  '\f',
  'é',
  '🙂',
  '\\sum_{k=1}^{',
  '\\prod_{k=1}^{',
  '!',
  '^',
  '_',
  '.',
  ' ',
  'a',
  'cm',
  ' cm',
  '\\left(',
  '\\right)',
  '\\overline{3}',
  '\\ldots',
  '\\approx',
  '\\$',
  '\\!',
  '{,}',
  '\\quad',
  '\\sin',
  '\\log_',
  '\\binom{',
  '|',
  '\\',
];
const BOMBS = [
  (k: number) => '1'.repeat(k),
  (k: number) => 'a+'.repeat(k),
  (k: number) => '\\frac{'.repeat(k),
  (k: number) => '{'.repeat(k) + '1' + '}'.repeat(k),
  (k: number) => '('.repeat(k),
  (k: number) => '$'.repeat(k),
  (k: number) => '\\boxed{'.repeat(k),
  (k: number) => '1,'.repeat(k),
  (k: number) => `${'x^{'.repeat(k)}2`,
  (k: number) => '\\sqrt{'.repeat(k),
  (k: number) => ' '.repeat(k),
  (k: number) => 'the answer is '.repeat(k),
];
const GOLDS = [
  '2',
  '\\frac{1}{2}',
  '(1, 2)',
  '[0, 1)',
  'x^2+1',
  '\\{1, 2\\}',
  'C',
  '\\text{east}',
  'x = 3',
  '\\sqrt{2}',
];

function junk(rng: Rng, maxAtoms: number): string {
  let s = '';
  const n = 1 + rng.int(maxAtoms);
  for (let i = 0; i < n; i++) s += ATOMS[rng.int(ATOMS.length)];
  return s;
}

/** `n` seeded adversarial pairs; about 2% are large bombs (up to `bombSize` repetitions). */
export function fuzzPairs(n: number, seed = 0, bombSize = 20_000): { gold: string; prediction: string }[] {
  const rng = new Rng(seed).split('reward-fuzz');
  const out: { gold: string; prediction: string }[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.uniform();
    const gold = rng.uniform() < 0.7 ? GOLDS[rng.int(GOLDS.length)] : junk(rng, 12);
    let prediction: string;
    if (r < 0.02)
      prediction = `The answer is \\boxed{${BOMBS[rng.int(BOMBS.length)](1 + rng.int(bombSize))}}`;
    else if (r < 0.04) prediction = BOMBS[rng.int(BOMBS.length)](1 + rng.int(bombSize));
    else if (r < 0.5) prediction = `\\boxed{${junk(rng, 16)}}`;
    else prediction = junk(rng, 60);
    out.push({ gold, prediction });
  }
  return out;
}

// String-level normalisation of an extracted answer before it is parsed into a structure.
// Follows the conventions of Math-Verify / latex2sympy2_extended and hendrycks `strip_string`, where they agree:
// \dfrac → \frac, \frac13 → \frac{1}{3}, \sqrt3 → \sqrt{3}, \left/\right and spacing dropped, \text{} unwrapped,
// units after a number dropped, ^\circ dropped, thousands separators merged, unicode symbols mapped to LaTeX.
// Every rule is a linear-time regex (no nested quantifiers), so a 1 MB input cannot blow up.

/** Longest answer string we ever try to parse; longer candidates are rejected (see verify). */
export const MAX_ANSWER_CHARS = 2000;

const UNICODE: [RegExp, string][] = [
  [/∅/g, '\\emptyset '],
  [/∪/g, '\\cup '],
  [/∩/g, '\\cap '],
  [/≤|⩽/g, '\\le '],
  [/≥|⩾/g, '\\ge '],
  [/≠/g, '\\ne '],
  [/±/g, '\\pm '],
  [/∓/g, '\\mp '],
  [/√/g, '\\sqrt'],
  [/π/g, '\\pi '],
  [/∞/g, '\\infty '],
  [/×/g, '\\times '],
  [/[·⋅]/g, '\\cdot '],
  [/÷/g, '\\div '],
  [/[−–—]/g, '-'],
  [/²/g, '^2'],
  [/³/g, '^3'],
  [/∈/g, '\\in '],
  [/[°º]|掳/g, '^\\circ'],
  [/\u00a0/g, ' '],
];

/** Unit words dropped when they follow a number or a closing brace (never inside an expression). */
const UNITS = [
  'square',
  'sq',
  'cubic',
  'centimeters?',
  'centimetres?',
  'millimeters?',
  'meters?',
  'metres?',
  'kilometers?',
  'km',
  'cm',
  'mm',
  'inches',
  'inch',
  'feet',
  'foot',
  'ft',
  'yards?',
  'miles?',
  'mph',
  'hours?',
  'hrs?',
  'minutes?',
  'mins?',
  'seconds?',
  'secs?',
  's',
  'days?',
  'weeks?',
  'months?',
  'years?',
  'degrees?',
  'radians?',
  'units?',
  'dollars?',
  'cents?',
  'yuan',
  'euros?',
  'pounds?',
  'kg',
  'grams?',
  'liters?',
  'litres?',
  'ml',
  'people',
  'students',
  'ways',
  'points?',
  'times',
];
const UNIT_TAIL = String.raw`(?:\s*\})?(?:\s*\^\s*\{?[23]\}?)?(?=$|[\s,;.)\]$]|\\[a-z,;! ])`;
const TEXT_OPEN = String.raw`\\(?:text|mbox|mathrm|textnormal|textbf)\{\s*`;
// Multi-letter units may touch the number (`3cm`); single letters (m, h, g) need a space or \text{} around them,
// so `2m` stays a product with the variable m. `s` (seconds) is the exception Math-Verify makes (`3s` → 3).
const UNIT_RE = new RegExp(
  String.raw`(\d|\})(?:\s*(?:${TEXT_OPEN})?(?:${UNITS.join('|')})|\s+(?:m|h|g)|\s*${TEXT_OPEN}(?:m|h|g))${UNIT_TAIL}`,
  'g',
);

/** Code points of the digit zero of the decimal-digit scripts a model may answer in (each run of ten is 0–9). */
const DIGIT_ZEROS = [
  0x0660, 0x06f0, 0x07c0, 0x0966, 0x09e6, 0x0a66, 0x0ae6, 0x0b66, 0x0be6, 0x0c66, 0x0ce6, 0x0d66, 0x0de6,
  0x0e50, 0x0ed0, 0x0f20, 0x1040, 0x17e0, 0x1810, 0xff10, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6,
];

/**
 * Folds full-width ASCII (`１２`, `（`, `＋`) and the decimal digits of other scripts (Arabic-Indic `١٢`,
 * Devanagari, Thai, mathematical bold…) to ASCII; the Arabic decimal/thousands separators and the ideographic
 * full stop to `.`/`,`/`.`.
 * Applied to both sides before extraction, so `\boxed{١٢}` is 12, not an empty answer.
 * @example foldUnicodeDigits('\\boxed{１２}') // '\\boxed{12}'
 */
export function foldUnicodeDigits(s: string): string {
  return s.replace(/[\u0660-\u{1d7ff}]/gu, (c) => {
    const cp = c.codePointAt(0)!;
    if (cp === 0x066b) return '.';
    if (cp === 0x066c) return ',';
    if (cp === 0x3000) return ' ';
    if (cp === 0x3002) return '.';
    if (cp >= 0xff01 && cp <= 0xff5e) return String.fromCharCode(cp - 0xfee0);
    for (const z of DIGIT_ZEROS) if (cp >= z && cp < z + 10) return String(cp - z);
    return c;
  });
}

/** Map unicode math symbols to LaTeX commands. */
export function mapUnicode(s: string): string {
  let out = s;
  for (const [re, rep] of UNICODE) out = out.replace(re, rep);
  return out;
}

/** `\\frac` (a doubled backslash before a command name, from over-escaped strings) → `\frac`. */
export function fixDoubledBackslash(s: string): string {
  return s.replace(/(?<!\\)\\\\(?=[a-zA-Z]{2})/g, '\\');
}

/**
 * Replaces a LaTeX command with one brace group by its content: `unwrap('\\text{ab}', ['text'])` → `ab`.
 * Linear: scans once, matching braces by depth.
 */
export function unwrapCommands(s: string, names: string[]): string {
  const re = new RegExp(`\\\\(?:${names.join('|')})\\s*\\{`, 'g');
  const skip: [number, number][] = [];
  const closers = new Set<number>();
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const open = m.index + m[0].length - 1;
    const close = matchBrace(s, open);
    if (close < 0) continue;
    skip.push([m.index, open + 1]);
    closers.add(close);
  }
  if (skip.length === 0) return s;
  let out = '';
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    if (k < skip.length && i === skip[k][0]) {
      i = skip[k][1] - 1;
      k++;
    } else if (!closers.has(i)) out += s[i];
  }
  return out;
}

/** Index of the brace closing the one at `open`, or -1. Skips escaped braces. */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** `\frac13` → `\frac{1}{3}`, `\frac3{4}` → `\frac{3}{4}`, `\sqrt3` → `\sqrt{3}`, `\dfrac` → `\frac`. */
export function fixFracSqrt(s: string): string {
  return s
    .replace(/\\[dt]frac/g, '\\frac')
    .replace(/\\frac\s*(\d)\s*(\d)/g, '\\frac{$1}{$2}')
    .replace(/\\frac\s*(\d)\s*(?=\{)/g, '\\frac{$1}')
    .replace(/\\frac\s*(\{[^{}]*\})\s*(\d)/g, '\\frac$1{$2}')
    .replace(/\\frac\s*([a-zA-Z])\s*([a-zA-Z0-9])/g, '\\frac{$1}{$2}')
    .replace(/\\sqrt\s*(\d+|[a-zA-Z])(?![a-zA-Z])/g, '\\sqrt{$1}');
}

/** Bracket depth before each index (parentheses and square brackets only). */
function bracketDepth(s: string): Int32Array {
  const d = new Int32Array(s.length + 1);
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    d[i] = depth;
    if (s[i] === '(' || s[i] === '[') depth++;
    else if ((s[i] === ')' || s[i] === ']') && depth > 0) depth--;
  }
  return d;
}

/**
 * Merge thousands separators: `12,\!000` / `14{,}916` / `7,425,000` → digits; `1{,}5` → `1.5`.
 * A plain `d,ddd` inside parentheses or brackets is left alone: `(12,102)` is a pair, not 12102.
 */
export function mergeThousands(s: string): string {
  let out = s.replace(/(\d)\s*\{,\}\s*(?=\d{3}(?!\d))/g, '$1').replace(/(\d)\{,\}(\d)/g, '$1.$2');
  out = out.replace(/(\d),\\!\s*(?=\d{3}(?!\d))/g, '$1');
  const depth = bracketDepth(out);
  return out.replace(/(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?/g, (m, at: number) =>
    depth[at] > 0 ? m : m.replace(/,/g, ''),
  );
}

/** Remove spacing commands, \left/\right, \displaystyle and similar presentational markup. */
export function dropSpacing(s: string): string {
  return s
    .replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)\s*(?=[()[\]|.]|\\[{}|])/g, '')
    .replace(/\\left\.|\\right\./g, '')
    .replace(/\\(?:displaystyle|textstyle|limits|nolimits)/g, '')
    .replace(/\\(?:q?quad)(?![a-zA-Z])/g, ' ')
    .replace(/(?<!\\)\\[,;:! ]/g, ' ')
    .replace(/~/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Marker left where a degree sign was; structure.ts turns it into the `degree` flag of a scalar. */
export const DEGREE_MARK = '\\ovrdegree';

/** Degree marks `90^\circ`, `90^{\circ}`, `90\degree` → `90\ovrdegree` (90 matches 90 and \frac{\pi}{2}). */
export function markDegrees(s: string): string {
  return s
    .replace(/\^\s*\{?\s*\\circ\s*\}?/g, DEGREE_MARK)
    .replace(/\\(?:degree|circ)(?![a-zA-Z])/g, DEGREE_MARK);
}

/** Drop units that follow a number or `}`: `3.5 cm` → `3.5`, `15\mbox{ cm}^2` → `15`. */
export function dropUnits(s: string): string {
  return s.replace(UNIT_RE, '$1');
}

/** Currency: `\$10`, `$10` (plain), `10 dollars`, `€5` → the number. */
export function dropCurrency(s: string): string {
  return s
    .replace(/\\\$|[€£¥]|\bUSD\b|\bRMB\b/g, '')
    .replace(/\\(?:textdollar|euro|pounds)(?![a-zA-Z])/g, '');
}

/**
 * Full normalisation of one answer string (already extracted). Pure and linear-time.
 * @example normalizeAnswer('\\dfrac13\\text{ cm}') // '\\frac{1}{3}'
 */
export function normalizeAnswer(raw: string): string {
  let s = raw.slice(0, MAX_ANSWER_CHARS * 4);
  s = mapUnicode(s);
  s = fixDoubledBackslash(s);
  s = s.replace(/\\\$/g, ' \\$ ');
  s = s.replace(/(?<!\\)\$/g, ' ').replace(/\\[()[\]]/g, ' ');
  s = mergeThousands(s);
  s = dropSpacing(s);
  s = unwrapCommands(s, [
    'textbf',
    'textit',
    'textnormal',
    'textrm',
    'mathbf',
    'mathit',
    'mathrm',
    'boldsymbol',
  ]);
  s = s.replace(/\\mbox\s*\{/g, '\\text{');
  s = fixFracSqrt(s);
  s = markDegrees(s);
  s = dropUnits(s);
  s = dropCurrency(s);
  s = s.replace(/\s*\\?\bpercent(?:age)?\b|\s*\bpct\b|(?<!\\)%/g, '\\%');
  s = s.replace(/\\(?:dots|ldots|cdots)(?![a-zA-Z])|\.\.\./g, '\\ldots');
  s = s.replace(/\\(?:ge|geq|geqslant)(?![a-zA-Z])|>=/g, '\\ge ');
  s = s.replace(/\\(?:le|leq|leqslant)(?![a-zA-Z])|<=/g, '\\le ');
  s = s.replace(/\\(?:ne|neq)(?![a-zA-Z])|!=/g, '\\ne ');
  s = s.replace(/\\gt(?![a-zA-Z])/g, '>').replace(/\\lt(?![a-zA-Z])/g, '<');
  s = s.replace(/\\varnothing|\\\{\s*\\\}/g, '\\emptyset');
  s = s.replace(/\\(?:mathbb|mathcal)\s*\{?R\}?/g, '\\R');
  s = s.replace(/\s+/g, ' ').trim();
  s = s.replace(/^[\s,;:]+|^\.(?!\d)|[\s,;:.]+$/g, '');
  return s;
}

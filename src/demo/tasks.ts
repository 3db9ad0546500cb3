// Synthetic visual-reasoning tasks with verifiable answers, for the OVR demo (issue 9).
// A scene is a small grid of coloured shapes or seven-segment digits. Four task kinds ask about it:
//   count    "How many red shapes are there?"            -> integer
//   compare  "Are there more circles or squares?"        -> the word from the question ("circles")
//   add      "What is the sum of the digits?"            -> integer
//   largest  "Which shape is the largest?"               -> "circle" | "square" | "triangle"
// Each problem carries a text-only rendering of the scene ("mental imagery", stage-1 SFT input) and a short
// think/answer target chain in the ORZ format with subgoal, reflection and verification sentences.
// The image itself is drawn by render.ts; scenes store grid cells and jitter, not pixels, so any size works.
// The train/eval split is decided by a hash of the problem's content, so the splits never share a problem,
// whatever the seed.

import { Rng } from '../util/rng.js';

export const COLORS = ['red', 'green', 'blue'] as const;
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const SIZES = ['small', 'medium', 'large'] as const;
export const TASK_KINDS = ['count', 'compare', 'add', 'largest'] as const;

export type Color = (typeof COLORS)[number];
export type ShapeKind = (typeof SHAPES)[number];
export type Size = (typeof SIZES)[number];
export type TaskKind = (typeof TASK_KINDS)[number];
export type Split = 'train' | 'eval';

/** Offset of an item inside its cell, in [-1, 1] of the free room (0 = centred). */
type Jitter = { dx: number; dy: number };
export type ShapeItem = { type: 'shape'; kind: ShapeKind; color: Color; size: Size; cell: number } & Jitter;
export type DigitItem = { type: 'digit'; value: number; cell: number } & Jitter;
export type Item = ShapeItem | DigitItem;
/** `grid` cells per side; cells are numbered row-major from the top left. */
export type Scene = { grid: number; items: Item[] };

export interface Problem {
  /** `${split}-${index}`, unique within one generated list. */
  id: string;
  split: Split;
  task: TaskKind;
  scene: Scene;
  question: string;
  /** Gold answer: a short integer or word, lowercase. */
  answer: string;
  /** Text-only rendering of the scene: "The picture shows 2 small red circles and 1 large blue square." */
  description: string;
  /** Stage-1 (text-only) prompt: description followed by the question. */
  textPrompt: string;
  /** `<think> ... </think> <answer> \boxed{a} </answer>` */
  target: string;
}

export interface ProblemOptions {
  seed?: number;
  split: Split;
  count: number;
  /** Task kinds to cycle through (balanced); default all four. */
  tasks?: readonly TaskKind[];
  /** Probability that a target chain contains a slip that is then corrected (backtracking). Default 0.25. */
  backtrackRate?: number;
  /**
   * Balance the answers of the word tasks (default true): the k-th `largest` problem's answer is SHAPES[k % 3] and
   * the k-th `compare` problem's winner is the first-named option for even k, the second for odd k. So no constant
   * answer (or always picking the first option) beats chance: 1/3 on largest, 1/2 on compare.
   */
  balanceAnswers?: boolean;
}

/**
 * Answer class of a word-task draft for balancing: the shape kind (largest), 'first' / 'second' named option
 * (compare), or null (count, add: not balanced).
 * @example answerClass('compare', { question: 'Are there more red shapes or blue shapes?', answer: 'blue' }) // 'second'
 */
export function answerClass(task: TaskKind, d: { question: string; answer: string }): string | null {
  if (task === 'largest') return d.answer;
  if (task !== 'compare') return null;
  const first = d.question.replace(/^Are there more /, '').split(' or ')[0];
  return first.startsWith(d.answer) ? 'first' : 'second';
}

/** The answer class the k-th problem of `task` must have when balancing (null: any). */
function wantedClass(task: TaskKind, k: number): string | null {
  if (task === 'largest') return SHAPES[k % SHAPES.length];
  if (task === 'compare') return k % 2 === 0 ? 'first' : 'second';
  return null;
}

/** One in EVAL_MODULUS content hashes goes to eval (20%). */
const EVAL_MODULUS = 5;

const plural = (kind: ShapeKind): string => `${kind}s`;

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

/** Jitter quantised to tenths, so the content hash is stable and scenes print compactly. */
function jitter(rng: Rng): Jitter {
  return {
    dx: Math.round((rng.uniform() * 2 - 1) * 10) / 10,
    dy: Math.round((rng.uniform() * 2 - 1) * 10) / 10,
  };
}

function cells(rng: Rng, grid: number, n: number): number[] {
  return rng.shuffle(Array.from({ length: grid * grid }, (_, i) => i)).slice(0, n);
}

function randomShapes(rng: Rng, n: number, sizes: readonly Size[] = SIZES): ShapeItem[] {
  return cells(rng, 3, n).map((cell) => ({
    type: 'shape',
    kind: pick(rng, SHAPES),
    color: pick(rng, COLORS),
    size: pick(rng, sizes),
    cell,
    ...jitter(rng),
  }));
}

/** Items in reading order (row-major cell index), which is the order descriptions use. */
function readingOrder<T extends Item>(items: T[]): T[] {
  return [...items].sort((a, b) => a.cell - b.cell);
}

/** Groups shapes by (size, colour, kind) in reading order: [["small red circle", 2], ...]. */
function groupShapes(items: ShapeItem[]): [string, number][] {
  const groups = new Map<string, number>();
  for (const s of readingOrder(items)) {
    const key = `${s.size} ${s.color} ${s.kind}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups.entries()];
}

function groupPhrase([key, n]: [string, number]): string {
  const words = key.split(' ');
  const kind = words.pop() as ShapeKind;
  return `${n} ${words.join(' ')} ${n === 1 ? kind : plural(kind)}`;
}

/** "a", "a and b", "a, b and c". */
export function joinList(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

/**
 * Words-only rendering of a scene.
 * @example
 * describeScene(scene) // "The picture shows 2 small red circles and 1 large blue square."
 */
export function describeScene(scene: Scene): string {
  const digits = readingOrder(scene.items.filter((i): i is DigitItem => i.type === 'digit'));
  const shapes = scene.items.filter((i): i is ShapeItem => i.type === 'shape');
  const parts: string[] = [];
  if (shapes.length) parts.push(joinList(groupShapes(shapes).map(groupPhrase)));
  if (digits.length) parts.push(`the digits ${joinList(digits.map((d) => String(d.value)))}`);
  return `The picture shows ${parts.length ? joinList(parts) : 'nothing'}.`;
}

const wrap = (think: string, answer: string): string =>
  `<think> ${think} </think> <answer> \\boxed{${answer}} </answer>`;

type Draft = { scene: Scene; question: string; answer: string; think: string };

/** Count shapes of a colour, a kind, or both. Answers may be 0. */
function countTask(rng: Rng, slip: boolean): Draft {
  const shapes = randomShapes(rng, 2 + rng.int(5));
  const mode = rng.int(3);
  const color = mode !== 1 ? pick(rng, COLORS) : undefined;
  const kind = mode !== 0 ? pick(rng, SHAPES) : undefined;
  const what = `${color ?? ''} ${kind ? plural(kind) : 'shapes'}`.trim();
  const hits = shapes.filter((s) => (!color || s.color === color) && (!kind || s.kind === kind));
  const groups = groupShapes(hits);
  const n = hits.length;
  const list = groups.length ? groups.map(groupPhrase).join(', ') : 'none';
  const sum = groups.length > 1 ? `${groups.map((g) => g[1]).join(' + ')} = ${n}` : String(n);
  const think = slip
    ? `First, find the ${what}: ${list}. Count: ${n === 0 ? 1 : n - 1}. Wait, that is wrong. ` +
      `Let me look at the image again: ${sum}. Check: ${n} ${what}.`
    : `First, find the ${what}: ${list}. Count: ${sum}. Let me look at the image again to verify: ${n} ${what}.`;
  return {
    scene: { grid: 3, items: shapes },
    question: `How many ${what} are there?`,
    answer: String(n),
    think,
  };
}

/** More of A or of B (colours or kinds); never a tie. */
function compareTask(rng: Rng, slip: boolean): Draft {
  for (;;) {
    const shapes = randomShapes(rng, 3 + rng.int(5));
    const byColor = rng.uniform() < 0.5;
    const pool: readonly string[] = byColor ? COLORS : SHAPES;
    const a = pick(rng, pool);
    const b = pick(
      rng,
      pool.filter((x) => x !== a),
    );
    const has = (s: ShapeItem, v: string) => (byColor ? s.color === v : s.kind === v);
    const na = shapes.filter((s) => has(s, a)).length;
    const nb = shapes.filter((s) => has(s, b)).length;
    if (na === nb) continue;
    const word = (v: string) => (byColor ? v : plural(v as ShapeKind));
    const noun = (v: string) => (byColor ? `${v} shapes` : plural(v as ShapeKind));
    const win = na > nb ? a : b;
    const cmp = `${na} is ${na > nb ? 'more' : 'less'} than ${nb}`;
    const countB = slip ? `${nb + 1}. Wait, that is wrong: ${nb}.` : `${nb}.`;
    const think =
      `First, count the ${noun(a)}: ${na}. Then count the ${noun(b)}: ${countB} ${cmp}, so there are more ` +
      `${noun(win)}. Let me look at the image again to check: ${na} ${noun(a)} and ${nb} ${noun(b)}.`;
    const question = `Are there more ${noun(a)} or ${noun(b)}?`;
    return { scene: { grid: 3, items: shapes }, question, answer: word(win), think };
  }
}

/** Sum of two seven-segment digits on a 2x2 grid. */
function addTask(rng: Rng, slip: boolean): Draft {
  const items: DigitItem[] = cells(rng, 2, 2).map((cell) => ({
    type: 'digit',
    value: rng.int(10),
    cell,
    ...jitter(rng),
  }));
  const [x, y] = readingOrder(items).map((d) => d.value);
  const s = x + y;
  const add = slip
    ? `${x} + ${y} = ${s + 1}. Wait, that is wrong: ${x} + ${y} = ${s}.`
    : `${x} + ${y} = ${s}.`;
  const think =
    `First, read the digits: ${x} and ${y}. Then add: ${add} ` +
    `Let me look at the image again: ${x} and ${y}. Working backwards: ${s} - ${y} = ${x}, correct.`;
  return { scene: { grid: 2, items }, question: 'What is the sum of the digits?', answer: String(s), think };
}

/** Exactly one shape has the biggest size; shapes of one size have equal area (see render.ts). */
function largestTask(rng: Rng, slip: boolean): Draft {
  const n = 2 + rng.int(3);
  const top = 1 + rng.int(2); // index into SIZES: medium or large
  const shapes = randomShapes(rng, n, SIZES.slice(0, top));
  shapes[rng.int(n)].size = SIZES[top];
  const order = readingOrder(shapes);
  const big = order.find((s) => s.size === SIZES[top])!;
  const name = (s: ShapeItem) => `${s.size} ${s.color} ${s.kind}`;
  const other = order.find((s) => s !== big)!;
  const claim = slip
    ? `The largest is the ${name(other)}. Wait, the ${big.color} ${big.kind} is bigger. The largest is the ${name(big)}.`
    : `The largest is the ${name(big)}.`;
  const think =
    `First, compare the sizes: ${order.map(name).join(', ')}. ${claim} ` +
    `Let me look at the image again to verify: the ${big.color} ${big.kind} is the biggest.`;
  return {
    scene: { grid: 3, items: shapes },
    question: 'Which shape is the largest?',
    answer: big.kind,
    think,
  };
}

const BUILDERS: Record<TaskKind, (rng: Rng, slip: boolean) => Draft> = {
  count: countTask,
  compare: compareTask,
  add: addTask,
  largest: largestTask,
};

/** FNV-1a over a string; used for the content-hash split. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Canonical content key of a problem: same key <=> same image and question. */
export function problemKey(p: Pick<Problem, 'scene' | 'question'>): string {
  return JSON.stringify([p.question, p.scene.grid, p.scene.items]);
}

/** Which split a problem belongs to, from its content alone (20% eval). */
export function splitOf(p: Pick<Problem, 'scene' | 'question'>): Split {
  return fnv1a(problemKey(p)) % EVAL_MODULUS === 0 ? 'eval' : 'train';
}

function checkOptions(o: ProblemOptions): void {
  if (o.split !== 'train' && o.split !== 'eval') {
    throw new Error(`makeProblems: split must be 'train' or 'eval', got '${o.split}'`);
  }
  if (!Number.isInteger(o.count) || o.count < 0) {
    throw new Error(`makeProblems: count must be a non-negative integer, got ${o.count}`);
  }
  const bad = (o.tasks ?? TASK_KINDS).filter((t) => !TASK_KINDS.includes(t));
  if (bad.length || o.tasks?.length === 0) {
    throw new Error(
      `makeProblems: tasks must be a non-empty subset of ${TASK_KINDS.join(', ')}; got ${o.tasks}`,
    );
  }
  const r = o.backtrackRate ?? 0.25;
  if (!(r >= 0 && r <= 1)) throw new Error(`makeProblems: backtrackRate must be in [0, 1], got ${r}`);
}

/**
 * Generates `count` problems of one split, deterministically from `seed`; task kinds cycle in order.
 * @example
 * const train = makeProblems({ seed: 0, split: 'train', count: 256 });
 * train[0].textPrompt // "The picture shows ... How many red shapes are there?"
 * train[0].target     // "<think> First, find the red shapes: ... </think> <answer> \\boxed{2} </answer>"
 */
export function makeProblems(opts: ProblemOptions): Problem[] {
  checkOptions(opts);
  const tasks = opts.tasks ?? TASK_KINDS;
  const rate = opts.backtrackRate ?? 0.25;
  const rng = new Rng(opts.seed ?? 0).split('demo-tasks');
  const out: Problem[] = [];
  const kept: Record<TaskKind, number> = { count: 0, compare: 0, add: 0, largest: 0 };
  while (out.length < opts.count) {
    const task = tasks[out.length % tasks.length];
    const draft = BUILDERS[task](rng, rng.uniform() < rate);
    if (splitOf(draft) !== opts.split) continue;
    if (opts.balanceAnswers ?? true) {
      const want = wantedClass(task, kept[task]);
      if (want !== null && answerClass(task, draft) !== want) continue;
      kept[task]++;
    }
    const description = describeScene(draft.scene);
    out.push({
      id: `${opts.split}-${out.length}`,
      split: opts.split,
      task,
      scene: draft.scene,
      question: draft.question,
      answer: draft.answer,
      description,
      textPrompt: `${description} ${draft.question}`,
      target: wrap(draft.think, draft.answer),
    });
  }
  return out;
}

/** Content of the last `\boxed{...}` (no nested braces), or null. */
export function lastBoxed(text: string): string | null {
  const re = /\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}/g;
  let last: string | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) last = m[1];
  return last;
}

/** Lowercase, trim, drop `\text{}` and a trailing period. */
export function normalizeAnswer(s: string): string {
  return s
    .replace(/\\text\{([^{}]*)\}/g, '$1')
    .trim()
    .replace(/\.$/, '')
    .trim()
    .toLowerCase();
}

/**
 * Verifiable reward for a demo problem: 1 if the last \boxed{} equals the gold answer, else 0.
 * @example
 * gradeDemo('<answer> \\boxed{3} </answer>', '3') // 1
 */
export function gradeDemo(completion: string, answer: string): number {
  const got = lastBoxed(completion);
  return got !== null && normalizeAnswer(got) === normalizeAnswer(answer) ? 1 : 0;
}

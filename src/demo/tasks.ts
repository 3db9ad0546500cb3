// Synthetic visual-reasoning tasks with verifiable answers, for the OVR demo (issue 9).
// A scene is a small grid of coloured shapes or seven-segment digits. Four task kinds ask about it:
//   count    "How many red shapes are there?"            -> integer
//   compare  "More red shapes or blue shapes?"          -> the colour from the question ("red")
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
  /**
   * Stage-1 (text-only) prompt: the description followed by the question, like the image modes (image, then the
   * question or the caption instruction). The default tasks' questions and CAPTION_PROMPT are all 7 tokens, so the
   * reply that restates the scene copies it from the same offsets in every mode, and the question right before the
   * reply decides how it starts (a caption, or `<think>`).
   */
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
 * @example answerClass('compare', { question: 'More red shapes or blue shapes?', answer: 'blue' }) // 'second'
 */
export function answerClass(task: TaskKind, d: { question: string; answer: string }): string | null {
  if (task === 'largest') return d.answer;
  if (task !== 'compare') return null;
  const first = d.question.replace(/^More /, '').split(' or ')[0];
  return first.startsWith(d.answer) ? 'first' : 'second';
}

/** The answer class the k-th problem of `task` must have when balancing (null: any). */
function wantedClass(task: TaskKind, k: number): string | null {
  if (task === 'largest') return SHAPES[k % SHAPES.length];
  if (task === 'compare') return k % 2 === 0 ? 'first' : 'second';
  return null;
}

/** The user turn of the stage-0 captioning rows (the base model's perception pre-training); 7 tokens like the questions. */
export const CAPTION_PROMPT = 'Describe the shapes in this picture.';

/**
 * The base model's reply to CAPTION_PROMPT: the description inside a think block. Captions and the cold-start chains
 * then begin with the same tokens (`<think> The picture shows`), so after the `<think>` every reply starts with, a
 * model that learned to caption images goes on describing the image it is asked about instead of stopping.
 * @example captionReply('The picture shows red and blue shapes.') // '<think> The picture shows red and blue shapes. </think>'
 */
export const captionReply = (description: string): string => `<think> ${description} </think>`;

/**
 * A stage-0 visual question about a problem's scene, "Is there a red shape here?" (7 tokens, like the task questions),
 * answered after describing the scene: the base model's instruction following on images (its reply depends on the
 * question's colour, so the model learns to read the text that follows an image, not only the image). Even `k` asks
 * about a colour the scene has, odd `k` about one it lacks (when there is such a colour), so the answers are balanced.
 * @example presenceQuery(problem, 1) // { question: 'Is there a green shape here?', reply: '<think> The picture shows ... So there is no green shape. </think>' }
 */
export function presenceQuery(p: Problem, k: number): { question: string; reply: string } {
  const here = new Set(p.scene.items.flatMap((i) => (i.type === 'shape' ? [i.color] : [])));
  const has = COLORS.filter((c) => here.has(c));
  const lacks = COLORS.filter((c) => !here.has(c));
  const pool = (k % 2 === 0 && has.length) || !lacks.length ? has : lacks;
  const color = pool[fnv1a(`${problemKey(p)}#${k}`) % pool.length];
  const verdict = here.has(color) ? `So there is a ${color} shape.` : `So there is no ${color} shape.`;
  return {
    question: `Is there a ${color} shape here?`,
    reply: `<think> ${p.description} ${verdict} </think>`,
  };
}

/** One in EVAL_MODULUS content hashes goes to eval (20%). */
const EVAL_MODULUS = 5;

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

/**
 * Shape scenes fill every cell of a SHAPE_GRID x SHAPE_GRID grid: at the demo's 56 px images each cell is exactly
 * one merged vision token (2x2 patches of 14 px), and the i-th item of a description is the i-th token. Shapes sit
 * centred in their cell (no jitter): a tiny random-init vision tower learns 27 fixed looks per cell in a few hundred
 * steps, while with jitter it learned colours only (size and kind stayed at chance after 500 captioning steps).
 */
export const SHAPE_GRID = 2;
const SHAPE_COUNT = SHAPE_GRID * SHAPE_GRID;

function randomShapes(rng: Rng, sizes: readonly Size[] = SIZES): ShapeItem[] {
  return cells(rng, SHAPE_GRID, SHAPE_COUNT).map((cell) => ({
    type: 'shape',
    kind: pick(rng, SHAPES),
    color: pick(rng, COLORS),
    size: pick(rng, sizes),
    cell,
    dx: 0,
    dy: 0,
  }));
}

/** Items in reading order (row-major cell index), which is the order descriptions use. */
function readingOrder<T extends Item>(items: T[]): T[] {
  return [...items].sort((a, b) => a.cell - b.cell);
}

/** "small red circle". */
const shapeName = (s: ShapeItem): string => `${s.size} ${s.color} ${s.kind}`;

/** "a small red circle" ("an" never occurs: sizes start with a consonant). */
const withArticle = (s: ShapeItem): string => `a ${shapeName(s)}`;

/** "a", "a and b", "a, b and c". */
export function joinList(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

/**
 * Words-only rendering of a scene: every item in reading order (row by row from the top left), one phrase each, so a
 * caption names the cells in the order the vision tower's merged tokens see them. `detail: 'colors'` names only the
 * colours of shapes (the demo's default tasks ask about colours; see SHAPE_GRID for why).
 * @example
 * describeScene(scene)                       // "The picture shows a small red circle, a large blue square and a small red circle."
 * describeScene(scene, { detail: 'colors' }) // "The picture shows red, blue and red shapes."
 */
export function describeScene(scene: Scene, opts: { detail?: 'full' | 'colors' } = {}): string {
  const items = readingOrder(scene.items);
  const shapeItems = items.filter((i): i is ShapeItem => i.type === 'shape');
  const digits = items.filter((i): i is DigitItem => i.type === 'digit').map((d) => String(d.value));
  const parts: string[] = [];
  if (shapeItems.length && opts.detail === 'colors')
    parts.push(`${joinList(shapeItems.map((s) => s.color))} ${shapeItems.length === 1 ? 'shape' : 'shapes'}`);
  else if (shapeItems.length) parts.push(joinList(shapeItems.map(withArticle)));
  if (digits.length) parts.push(`the digits ${joinList(digits)}`);
  return `The picture shows ${parts.length ? joinList(parts) : 'nothing'}.`;
}

const wrap = (think: string, answer: string): string =>
  `<think> ${think} </think> <answer> \\boxed{${answer}} </answer>`;

/**
 * `think` is the reasoning after the chain's opening restatement of the scene (added by makeProblems); `detail` is
 * how much of the scene that restatement (and the problem's description) names.
 */
type Draft = { scene: Scene; question: string; answer: string; think: string; detail: 'full' | 'colors' };

/**
 * A running count as a scratchpad: "0 red; blue: 0 red; red: 1 red; red: 2 red; green: 2 red". Each step names the
 * next shape's colour (copied from the restated scene) and the counts after it, and every count sits next to its
 * colour word, so each token is a short-range copy or a +1: what a tiny model can learn in a few hundred steps.
 * @example tally(shapes, ['red', 'blue']) // "0 red 0 blue; red: 1 red 0 blue; blue: 1 red 1 blue; ..."
 */
export function tally(shapes: ShapeItem[], colors: readonly Color[]): string {
  const n = colors.map(() => 0);
  const counts = () => colors.map((c, k) => `${n[k]} ${c}`).join(' ');
  const steps = [counts()];
  for (const s of readingOrder(shapes)) {
    colors.forEach((c, k) => {
      if (s.color === c) n[k]++;
    });
    steps.push(`${s.color}: ${counts()}`);
  }
  return steps.join('; ');
}

/** Count the shapes of one colour (0..4). */
function countTask(rng: Rng, slip: boolean): Draft {
  const shapes = randomShapes(rng);
  const color = pick(rng, COLORS);
  const n = shapes.filter((s) => s.color === color).length;
  const count = slip ? `${n === 0 ? 1 : n - 1}. Wait, I miscounted: ${n}.` : `${n}.`;
  return {
    scene: { grid: SHAPE_GRID, items: shapes },
    question: `How many ${color} shapes are there?`,
    answer: String(n),
    think:
      `First, count the ${color} ones: ${tally(shapes, [color])}. That makes ${count} ` +
      `Let me look at the image again to verify: ${n} ${color}.`,
    detail: 'colors',
  };
}

/** More shapes of colour A or of colour B; never a tie. */
function compareTask(rng: Rng, slip: boolean): Draft {
  for (;;) {
    const shapes = randomShapes(rng);
    const a = pick(rng, COLORS);
    const b = pick(
      rng,
      COLORS.filter((x) => x !== a),
    );
    const na = shapes.filter((s) => s.color === a).length;
    const nb = shapes.filter((s) => s.color === b).length;
    if (na === nb) continue;
    const win = na > nb ? a : b;
    const claim = slip
      ? `So more ${na > nb ? b : a} shapes. Wait, that is wrong: ${na} ${a} and ${nb} ${b}, so more ${win} shapes.`
      : `So ${na} ${a} and ${nb} ${b}: more ${win} shapes.`;
    const think =
      `First, count the ${a} and ${b} ones: ${tally(shapes, [a, b])}. ${claim} ` +
      `Let me look at the image again to check: more ${win}.`;
    const question = `More ${a} shapes or ${b} shapes?`;
    return { scene: { grid: SHAPE_GRID, items: shapes }, question, answer: win, think, detail: 'colors' };
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
    `First, add the digits: ${add} Let me look at the image again: ${x} and ${y}. ` +
    `Working backwards: ${s} - ${y} = ${x}, correct.`;
  return {
    scene: { grid: 2, items },
    question: 'What is the sum of the digits?',
    answer: String(s),
    think,
    detail: 'full',
  };
}

/** Exactly one shape has the biggest size; shapes of one size have equal area (see render.ts). */
function largestTask(rng: Rng, slip: boolean): Draft {
  const top = 1 + rng.int(2); // index into SIZES: medium or large
  const shapes = randomShapes(rng, SIZES.slice(0, top));
  shapes[rng.int(shapes.length)].size = SIZES[top];
  const order = readingOrder(shapes);
  const big = order.find((s) => s.size === SIZES[top])!;
  const other = order.find((s) => s !== big)!;
  const claim = slip
    ? `The largest is the ${shapeName(other)}. Wait, the ${big.color} ${big.kind} is bigger.`
    : `The largest is the ${shapeName(big)}.`;
  const think =
    `First, compare the sizes: the ${SIZES[top]} one is the biggest. ${claim} ` +
    `Let me look at the image again to verify: the ${big.color} ${big.kind}.`;
  return {
    scene: { grid: SHAPE_GRID, items: shapes },
    question: 'Which shape is the largest?',
    answer: big.kind,
    think,
    detail: 'full',
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
    const description = describeScene(draft.scene, { detail: draft.detail });
    out.push({
      id: `${opts.split}-${out.length}`,
      split: opts.split,
      task,
      scene: draft.scene,
      question: draft.question,
      answer: draft.answer,
      description,
      textPrompt: `${description} ${draft.question}`,
      target: wrap(`${description} ${draft.think}`, draft.answer),
    });
  }
  return out;
}

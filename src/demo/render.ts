// Draws demo scenes (tasks.ts) as SVG and rasterises them to PNG with sharp (librsvg).
// Geometry: the image is split into `grid` x `grid` cells; each item sits in its cell, shifted by its jitter
// within the free room, so items never overlap. Shapes of one size class have EQUAL AREA (circle radius r,
// square side r*sqrt(pi), equilateral triangle side r*sqrt(4*pi/sqrt(3))), so "largest" is unambiguous by area.
// Digits are seven-segment glyphs made of rects: no fonts involved, so images are identical on every machine.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../util/rng.js';
import {
  CAPTION_PROMPT,
  type Color,
  captionReply,
  type DigitItem,
  type Item,
  makeProblems,
  type Problem,
  type ProblemOptions,
  presenceQuery,
  type Scene,
  type ShapeItem,
  type Size,
} from './tasks.js';

/**
 * Fill colours (sRGB), far apart so a pixel's colour names its shape. The background is the processor's
 * normalisation mean (OpenAI CLIP mean x 255), so it normalises to ~0 and the vision tower's input is the shapes
 * alone: on white, every patch carries a large constant that drowns the shapes in a random-init tower.
 */
export const PALETTE: Record<Color | 'digit' | 'background', [number, number, number]> = {
  red: [220, 40, 40],
  green: [30, 160, 60],
  blue: [40, 80, 220],
  digit: [17, 17, 17],
  background: [123, 117, 104],
};

/**
 * Half extent of a shape's bounding box for each size class, as a fraction of the cell side. Shapes of one class share
 * the bounding box (circle of radius h, square of side 2h, isosceles triangle of base and height 2h), so the kinds
 * differ in many pixels (a triangle covers half its square): at equal AREA a random-init vision tower's features
 * barely separate the kinds (1% of their variance against 68% for colour). The classes are far enough apart that
 * every shape of a bigger class still has the larger area: large triangle 0.289 > medium square 0.25 and medium
 * triangle 0.125 > small square 0.09 (cell areas), so "largest" is unambiguous by area too.
 */
export const SIZE_FRACTION: Record<Size, number> = { small: 0.15, medium: 0.25, large: 0.38 };

/** Seven-segment layout: segments a..g lit for each digit. */
export const SEGMENTS: readonly string[] = [
  'abcdef',
  'bc',
  'abdeg',
  'abcdg',
  'bcfg',
  'acdfg',
  'acdefg',
  'abc',
  'abcdefg',
  'abcdfg',
];

const MARGIN = 1; // px kept free at each cell edge

const rgb = (c: [number, number, number]) => `rgb(${c[0]},${c[1]},${c[2]})`;
const f2 = (x: number) => Number(x.toFixed(2));

/** Centre of an item: its cell centre shifted by jitter * free room (half extents hx, hy). */
function centre(item: Item, grid: number, px: number, hx: number, hy: number): [number, number] {
  const cell = px / grid;
  const col = item.cell % grid;
  const row = Math.floor(item.cell / grid);
  const roomX = Math.max(0, cell / 2 - hx - MARGIN);
  const roomY = Math.max(0, cell / 2 - hy - MARGIN);
  return [(col + 0.5) * cell + item.dx * roomX, (row + 0.5) * cell + item.dy * roomY];
}

function shapeSvg(s: ShapeItem, grid: number, px: number): string {
  const h = SIZE_FRACTION[s.size] * (px / grid);
  const fill = rgb(PALETTE[s.color]);
  const [cx, cy] = centre(s, grid, px, h, h);
  if (s.kind === 'circle') return `<circle cx="${f2(cx)}" cy="${f2(cy)}" r="${f2(h)}" fill="${fill}"/>`;
  if (s.kind === 'square')
    return `<rect x="${f2(cx - h)}" y="${f2(cy - h)}" width="${f2(2 * h)}" height="${f2(2 * h)}" fill="${fill}"/>`;
  const pts = [
    [cx, cy - h],
    [cx + h, cy + h],
    [cx - h, cy + h],
  ];
  return `<polygon points="${pts.map((p) => `${f2(p[0])},${f2(p[1])}`).join(' ')}" fill="${fill}"/>`;
}

function digitSvg(d: DigitItem, grid: number, px: number): string {
  const h = 0.6 * (px / grid);
  const w = 0.5 * h;
  const t = Math.max(1.5, 0.14 * h);
  const [cx, cy] = centre(d, grid, px, w / 2, h / 2);
  const x0 = cx - w / 2;
  const y0 = cy - h / 2;
  const seg: Record<string, [number, number, number, number]> = {
    a: [0, 0, w, t],
    b: [w - t, 0, t, h / 2],
    c: [w - t, h / 2, t, h / 2],
    d: [0, h - t, w, t],
    e: [0, h / 2, t, h / 2],
    f: [0, 0, t, h / 2],
    g: [0, h / 2 - t / 2, w, t],
  };
  const fill = rgb(PALETTE.digit);
  return [...SEGMENTS[d.value]]
    .map((k) => {
      const [x, y, sw, sh] = seg[k];
      return `<rect x="${f2(x0 + x)}" y="${f2(y0 + y)}" width="${f2(sw)}" height="${f2(sh)}" fill="${fill}"/>`;
    })
    .join('');
}

/**
 * SVG text of a scene at `px` x `px` pixels.
 * @example
 * sceneToSvg({ grid: 3, items: [{ type: 'shape', kind: 'circle', color: 'red', size: 'large', cell: 4, dx: 0, dy: 0 }] }, 56)
 */
export function sceneToSvg(scene: Scene, px: number): string {
  if (!Number.isInteger(px) || px < 16)
    throw new Error(`sceneToSvg: image size must be an integer >= 16, got ${px}`);
  const body = scene.items
    .map((it) => (it.type === 'shape' ? shapeSvg(it, scene.grid, px) : digitSvg(it, scene.grid, px)))
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px}" height="${px}" viewBox="0 0 ${px} ${px}">` +
    `<rect width="${px}" height="${px}" fill="${rgb(PALETTE.background)}"/>${body}</svg>`
  );
}

/**
 * Rasterises a scene to an RGB PNG (no alpha). 56 px = 4x4 patches of 14 for the vision tower.
 * @example
 * const png = await renderScene(problem.scene, 56);
 */
export async function renderScene(scene: Scene, px = 56): Promise<Buffer> {
  return sharp(Buffer.from(sceneToSvg(scene, px)))
    .removeAlpha()
    .png()
    .toBuffer();
}

/** A demo problem with its rendered image. */
export type VisualProblem = Problem & { image: Buffer; imageSize: number };

/**
 * Renders the image of each problem (sequentially: sharp already uses the 2 cores).
 * @example
 * const evalSet = await renderProblems(makeProblems({ seed: 0, split: 'eval', count: 64 }), 56);
 */
export async function renderProblems(problems: Problem[], px = 56): Promise<VisualProblem[]> {
  const out: VisualProblem[] = [];
  for (const p of problems) out.push({ ...p, image: await renderScene(p.scene, px), imageSize: px });
  return out;
}

/**
 * makeProblems + renderProblems in one call.
 * @example
 * const rl = await makeVisualProblems({ seed: 1, split: 'train', count: 128, imageSize: 56 });
 * rl[0].image // PNG Buffer, 56x56 RGB
 */
export async function makeVisualProblems(
  opts: ProblemOptions & { imageSize?: number },
): Promise<VisualProblem[]> {
  return renderProblems(makeProblems(opts), opts.imageSize ?? 56);
}

/** One JSONL row in the `messages` format of data/dataset.ts, plus the fields a verifiable reward needs. */
export type DemoRow = {
  id: string;
  task: string;
  answer: string;
  messages: (
    | { role: 'user'; content: string | ({ type: 'text'; text: string } | { type: 'image' })[] }
    | { role: 'assistant'; content: string | { type: 'text'; text: string; train?: boolean }[] }
  )[];
  image?: string;
};

/** What a demo JSONL row trains: text rendering -> chain, image -> chain, image -> description (caption), or the
 * description in words -> itself (echo: the base model reads scenes given in words as it reads images). */
export const DEMO_ROW_MODES = ['text', 'primed', 'image', 'caption', 'echo', 'presence'] as const;
export type DemoRowMode = (typeof DEMO_ROW_MODES)[number];
/** The modes whose rows show the image (its PNG is written beside the JSONL). */
const IMAGE_ROW_MODES: readonly DemoRowMode[] = ['image', 'caption', 'presence'];

type Reply = string | { type: 'text'; text: string; train?: boolean }[];

/**
 * User text and assistant reply of a problem's row in `mode`. `primed`: the user turn is the question alone and the
 * reply's opening restatement of the scene is given, not trained (`train: false`): the rest of the chain is learned
 * from the scene in words at the place where, on an image, the model's own description of it stands.
 */
function turns(p: Problem, mode: DemoRowMode, k: number): [string, Reply] {
  if (mode === 'presence') {
    const q = presenceQuery(p, k);
    return [q.question, q.reply];
  }
  if (mode === 'text') return [p.textPrompt, p.target];
  if (mode === 'primed') {
    const given = `<think> ${p.description}`;
    if (!p.target.startsWith(given))
      throw new Error(`writeDemoJsonl: ${p.id}'s chain does not open with its scene`);
    return [
      p.question,
      [
        { type: 'text', text: given, train: false },
        { type: 'text', text: p.target.slice(given.length) },
      ],
    ];
  }
  if (mode === 'image') return [p.question, p.target];
  if (mode === 'echo') return [`${p.description} ${CAPTION_PROMPT}`, captionReply(p.description)];
  return [CAPTION_PROMPT, captionReply(p.description)];
}

/**
 * Writes problems as chat JSONL. `mode: 'text'` gives the stage-1 rows (user = scene description + question);
 * `mode: 'image'` writes `images/<file stem>-<id>.png` beside the file and gives rows whose user turn is the question alone,
 * with `image` set (dataset.ts prepends the image part to the user turn); `mode: 'caption'` gives the stage-0
 * perception rows (image + CAPTION_PROMPT -> the scene description). Returns the rows written.
 * @example
 * await writeDemoJsonl('run/data/sft.jsonl', makeProblems({ seed: 0, split: 'train', count: 512 }), { mode: 'text' });
 * await writeDemoJsonl('run/data/rl.jsonl', makeProblems({ seed: 1, split: 'train', count: 256 }), { mode: 'image' });
 */
export async function writeDemoJsonl(
  file: string,
  problems: Problem[],
  opts: { mode: DemoRowMode; imageSize?: number },
): Promise<DemoRow[]> {
  if (!DEMO_ROW_MODES.includes(opts.mode)) {
    throw new Error(`writeDemoJsonl: mode must be one of ${DEMO_ROW_MODES.join(', ')}; got '${opts.mode}'`);
  }
  const withImage = IMAGE_ROW_MODES.includes(opts.mode);
  const dir = path.dirname(file);
  await mkdir(withImage ? path.join(dir, 'images') : dir, { recursive: true });
  const rows: DemoRow[] = [];
  for (const [k, p] of problems.entries()) {
    const [user, reply] = turns(p, opts.mode, k);
    const row: DemoRow = {
      id: p.id,
      task: p.task,
      answer: p.answer,
      messages: [
        // Image rows: the image, then the text (see Problem.textPrompt); its path comes from `image`.
        { role: 'user', content: withImage ? [{ type: 'image' }, { type: 'text', text: user }] : user },
        { role: 'assistant', content: reply },
      ],
    };
    if (withImage) {
      row.image = `images/${path.basename(file, '.jsonl')}-${p.id}.png`;
      await writeFile(path.join(dir, row.image), await renderScene(p.scene, opts.imageSize ?? 56));
    }
    rows.push(row);
  }
  await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return rows;
}

/**
 * Writes rows (from writeDemoJsonl calls into the same folder, so image paths stay valid) shuffled with `seed` into
 * one JSONL file: a stage's training mix. Returns the rows in file order.
 * @example await mixDemoJsonl('run/data/pretrain.jsonl', [...captions, ...echo], 0);
 */
export async function mixDemoJsonl(file: string, rows: DemoRow[], seed: number): Promise<DemoRow[]> {
  const mixed = new Rng(seed).split('demo-mix').shuffle([...rows]);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, mixed.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return mixed;
}

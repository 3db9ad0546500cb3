// Draws demo scenes (tasks.ts) as SVG and rasterises them to PNG with sharp (librsvg).
// Geometry: the image is split into `grid` x `grid` cells; each item sits in its cell, shifted by its jitter
// within the free room, so items never overlap. Shapes of one size class have EQUAL AREA (circle radius r,
// square side r*sqrt(pi), equilateral triangle side r*sqrt(4*pi/sqrt(3))), so "largest" is unambiguous by area.
// Digits are seven-segment glyphs made of rects: no fonts involved, so images are identical on every machine.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import {
  type Color,
  type DigitItem,
  type Item,
  makeProblems,
  type Problem,
  type ProblemOptions,
  type Scene,
  type ShapeItem,
  type Size,
} from './tasks.js';

/** Fill colours (sRGB), far apart so a pixel's colour names its shape. */
export const PALETTE: Record<Color | 'digit' | 'background', [number, number, number]> = {
  red: [220, 40, 40],
  green: [30, 160, 60],
  blue: [40, 80, 220],
  digit: [17, 17, 17],
  background: [255, 255, 255],
};

/** Radius of the equal-area circle for each size class, as a fraction of the cell side. */
export const SIZE_FRACTION: Record<Size, number> = { small: 0.18, medium: 0.26, large: 0.34 };

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

const SQRT_PI = Math.sqrt(Math.PI);
const TRI_SIDE = Math.sqrt((4 * Math.PI) / Math.sqrt(3)); // side / r for an equilateral triangle of area pi r^2
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
  const r = SIZE_FRACTION[s.size] * (px / grid);
  const fill = rgb(PALETTE[s.color]);
  if (s.kind === 'circle') {
    const [cx, cy] = centre(s, grid, px, r, r);
    return `<circle cx="${f2(cx)}" cy="${f2(cy)}" r="${f2(r)}" fill="${fill}"/>`;
  }
  if (s.kind === 'square') {
    const h = (r * SQRT_PI) / 2;
    const [cx, cy] = centre(s, grid, px, h, h);
    return `<rect x="${f2(cx - h)}" y="${f2(cy - h)}" width="${f2(2 * h)}" height="${f2(2 * h)}" fill="${fill}"/>`;
  }
  const side = r * TRI_SIDE;
  const hh = (side * Math.sqrt(3)) / 4; // half height; the bounding box is centred
  const [cx, cy] = centre(s, grid, px, side / 2, hh);
  const pts = [
    [cx, cy - hh],
    [cx + side / 2, cy + hh],
    [cx - side / 2, cy + hh],
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
  messages: { role: 'user' | 'assistant'; content: string }[];
  image?: string;
};

/**
 * Writes problems as chat JSONL. `mode: 'text'` gives the stage-1 rows (user = scene description + question);
 * `mode: 'image'` writes `images/<id>.png` beside the file and gives rows whose user turn is the question alone,
 * with `image` set (dataset.ts prepends the image part to the user turn). Returns the rows written.
 * @example
 * await writeDemoJsonl('run/data/sft.jsonl', makeProblems({ seed: 0, split: 'train', count: 512 }), { mode: 'text' });
 * await writeDemoJsonl('run/data/rl.jsonl', makeProblems({ seed: 1, split: 'train', count: 256 }), { mode: 'image' });
 */
export async function writeDemoJsonl(
  file: string,
  problems: Problem[],
  opts: { mode: 'text' | 'image'; imageSize?: number },
): Promise<DemoRow[]> {
  if (opts.mode !== 'text' && opts.mode !== 'image') {
    throw new Error(`writeDemoJsonl: mode must be 'text' or 'image', got '${opts.mode}'`);
  }
  const dir = path.dirname(file);
  await mkdir(opts.mode === 'image' ? path.join(dir, 'images') : dir, { recursive: true });
  const rows: DemoRow[] = [];
  for (const p of problems) {
    const user = opts.mode === 'text' ? p.textPrompt : p.question;
    const row: DemoRow = {
      id: p.id,
      task: p.task,
      answer: p.answer,
      messages: [
        { role: 'user', content: user },
        { role: 'assistant', content: p.target },
      ],
    };
    if (opts.mode === 'image') {
      row.image = `images/${p.id}.png`;
      await writeFile(path.join(dir, row.image), await renderScene(p.scene, opts.imageSize ?? 56));
    }
    rows.push(row);
  }
  await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return rows;
}

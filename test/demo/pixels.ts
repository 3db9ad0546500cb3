// Independent reader of demo images for the tests: classifies pixels by hue thresholds (not the renderer's
// palette), finds connected components, names shapes by how much of their bounding box they fill, and reads
// seven-segment digits by probing where each segment must be. Nothing here imports src/demo.
import sharp from 'sharp';

export type Blob = { cls: string; area: number; w: number; h: number; x0: number; y0: number; fill: number };

function classify(r: number, g: number, b: number): string {
  if (r < 90 && g < 90 && b < 90) return 'dark';
  if (r > 150 && g < 110 && b < 110) return 'red';
  if (g > 110 && r < 110 && b < 130) return 'green';
  if (b > 150 && r < 110 && g < 140) return 'blue';
  return '';
}

export async function readImage(
  png: Buffer,
): Promise<{ w: number; h: number; cls: string[]; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const cls: string[] = [];
  for (let i = 0; i < info.width * info.height; i++) {
    const o = i * info.channels;
    cls.push(classify(data[o], data[o + 1], data[o + 2]));
  }
  return { w: info.width, h: info.height, cls, channels: info.channels };
}

/** 4-connected components of equal non-empty class, ignoring specks under 4 px. */
export function blobs(img: { w: number; h: number; cls: string[] }): Blob[] {
  const seen = new Uint8Array(img.cls.length);
  const out: Blob[] = [];
  for (let s = 0; s < img.cls.length; s++) {
    if (seen[s] || !img.cls[s]) continue;
    const stack = [s];
    seen[s] = 1;
    let area = 0;
    let [x0, y0, x1, y1] = [img.w, img.h, -1, -1];
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % img.w;
      const y = Math.floor(p / img.w);
      area++;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      const nbrs = [x > 0 ? p - 1 : -1, x < img.w - 1 ? p + 1 : -1, y > 0 ? p - img.w : -1, p + img.w];
      for (const q of nbrs) {
        if (q >= 0 && q < img.cls.length && !seen[q] && img.cls[q] === img.cls[s]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    const w = x1 - x0 + 1;
    const h = y1 - y0 + 1;
    if (area >= 4) out.push({ cls: img.cls[s], area, w, h, x0, y0, fill: area / (w * h) });
  }
  return out;
}

/** Pixels of the blob's class in row `y` (relative to the blob's box). */
function rowWidth(img: { w: number; cls: string[] }, b: Blob, y: number): number {
  let n = 0;
  for (let x = 0; x < b.w; x++) if (img.cls[(b.y0 + y) * img.w + b.x0 + x] === b.cls) n++;
  return n;
}

/** Shape name from geometry: a triangle's bottom third holds far more pixels than its top third, a square fills its box, a circle does neither. */
export function shapeOf(img: { w: number; cls: string[] }, b: Blob): string {
  const third = Math.max(1, Math.floor(b.h / 3));
  let top = 0;
  let bottom = 0;
  for (let y = 0; y < third; y++) {
    top += rowWidth(img, b, y);
    bottom += rowWidth(img, b, b.h - 1 - y);
  }
  if (bottom > 2 * top) return 'triangle';
  return b.fill > 0.93 ? 'square' : 'circle';
}

// Standard seven-segment encoding, written out here independently of the renderer.
const SEVEN: Record<string, number> = {
  abcdef: 0,
  bc: 1,
  abdeg: 2,
  abcdg: 3,
  bcfg: 4,
  acdfg: 5,
  acdefg: 6,
  abc: 7,
  abcdefg: 8,
  abcdfg: 9,
};

/** Reads a dark blob as a digit by probing the seven segment regions of its bounding box. */
export function readDigit(img: { w: number; cls: string[] }, b: Blob): number {
  if (b.w < b.h * 0.3) return 1;
  const dark = (x: number, y: number) => img.cls[(b.y0 + y) * img.w + b.x0 + x] === 'dark';
  const anyIn = (xa: number, xb: number, ya: number, yb: number) => {
    for (let y = Math.floor(ya); y <= Math.min(b.h - 1, Math.floor(yb)); y++) {
      for (let x = Math.floor(xa); x <= Math.min(b.w - 1, Math.floor(xb)); x++) if (dark(x, y)) return true;
    }
    return false;
  };
  const mx = Math.floor(b.w / 2);
  const on: Record<string, boolean> = {
    a: anyIn(mx, mx, 0, b.h * 0.2),
    g: anyIn(mx, mx, b.h * 0.4, b.h * 0.6),
    d: anyIn(mx, mx, b.h * 0.8, b.h - 1),
    f: anyIn(0, b.w * 0.3, b.h * 0.25, b.h * 0.25),
    b: anyIn(b.w * 0.7, b.w - 1, b.h * 0.25, b.h * 0.25),
    e: anyIn(0, b.w * 0.3, b.h * 0.75, b.h * 0.75),
    c: anyIn(b.w * 0.7, b.w - 1, b.h * 0.75, b.h * 0.75),
  };
  const key = 'abcdefg'
    .split('')
    .filter((k) => on[k])
    .join('');
  const d = SEVEN[key];
  if (d === undefined) throw new Error(`unreadable digit: segments '${key}'`);
  return d;
}

// Line charts for run reports: vega-lite spec -> vega View (headless, renderer 'none') -> SVG -> PNG via sharp.
// Text is drawn by librsvg through fontconfig (DejaVu Sans here); vega has no canvas in Node, so it estimates
// label widths, which only affects padding. vega is imported lazily: importing `ovr` stays cheap.

import sharp from 'sharp';

export type Series = { name: string; points: [number, number][] };
export interface LineChartSpec {
  title: string;
  series: Series[];
  xLabel: string;
  yLabel: string;
  /** Plot area in px (the PNG adds axes, title and legend). Defaults 480 x 260. */
  width?: number;
  height?: number;
}

type Row = { x: number; y: number; series: string };

function toRows(spec: LineChartSpec): Row[] {
  if (!Array.isArray(spec.series) || spec.series.length === 0) {
    throw new Error(`lineChart '${spec.title}': series is empty; pass at least one {name, points}`);
  }
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const s of spec.series) {
    if (seen.has(s.name)) throw new Error(`lineChart '${spec.title}': duplicate series name '${s.name}'`);
    seen.add(s.name);
    s.points.forEach(([x, y], i) => {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        throw new Error(
          `lineChart '${spec.title}': series '${s.name}' point ${i} is [${x}, ${y}]; drop non-finite points first`,
        );
      }
      rows.push({ x, y, series: s.name });
    });
  }
  return rows;
}

/** The vega-lite spec of a line chart (exported for tests and for users who want the JSON). */
export function lineChartSpec(spec: LineChartSpec): Record<string, unknown> {
  const rows = toRows(spec);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: spec.title,
    width: spec.width ?? 480,
    height: spec.height ?? 260,
    background: 'white',
    config: { font: 'DejaVu Sans, Arial, sans-serif' },
    data: { values: rows },
    mark: { type: 'line', point: rows.length <= 200 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: spec.xLabel },
      y: { field: 'y', type: 'quantitative', title: spec.yLabel, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, sort: spec.series.map((s) => s.name) },
    },
  };
}

/** Renders a vega-lite spec to SVG text, headless. */
export async function vegaLiteToSvg(vlSpec: Record<string, unknown>): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(vlSpec as any).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * A line chart as PNG bytes.
 * @example
 * const png = await lineChart({
 *   title: 'Reward', xLabel: 'step', yLabel: 'mean reward',
 *   series: [{ name: 'train', points: [[0, 0.1], [1, 0.3], [2, 0.5]] }],
 * });
 * await fs.writeFile('reward.png', png);
 */
export async function lineChart(spec: LineChartSpec): Promise<Buffer> {
  const svg = await vegaLiteToSvg(lineChartSpec(spec));
  return sharp(Buffer.from(svg)).png().toBuffer();
}

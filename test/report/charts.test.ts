import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lineChart, lineChartSpec } from '../../src/report/charts.js';

const series = [
  {
    name: 'reward',
    points: Array.from({ length: 30 }, (_, i) => [i, Math.min(1, 0.1 + i / 30)] as [number, number]),
  },
  {
    name: 'accuracy',
    points: Array.from({ length: 30 }, (_, i) => [i, 0.5 + 0.3 * Math.sin(i / 4)] as [number, number]),
  },
];

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, info };
}

describe('lineChart', () => {
  it('renders a PNG with axes, lines in two colours and non-trivial variance', async () => {
    const t0 = performance.now();
    const png = await lineChart({ title: 'GRPO reward', series, xLabel: 'step', yLabel: 'mean reward' });
    console.log(`lineChart: ${png.length} bytes in ${(performance.now() - t0).toFixed(0)} ms`);
    const { data, info } = await pixels(png);
    expect(info.width).toBeGreaterThan(480);
    expect(info.height).toBeGreaterThan(260);
    let sum = 0;
    let sq = 0;
    const hues = new Set<string>();
    for (let i = 0; i < data.length; i += 3) {
      const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
      sum += v;
      sq += v * v;
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 80) hues.add(r > b ? 'warm' : 'cool');
    }
    const n = data.length / 3;
    const std = Math.sqrt(sq / n - (sum / n) ** 2);
    console.log(`pixel std ${std.toFixed(1)}, hues ${[...hues]}`);
    expect(std).toBeGreaterThan(10);
    expect(hues).toEqual(new Set(['warm', 'cool'])); // two distinct series colours (vega: blue, orange)
  });

  it('draws text: different titles change the title band', async () => {
    const base = { series: series.slice(0, 1), xLabel: 'step', yLabel: 'y' };
    const a = await pixels(await lineChart({ ...base, title: 'A' }));
    const b = await pixels(await lineChart({ ...base, title: 'Accuracy over training steps' }));
    expect([a.info.width, a.info.height]).toEqual([b.info.width, b.info.height]);
    let diff = 0;
    for (let i = 0; i < a.info.width * 25 * 3; i++) diff += a.data[i] !== b.data[i] ? 1 : 0;
    console.log(`title band differing bytes: ${diff}`);
    expect(diff).toBeGreaterThan(100);
  });

  it('rejects empty series, duplicates and non-finite points, naming them', async () => {
    const base = { title: 'T', xLabel: 'x', yLabel: 'y' };
    await expect(lineChart({ ...base, series: [] })).rejects.toThrow(/series is empty/);
    expect(() =>
      lineChartSpec({
        ...base,
        series: [
          { name: 'a', points: [] },
          { name: 'a', points: [] },
        ],
      }),
    ).toThrow(/duplicate series name 'a'/);
    expect(() =>
      lineChartSpec({
        ...base,
        series: [
          {
            name: 'loss',
            points: [
              [0, 1],
              [1, Number.NaN],
            ],
          },
        ],
      }),
    ).toThrow(/series 'loss' point 1 is \[1, NaN\]/);
  });
});

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lineChart } from '../../src/report/charts.js';
import { escapeHtml, writeReport } from '../../src/report/html.js';

const VOID = new Set(['meta', 'img', 'br', 'hr', 'link', 'input']);

/** Every non-void open tag has its matching close tag, properly nested. */
function checkNesting(html: string): void {
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>/g)) {
    const [, close, tag] = m;
    const t = tag.toLowerCase();
    if (VOID.has(t)) continue;
    if (!close) stack.push(t);
    else expect(stack.pop(), `</${t}> at ${m.index}`).toBe(t);
  }
  expect(stack).toEqual([]);
}

describe('writeReport', () => {
  it('writes a self-contained, well-formed HTML with charts, numbers, tables and tagged samples', async () => {
    const png = await lineChart({
      title: 'reward',
      xLabel: 'step',
      yLabel: 'reward',
      series: [
        {
          name: 'train',
          points: [
            [0, 0.2],
            [1, 0.4],
            [2, 0.7],
          ],
        },
      ],
    });
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ovr-report-')), 'run');
    const file = await writeReport(dir, {
      title: 'OVR demo <quick>',
      summary: {
        'eval accuracy (cold start)': 0.3125,
        'eval accuracy (RL)': 0.671875,
        'wall time': '3m 12s',
      },
      charts: [{ name: 'reward', png }],
      tables: [
        {
          name: 'Eval',
          columns: ['model', 'accuracy'],
          rows: [
            ['cold start', 0.3125],
            ['RL', 0.671875],
          ],
        },
      ],
      samples: [
        {
          title: 'eval-0 (add)',
          prompt: 'What is the sum of the digits?',
          completion: '<think> First, read: 3 and 5. Wait, 3 + 5 = 8. </think> <answer> \\boxed{8} </answer>',
          meta: { answer: '8', reward: 1 },
        },
        { completion: 'The answer is 3.', tags: ['verification'] },
      ],
    });
    expect(file).toBe(path.join(dir, 'index.html'));
    const html = readFileSync(file, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    checkNesting(html);
    expect(html).toContain('<title>OVR demo &lt;quick&gt;</title>');
    for (const s of ['0.3125', '0.6719', '3m 12s', 'cold start', '<th>accuracy</th>'])
      expect(html).toContain(s);
    // Chart inlined byte-for-byte and written beside the HTML.
    const src = /<img alt="reward" src="data:image\/png;base64,([A-Za-z0-9+/=]+)">/.exec(html);
    expect(src).not.toBeNull();
    const inlined = Buffer.from(src![1], 'base64');
    expect(inlined.equals(png)).toBe(true);
    expect((await sharp(inlined).metadata()).format).toBe('png');
    expect(readFileSync(path.join(dir, 'reward.png')).equals(png)).toBe(true);
    // Completions are escaped; tags detected when omitted, taken as given otherwise.
    expect(html).toContain('&lt;think&gt; First, read');
    expect(html).not.toContain('<think>');
    const [first, second] = html.split('<div class="sample">').slice(1);
    expect(first).toContain('<span class="tag">backtracking</span>');
    expect(first).toContain('<span class="tag">subgoal</span>');
    expect(first).toContain('reward: <b>1</b>');
    expect(second).toContain('<span class="tag">verification</span>');
    expect(second).not.toContain('subgoal');
  });

  it('works with only a title and summary', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-report-'));
    const html = readFileSync(await writeReport(dir, { title: 't', summary: { n: 1 } }), 'utf8');
    checkNesting(html);
    expect(html).not.toContain('<h2>Charts</h2>');
  });

  it('rejects bad chart names, non-PNG charts and ragged tables before writing anything', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ovr-report-')), 'never');
    const png = Buffer.from('\x89PNG....', 'latin1');
    await expect(
      writeReport(dir, { title: 't', summary: {}, charts: [{ name: '../x', png }] }),
    ).rejects.toThrow(/chart name '\.\.\/x' must match/);
    await expect(
      writeReport(dir, { title: 't', summary: {}, charts: [{ name: 'x', png: Buffer.from('GIF89a') }] }),
    ).rejects.toThrow(/chart 'x' is not a PNG buffer/);
    await expect(
      writeReport(dir, {
        title: 't',
        summary: {},
        tables: [{ name: 'T', columns: ['a', 'b'], rows: [[1]] }],
      }),
    ).rejects.toThrow(/table 'T' row 0 has 1 cells but 2 columns/);
    expect(existsSync(dir)).toBe(false);
  });

  it('escapes the five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

// A self-contained HTML run report from a plain data object: summary numbers, PNG charts (inlined as base64 and
// also written beside the HTML as <name>.png), metric tables, and sample completions tagged with the cognitive
// behaviours they show (analysis/behaviors.ts). No templates or assets: one file that opens anywhere.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BEHAVIORS, type Behavior, detectBehaviors } from '../analysis/behaviors.js';

export type Cell = string | number | boolean | null;
export interface ReportTable {
  name: string;
  columns: string[];
  rows: Cell[][];
}
export interface ReportSample {
  /** Short heading, e.g. "eval 3 (count)". */
  title?: string;
  prompt?: string;
  completion: string;
  /** Extra key/values shown under the heading (answer, reward, ...). */
  meta?: Record<string, Cell>;
  /** Behaviour tags; detected from `completion` when omitted. */
  tags?: Behavior[];
}
export interface ReportData {
  title: string;
  summary: Record<string, string | number>;
  charts?: { name: string; png: Buffer }[];
  tables?: ReportTable[];
  samples?: ReportSample[];
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Escapes text for HTML element content and attribute values. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]);

/** Numbers print with at most 4 significant decimals; everything else as text. */
function fmt(v: Cell): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return v === null ? '' : String(v);
}

function tableHtml(columns: string[], rows: Cell[][]): string {
  const head = columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(fmt(v))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function chartHtml(c: { name: string; png: Buffer }): string {
  const src = `data:image/png;base64,${c.png.toString('base64')}`;
  return `<figure><img alt="${escapeHtml(c.name)}" src="${src}"><figcaption>${escapeHtml(c.name)}</figcaption></figure>`;
}

function sampleHtml(s: ReportSample): string {
  const tags = s.tags ?? BEHAVIORS.filter((b) => detectBehaviors(s.completion)[b]);
  const tagHtml =
    tags.map((t) => `<span class="tag">${escapeHtml(t)}</span>`).join(' ') || '<em>no behaviours</em>';
  const meta = Object.entries(s.meta ?? {})
    .map(([k, v]) => `${escapeHtml(k)}: <b>${escapeHtml(fmt(v))}</b>`)
    .join(' · ');
  return [
    '<div class="sample">',
    s.title ? `<h3>${escapeHtml(s.title)}</h3>` : '',
    meta ? `<p>${meta}</p>` : '',
    `<p>${tagHtml}</p>`,
    s.prompt ? `<pre class="prompt">${escapeHtml(s.prompt)}</pre>` : '',
    `<pre>${escapeHtml(s.completion)}</pre>`,
    '</div>',
  ]
    .filter(Boolean)
    .join('\n');
}

const CSS = `body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}figure{display:inline-block;margin:0.5em}img{max-width:100%}
pre{white-space:pre-wrap;background:#f7f7f7;padding:0.5em}pre.prompt{background:#eef3fb}
.tag{background:#dfe9f7;border-radius:3px;padding:1px 6px;font-size:90%}.sample{border-top:1px solid #ddd}`;

/** The report as one HTML string (charts inlined). */
export function renderReportHtml(data: ReportData): string {
  const summaryRows = Object.entries(data.summary).map(([k, v]) => [k, v] as Cell[]);
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    `<head>\n<meta charset="utf-8">\n<title>${escapeHtml(data.title)}</title>\n<style>${CSS}</style>\n</head>`,
    '<body>',
    `<h1>${escapeHtml(data.title)}</h1>`,
    '<h2>Summary</h2>',
    tableHtml(['metric', 'value'], summaryRows),
  ];
  if (data.charts?.length) parts.push('<h2>Charts</h2>', ...data.charts.map(chartHtml));
  for (const t of data.tables ?? [])
    parts.push(`<h2>${escapeHtml(t.name)}</h2>`, tableHtml(t.columns, t.rows));
  if (data.samples?.length) parts.push('<h2>Samples</h2>', ...data.samples.map(sampleHtml));
  parts.push('</body>', '</html>', '');
  return parts.join('\n');
}

function check(data: ReportData): void {
  for (const c of data.charts ?? []) {
    if (!/^[A-Za-z0-9_-]+$/.test(c.name)) {
      throw new Error(
        `writeReport: chart name '${c.name}' must match [A-Za-z0-9_-]+ (it becomes a file name)`,
      );
    }
    if (!Buffer.isBuffer(c.png) || c.png.subarray(1, 4).toString('latin1') !== 'PNG') {
      throw new Error(`writeReport: chart '${c.name}' is not a PNG buffer; pass the output of lineChart()`);
    }
  }
  for (const t of data.tables ?? []) {
    const bad = t.rows.findIndex((r) => r.length !== t.columns.length);
    if (bad >= 0) {
      throw new Error(
        `writeReport: table '${t.name}' row ${bad} has ${t.rows[bad].length} cells but ${t.columns.length} columns`,
      );
    }
  }
}

/**
 * Writes `dir/index.html` (self-contained) and `dir/<chart name>.png`; returns the HTML path.
 * @example
 * await writeReport('runs/demo', {
 *   title: 'OVR demo', summary: { 'eval accuracy (RL)': 0.62 },
 *   charts: [{ name: 'reward', png: await lineChart(...) }],
 *   tables: [{ name: 'Eval', columns: ['model', 'acc'], rows: [['cold start', 0.31], ['RL', 0.62]] }],
 *   samples: [{ title: 'eval 0', completion: '<think> ... </think> <answer> \\boxed{3} </answer>' }],
 * });
 */
export async function writeReport(dir: string, data: ReportData): Promise<string> {
  check(data);
  await mkdir(dir, { recursive: true });
  for (const c of data.charts ?? []) await writeFile(path.join(dir, `${c.name}.png`), c.png);
  const file = path.join(dir, 'index.html');
  await writeFile(file, renderReportHtml(data));
  return file;
}

// The import structure of src/ (README "Layout"): no file imports itself back through a circle, and the folders form
// layers: no folder imports one that imports it back, directly or through others. Reads the `import`/`export … from`
// specifiers of every src/*.ts file as text (type-only imports count: they tie the files just the same).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  );
}

/** file (relative to src/) -> the src files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const spec = /^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gm;
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps = [...text.matchAll(spec)].map((m) =>
      path.relative(SRC, path.resolve(path.dirname(file), m[1].replace(/\.js$/, '.ts'))),
    );
    graph.set(path.relative(SRC, file), deps);
  }
  return graph;
}

/** A circle of the graph, or null. */
function findCircle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

const folderOf = (file: string): string => (file.includes(path.sep) ? file.split(path.sep)[0] : file);

describe('import structure of src/', () => {
  const files = importGraph();

  it('every relative import names a file of src/', () => {
    const missing = [...files].flatMap(([f, deps]) =>
      deps.filter((d) => !files.has(d)).map((d) => `${f} -> ${d}`),
    );
    expect(missing).toEqual([]);
  });

  it('no circle of files', () => {
    expect(findCircle(files)).toBeNull();
  });

  it('folders form layers: no folder imports back up (no circle of folders)', () => {
    const folders = new Map<string, string[]>();
    for (const [f, deps] of files) {
      const from = folderOf(f);
      const to = deps.map(folderOf).filter((d) => d !== from);
      folders.set(from, [...new Set([...(folders.get(from) ?? []), ...to])]);
    }
    const circle = findCircle(folders);
    expect(circle, circle ? `folder circle: ${circle.join(' -> ')}` : '').toBeNull();
    // the layers, top first: a folder stands above every folder it imports
    const depth = new Map<string, number>();
    const height = (n: string): number => {
      if (!depth.has(n)) depth.set(n, 1 + Math.max(0, ...(folders.get(n) ?? []).map(height)));
      return depth.get(n) as number;
    };
    const layers = [...folders.keys()].sort((a, b) => height(b) - height(a) || a.localeCompare(b));
    console.log(`src layers (top first): ${layers.map((f) => `${f}:${height(f)}`).join(' ')}`);
  });
});

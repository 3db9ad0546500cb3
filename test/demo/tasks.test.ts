import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectBehaviors } from '../../src/analysis/behaviors.js';
import { MessagesRow } from '../../src/data/dataset.js';
import { descriptionItems } from '../../src/demo/eval.js';
import { gradeDemo } from '../../src/demo/grade.js';
import {
  makeVisualProblems,
  mixDemoJsonl,
  renderScene,
  sceneToSvg,
  writeDemoJsonl,
} from '../../src/demo/render.js';
import {
  answerClass,
  CAPTION_PROMPT,
  describeScene,
  makeProblems,
  type Problem,
  presenceQuery,
  problemKey,
  type Scene,
  splitOf,
  tally,
} from '../../src/demo/tasks.js';
import { lastBoxed } from '../../src/reward/extract.js';
import { blobs, readDigit, readImage, shapeOf } from './pixels.js';

const ORZ = /^<think> [^<>]+ <\/think> <answer> \\boxed\{[a-z0-9]+\} <\/answer>$/;

describe('makeProblems', () => {
  it('is deterministic per seed, seed undefined = seed 0, and different seeds differ', () => {
    const a = makeProblems({ seed: 0, split: 'train', count: 40 });
    const b = makeProblems({ split: 'train', count: 40 });
    const c = makeProblems({ seed: 1, split: 'train', count: 40 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(c));
  });

  it('train and eval never share a problem, across seeds too', () => {
    const train = [0, 1].flatMap((seed) => makeProblems({ seed, split: 'train', count: 400 }));
    const evalSet = [0, 1].flatMap((seed) => makeProblems({ seed, split: 'eval', count: 200 }));
    const trainKeys = new Set(train.map(problemKey));
    const shared = evalSet.filter((p) => trainKeys.has(problemKey(p)));
    expect(shared.length).toBe(0);
    expect(train.every((p) => p.split === 'train' && splitOf(p) === 'train')).toBe(true);
    expect(evalSet.every((p) => p.split === 'eval' && splitOf(p) === 'eval')).toBe(true);
    // Not a degenerate split: eval problems are mostly distinct from each other.
    expect(new Set(evalSet.map(problemKey)).size).toBeGreaterThan(390);
  });

  it('cycles task kinds evenly and honours a subset', () => {
    const ps = makeProblems({ seed: 3, split: 'eval', count: 12 });
    expect(ps.map((p) => p.task).join(',')).toBe(
      'count,compare,add,largest,count,compare,add,largest,count,compare,add,largest',
    );
    const only = makeProblems({ seed: 3, split: 'train', count: 5, tasks: ['add'] });
    expect(only.every((p) => p.task === 'add')).toBe(true);
  });

  it('targets are short ORZ chains whose boxed answer is the gold answer', () => {
    const ps = makeProblems({ seed: 5, split: 'train', count: 200 });
    const lens = ps.map((p) => p.target.length);
    console.log(
      `target chars: mean ${(lens.reduce((a, b) => a + b) / lens.length).toFixed(0)}, max ${Math.max(...lens)}`,
    );
    for (const p of ps) {
      expect(p.target, p.id).toMatch(ORZ);
      expect(lastBoxed(p.target)?.text).toBe(p.answer);
      expect(gradeDemo(p.target, p.answer)).toBe(1);
      expect(p.textPrompt).toBe(`${p.description} ${p.question}`);
      expect(p.target.startsWith(`<think> ${p.description} `)).toBe(true);
    }
    expect(Math.max(...lens)).toBeLessThan(420);
  });

  it('targets carry the behaviours stage-1 SFT should teach', () => {
    const ps = makeProblems({ seed: 7, split: 'train', count: 400 });
    const tags = ps.map((p) => detectBehaviors(p.target));
    expect(tags.every((t) => t.subgoal && t.verification && t.visualReflection)).toBe(true);
    const back = tags.filter((t) => t.backtracking).length / ps.length;
    expect(back).toBeGreaterThan(0.15);
    expect(back).toBeLessThan(0.35);
    expect(ps.filter((p, i) => p.task === 'add' && tags[i].backwardChaining).length).toBe(
      ps.filter((p) => p.task === 'add').length,
    );
    const none = makeProblems({ seed: 7, split: 'train', count: 100, backtrackRate: 0 });
    expect(none.some((p) => detectBehaviors(p.target).backtracking)).toBe(false);
  });

  it('rejects bad options with a message naming the option', () => {
    expect(() => makeProblems({ split: 'test' as any, count: 1 })).toThrow(/split must be 'train' or 'eval'/);
    expect(() => makeProblems({ split: 'train', count: -1 })).toThrow(/count must be/);
    expect(() => makeProblems({ split: 'train', count: 1, tasks: ['sort' as any] })).toThrow(/tasks must be/);
    expect(() => makeProblems({ split: 'train', count: 1, tasks: [] })).toThrow(/tasks must be/);
    expect(() => makeProblems({ split: 'train', count: 1, backtrackRate: 2 })).toThrow(/backtrackRate/);
    expect(makeProblems({ split: 'train', count: 0 })).toEqual([]);
  });
});

describe('describeScene', () => {
  it('names every item in reading order (full or colours only) and lists digits', () => {
    const scene: Scene = {
      grid: 3,
      items: [
        { type: 'shape', kind: 'square', color: 'blue', size: 'large', cell: 5, dx: 0, dy: 0 },
        { type: 'shape', kind: 'circle', color: 'red', size: 'small', cell: 0, dx: 0, dy: 0 },
        { type: 'shape', kind: 'circle', color: 'red', size: 'small', cell: 8, dx: 0, dy: 0 },
      ],
    };
    expect(describeScene(scene)).toBe(
      'The picture shows a small red circle, a large blue square and a small red circle.',
    );
    expect(describeScene(scene, { detail: 'colors' })).toBe('The picture shows red, blue and red shapes.');
    const digits: Scene = {
      grid: 2,
      items: [
        { type: 'digit', value: 7, cell: 3, dx: 0, dy: 0 },
        { type: 'digit', value: 4, cell: 1, dx: 0, dy: 0 },
      ],
    };
    expect(describeScene(digits)).toBe('The picture shows the digits 4 and 7.');
  });
});

describe('tally', () => {
  it('is a running count per asked colour, one step per shape in reading order', () => {
    const shapes = (['red', 'blue', 'red', 'green'] as const).map((color, cell) => ({
      type: 'shape' as const,
      kind: 'circle' as const,
      color,
      size: 'small' as const,
      cell,
      dx: 0,
      dy: 0,
    }));
    expect(tally(shapes, ['red'])).toBe('0 red; red: 1 red; blue: 1 red; red: 2 red; green: 2 red');
    expect(tally([...shapes].reverse(), ['blue', 'green'])).toBe(
      '0 blue 0 green; red: 0 blue 0 green; blue: 1 blue 0 green; red: 1 blue 0 green; green: 1 blue 1 green',
    );
  });
});

describe('gradeDemo', () => {
  it('grades the last boxed answer, case- and \\text-insensitive', () => {
    expect(gradeDemo('<answer> \\boxed{3} </answer>', '3')).toBe(1);
    expect(gradeDemo('\\boxed{2} wait \\boxed{3}', '3')).toBe(1);
    expect(gradeDemo('\\boxed{3} wait \\boxed{2}', '3')).toBe(0);
    expect(gradeDemo('\\boxed{\\text{Circle}}', 'circle')).toBe(1);
    expect(gradeDemo('the answer is 3', '3')).toBe(0);
    expect(gradeDemo('', '3')).toBe(0);
  });
});

/** The answer recomputed from the image alone, using the question's words. */
async function answerFromImage(p: Problem, png: Buffer): Promise<string> {
  const img = await readImage(png);
  const found = blobs(img);
  const shapes = found.filter((b) => b.cls !== 'dark');
  if (p.task === 'add')
    return String(found.filter((b) => b.cls === 'dark').reduce((s, b) => s + readDigit(img, b), 0));
  if (p.task === 'largest')
    return shapeOf(
      img,
      shapes.reduce((a, b) => (b.area > a.area ? b : a)),
    );
  const matches = (b: (typeof shapes)[number], word: string) =>
    word === 'shapes' || b.cls === word || `${shapeOf(img, b)}s` === word;
  if (p.task === 'count') {
    const m = /^How many (?:(red|green|blue) )?(circles|squares|triangles|shapes) are there\?$/.exec(
      p.question,
    )!;
    return String(shapes.filter((b) => (!m[1] || b.cls === m[1]) && matches(b, m[2])).length);
  }
  const m = /^More (\w+)(?: shapes)? or (\w+)(?: shapes)?\?$/.exec(p.question)!;
  const na = shapes.filter((b) => matches(b, m[1])).length;
  const nb = shapes.filter((b) => matches(b, m[2])).length;
  return na > nb ? m[1] : m[2];
}

/** The shapes recomputed from the image, in reading order (row by row): colour, or "colour kind". */
async function itemsFromImage(png: Buffer, withKind: boolean): Promise<string[]> {
  const img = await readImage(png);
  const found = blobs(img).filter((x) => x.cls !== 'dark');
  const row = (b: (typeof found)[number]) => Math.round((b.y0 + b.h / 2) / (img.h / 4));
  return found
    .sort((a, b) => row(a) - row(b) || a.x0 - b.x0)
    .map((b) => (withKind ? `${b.cls} ${shapeOf(img, b)}` : b.cls));
}

/** The same list from a description: "a small red circle, ..." -> "red circle"; "red, blue ... shapes" -> "red". */
function itemsFromDescription(d: string): string[] {
  const full = [...d.matchAll(/a (?:small|medium|large) (red|green|blue) (circle|square|triangle)/g)];
  if (full.length) return full.map((m) => `${m[1]} ${m[2]}`);
  return [...d.matchAll(/\b(red|green|blue)\b/g)].map((m) => m[1]);
}

describe('rendered images agree with the answers (independent pixel reading)', () => {
  for (const px of [56, 84]) {
    it(`${px} px: answers and descriptions recomputed from the PNG`, async () => {
      const ps = await makeVisualProblems({
        seed: 11,
        split: 'eval',
        count: px === 56 ? 160 : 40,
        imageSize: px,
      });
      for (const p of ps) {
        const meta = await import('sharp').then((s) => s.default(p.image).metadata());
        expect([meta.width, meta.height, meta.channels]).toEqual([px, px, 3]);
        expect(await answerFromImage(p, p.image), `${p.id} ${p.question} ${p.description}`).toBe(p.answer);
        if (p.task !== 'add') {
          // Kinds only from 84 px: at 56 px a small circle is 8 px across and this reader's fill test calls it a square.
          const withKind = p.task === 'largest' && px >= 84;
          const described = itemsFromDescription(p.description).map((x) => (withKind ? x : x.split(' ')[0]));
          expect(await itemsFromImage(p.image, withKind), p.id).toEqual(described);
        }
      }
    });
  }

  it('renders every digit 0-9 readably', async () => {
    for (let v = 0; v < 10; v++) {
      const scene: Scene = { grid: 2, items: [{ type: 'digit', value: v, cell: 0, dx: 0.3, dy: -0.4 }] };
      const img = await readImage(await renderScene(scene, 56));
      const dark = blobs(img).filter((b) => b.cls === 'dark');
      expect(dark.length).toBe(1);
      expect(readDigit(img, dark[0])).toBe(v);
    }
  });

  it('a bigger size class always has the larger area, whatever the kinds (largest is unambiguous)', async () => {
    const area: Record<string, number[]> = { small: [], medium: [], large: [] };
    for (const size of ['small', 'medium', 'large'] as const)
      for (const kind of ['circle', 'square', 'triangle'] as const) {
        const scene: Scene = {
          grid: 2,
          items: [{ type: 'shape', kind, color: 'blue', size, cell: 0, dx: 0, dy: 0 }],
        };
        area[size].push(blobs(await readImage(await renderScene(scene, 56)))[0].area);
      }
    console.log('areas (circle, square, triangle) at 56 px:', area);
    expect(Math.min(...area.medium)).toBeGreaterThan(Math.max(...area.small));
    expect(Math.min(...area.large)).toBeGreaterThan(Math.max(...area.medium));
  });

  it('rejects a bad image size', () => {
    expect(() => sceneToSvg({ grid: 3, items: [] }, 10)).toThrow(/image size must be an integer >= 16/);
  });
});

describe('writeDemoJsonl', () => {
  it('writes text rows and image rows that the dataset schema accepts', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-demo-'));
    const ps = makeProblems({ seed: 2, split: 'train', count: 4 });
    const textRows = await writeDemoJsonl(path.join(dir, 'sft.jsonl'), ps, { mode: 'text' });
    const imageRows = await writeDemoJsonl(path.join(dir, 'rl.jsonl'), ps, { mode: 'image', imageSize: 56 });
    const read = (f: string) =>
      readFileSync(path.join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    expect(read('sft.jsonl')).toEqual(textRows);
    expect(read('rl.jsonl')).toEqual(imageRows);
    for (const [i, r] of read('sft.jsonl').entries()) {
      expect(MessagesRow.safeParse(r).success).toBe(true);
      expect(r.messages[0].content).toBe(ps[i].textPrompt);
      expect(r.messages[1].content).toBe(ps[i].target);
      expect(r.image).toBeUndefined();
    }
    for (const [i, r] of read('rl.jsonl').entries()) {
      expect(MessagesRow.safeParse(r).success).toBe(true);
      expect(r.messages[0].content).toEqual([{ type: 'image' }, { type: 'text', text: ps[i].question }]);
      expect(r.answer).toBe(ps[i].answer);
      const png = readFileSync(path.join(dir, r.image));
      expect(await answerFromImage(ps[i], png)).toBe(ps[i].answer);
    }
    await expect(writeDemoJsonl(path.join(dir, 'x.jsonl'), ps, { mode: 'video' as any })).rejects.toThrow(
      /mode must be one of text, primed, image, caption, echo, presence; got 'video'/,
    );
  });
});

describe('caption, echo and mixed rows', () => {
  it('caption rows show the image then the instruction; echo rows give the scene in words; mixing keeps every row', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-demo-'));
    const ps = makeProblems({ seed: 4, split: 'train', count: 6, tasks: ['count', 'compare'] });
    const cap = await writeDemoJsonl(path.join(dir, 'cap.jsonl'), ps, { mode: 'caption', imageSize: 56 });
    const echo = await writeDemoJsonl(path.join(dir, 'echo.jsonl'), ps, { mode: 'echo' });
    for (const [i, r] of cap.entries()) {
      expect(MessagesRow.safeParse(r).success).toBe(true);
      expect(r.messages[0].content).toEqual([{ type: 'image' }, { type: 'text', text: CAPTION_PROMPT }]);
      expect(r.messages[1].content).toBe(`<think> ${ps[i].description} </think>`);
      expect(r.image).toBe(`images/cap-${ps[i].id}.png`);
      expect(readFileSync(path.join(dir, r.image!)).subarray(1, 4).toString()).toBe('PNG');
    }
    for (const [i, r] of echo.entries()) {
      expect(r.messages[0].content).toBe(`${ps[i].description} ${CAPTION_PROMPT}`);
      expect(r.messages[1].content).toBe(`<think> ${ps[i].description} </think>`);
      expect(r.image).toBeUndefined();
    }
    const mixed = await mixDemoJsonl(path.join(dir, 'mix.jsonl'), [...cap, ...echo], 1);
    const key = (r: object) => JSON.stringify(r);
    expect(mixed.map(key).sort()).toEqual([...cap, ...echo].map(key).sort());
    expect(mixed.map(key)).not.toEqual([...cap, ...echo].map(key));
    expect(
      readFileSync(path.join(dir, 'mix.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(mixed);
    const again = await mixDemoJsonl(path.join(dir, 'mix2.jsonl'), [...cap, ...echo], 1);
    expect(again).toEqual(mixed);
  });

  it('primed rows: the question alone, the scene given as the reply opening (no loss), the chain after it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-demo-'));
    const ps = makeProblems({ seed: 5, split: 'train', count: 4, tasks: ['count', 'compare'] });
    const rows = await writeDemoJsonl(path.join(dir, 'primed.jsonl'), ps, { mode: 'primed' });
    for (const [i, r] of rows.entries()) {
      expect(MessagesRow.safeParse(r).success).toBe(true);
      expect(r.messages[0].content).toBe(ps[i].question);
      const [given, rest] = r.messages[1].content as { text: string; train?: boolean }[];
      expect(given).toEqual({ type: 'text', text: `<think> ${ps[i].description}`, train: false });
      expect(rest.train).toBeUndefined();
      expect(rest.text).toMatch(/^ First, count the /);
      expect(given.text + rest.text).toBe(ps[i].target);
      expect(r.image).toBeUndefined();
    }
  });

  it('presence questions are answered by the scene, balanced, and written as image rows', async () => {
    const ps = makeProblems({ seed: 6, split: 'train', count: 200, tasks: ['count', 'compare'] });
    let yes = 0;
    for (const [k, p] of ps.entries()) {
      const q = presenceQuery(p, k);
      const color = /^Is there a (red|green|blue) shape here\?$/.exec(q.question)![1];
      const present = p.scene.items.some((it) => it.type === 'shape' && it.color === color);
      const absentExists = ['red', 'green', 'blue'].some(
        (c) => !p.scene.items.some((it) => it.type === 'shape' && it.color === c),
      );
      expect(present).toBe(k % 2 === 0 || !absentExists);
      expect(q.reply).toBe(
        `<think> ${p.description} So there is ${present ? 'a' : 'no'} ${color} shape. </think>`,
      );
      expect(presenceQuery(p, k)).toEqual(q);
      if (present) yes++;
    }
    // Odd k asks about a missing colour whenever the four shapes leave one out.
    expect(yes / ps.length).toBeGreaterThan(0.5);
    expect(yes / ps.length).toBeLessThan(0.8);
    const dir = mkdtempSync(path.join(tmpdir(), 'ovr-demo-'));
    const rows = await writeDemoJsonl(path.join(dir, 'pres.jsonl'), ps.slice(0, 4), {
      mode: 'presence',
      imageSize: 56,
    });
    for (const [k, r] of rows.entries()) {
      const q = presenceQuery(ps[k], k);
      expect(r.messages[0].content).toEqual([{ type: 'image' }, { type: 'text', text: q.question }]);
      expect(r.messages[1].content).toBe(q.reply);
      // The colour's presence, read back from the PNG's pixels.
      const found = blobs(await readImage(readFileSync(path.join(dir, r.image!)))).map((b) => b.cls);
      const color = /a (\w+) shape here/.exec(q.question)![1];
      expect(q.reply.includes(`is a ${color}`)).toBe(found.includes(color));
    }
  });

  it('descriptionItems splits a description into its items in order', () => {
    expect(descriptionItems('The picture shows red, blue, red and green shapes.')).toEqual([
      'red',
      'blue',
      'red',
      'green',
    ]);
    expect(descriptionItems('<think> The picture shows red and blue shapes. </think>')).toEqual([
      'red',
      'blue',
    ]);
    expect(descriptionItems('The picture shows a small red circle and a large blue square.')).toEqual([
      'a small red circle',
      'a large blue square',
    ]);
  });
});

describe('answer balancing', () => {
  it('largest answers cycle through the shapes, compare winners alternate first/second named', () => {
    const ps = makeProblems({ seed: 5, split: 'eval', count: 60, tasks: ['largest', 'compare'] });
    const largest = ps.filter((p) => p.task === 'largest').map((p) => p.answer);
    expect(largest.slice(0, 6)).toEqual(['circle', 'square', 'triangle', 'circle', 'square', 'triangle']);
    const compare = ps.filter((p) => p.task === 'compare').map((p) => answerClass('compare', p));
    expect(compare.slice(0, 4)).toEqual(['first', 'second', 'first', 'second']);
    expect(compare.filter((c) => c === 'first')).toHaveLength(15);
    // the classes are read from the text: the answer is the first or the second option named in the question
    expect(answerClass('compare', { question: 'More red shapes or blue shapes?', answer: 'blue' })).toBe(
      'second',
    );
    expect(answerClass('compare', { question: 'More green shapes or red shapes?', answer: 'green' })).toBe(
      'first',
    );
    expect(answerClass('add', { question: 'What is the sum of the digits?', answer: '7' })).toBeNull();
  });

  it('balanceAnswers: false keeps the raw sampler', () => {
    const raw = makeProblems({
      seed: 5,
      split: 'eval',
      count: 30,
      tasks: ['largest'],
      balanceAnswers: false,
    });
    const bal = makeProblems({ seed: 5, split: 'eval', count: 30, tasks: ['largest'] });
    expect(raw.map((p) => p.answer)).not.toEqual(bal.map((p) => p.answer));
    expect(bal.filter((p) => p.answer === 'square')).toHaveLength(10);
  });
});

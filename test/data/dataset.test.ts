import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/data/chat.js';
import {
  collate,
  epochOrder,
  evalBatches,
  loadSftExamples,
  packGreedy,
  planEpoch,
  type RowOptions,
  readJsonl,
  rowToExample,
  SftBatches,
  stepsForEpochs,
  type TokenizedExample,
  tokenizeExamples,
  toMessages,
} from '../../src/data/index.js';
import { shared } from '../helpers.js';

const OPTS: RowOptions = {
  format: 'auto',
  questionField: 'auto',
  solutionField: 'auto',
  answerField: 'auto',
  promptTemplate: 'qwen',
};

/**
 * A simple, real tokenizer for these tests (not the Qwen one): each message becomes `<role>:` + text + `\n` as char
 * codes; labels are the char codes of assistant text (and its newline), -100 elsewhere.
 */
function charTokenize(messages: ChatMessage[]) {
  const inputIds: number[] = [];
  const labels: number[] = [];
  for (const m of messages) {
    const text =
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p) => (p.type === 'text' ? p.text : '#')).join('');
    const head = `<${m.role}>:`;
    for (const c of head) {
      inputIds.push(c.charCodeAt(0));
      labels.push(-100);
    }
    for (const c of `${text}\n`) {
      inputIds.push(c.charCodeAt(0));
      labels.push(m.role === 'assistant' ? c.charCodeAt(0) : -100);
    }
  }
  return { inputIds, labels };
}

function tmpFile(text: string, name = 'd.jsonl'): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'ovr-ds-')), name);
  writeFileSync(f, text);
  return f;
}

/** Tokenized examples with given lengths: example k has ids 100(k+1)+t, every label a target. */
const seqs = (lens: number[]): TokenizedExample[] =>
  lens.map((L, k) => ({
    inputIds: Array.from({ length: L }, (_, t) => 100 * (k + 1) + t),
    labels: Array.from({ length: L }, (_, t) => 100 * (k + 1) + t),
    images: [],
  }));

describe('readJsonl / row parsing', () => {
  it('reports the line of bad JSON and of bad rows', async () => {
    const f = tmpFile('{"question":"a","solution":"b"}\n\n{"question": oops}\n');
    await expect(readJsonl(f)).rejects.toThrow(`${f}:3: invalid JSON`);
    const g = tmpFile(
      '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n{"messages":[{"role":"bot","content":"x"}]}\n',
    );
    await expect(loadSftExamples(g, OPTS)).rejects.toThrow(new RegExp(`${g}:2: messages.0.role: `));
    const h = tmpFile('{"question":"a"}\n');
    await expect(loadSftExamples(h, OPTS)).rejects.toThrow(
      `${h}:1: no solution: expected a non-empty 'solution or answer' field`,
    );
    const k = tmpFile('{"prompt":"a","solution":"b"}\n');
    await expect(loadSftExamples(k, OPTS)).rejects.toThrow(
      /:1: no question: .*'question or problem'.*data.questionField/,
    );
    const n = tmpFile('{"messages":[{"role":"user","content":"only a question"}]}\n');
    await expect(loadSftExamples(n, OPTS)).rejects.toThrow(/:1: messages have no assistant turn/);
    await expect(readJsonl('/nonexistent/x.jsonl')).rejects.toThrow(
      /cannot read dataset \/nonexistent\/x.jsonl/,
    );
  });

  it('skips blank lines and keeps 1-based line numbers; limit reads the first rows only', async () => {
    const f = tmpFile('\n{"a":1}\n\n{"a":2}\n{"a":3}\n');
    expect((await readJsonl(f)).map((r) => r.line)).toEqual([2, 4, 5]);
    expect((await readJsonl(f, { limit: 2 })).map((r) => r.value)).toEqual([{ a: 1 }, { a: 2 }]);
  });
});

describe('adapters on the shared datasets', () => {
  it('MATH train rows (problem/solution with \\boxed) -> user + assistant, solution unchanged', async () => {
    const ex = await loadSftExamples(shared('data', 'math_train', 'train.jsonl'), OPTS, { limit: 3 });
    const row = (await readJsonl(shared('data', 'math_train', 'train.jsonl'), { limit: 1 }))[0].value as any;
    expect(ex).toHaveLength(3);
    expect(ex[0].messages).toEqual([
      {
        role: 'user',
        content: `${row.problem}\nPlease reason step by step, and put your final answer within \\boxed{}.`,
      },
      { role: 'assistant', content: row.solution },
    ]);
    expect(ex[0].images).toEqual([]);
  });

  it('GSM8K rows: calculator annotations removed, the final answer boxed', async () => {
    const ex = await loadSftExamples(shared('data', 'gsm8k', 'train.jsonl'), OPTS, { limit: 1 });
    expect(ex[0].messages[1].content).toBe(
      'Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\nThe final answer is $\\boxed{72}$.',
    );
  });

  it('the orz template wraps reasoning in <think> and the boxed answer in <answer>', () => {
    const m = toMessages('orz', 'What is 1+1?', 'One plus one is two.', '2');
    expect(m[0].role).toBe('system');
    expect(m[1].content).toMatch(/This is the problem:\nWhat is 1\+1\?$/);
    expect(m[2].content).toBe('<think> One plus one is two. </think> <answer> \\boxed{2} </answer>');
    const fromSol = toMessages('orz', 'q', 'so $\\boxed{\\frac{1}{2}}$.');
    expect(fromSol[2].content).toBe(
      '<think> so $\\boxed{\\frac{1}{2}}$. </think> <answer> \\boxed{\\frac{1}{2}} </answer>',
    );
    expect(toMessages('plain', 'q', 's', '3')).toEqual([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 's' },
    ]);
  });

  it('TabMWP rows with an image: the path is resolved against the file folder and put in the user turn', async () => {
    const file = shared('data', 'tabmwp_dev1k', 'dev.jsonl');
    const ex = await loadSftExamples(file, OPTS, { limit: 2 });
    expect(ex[0].images).toEqual([shared('data', 'tabmwp_dev1k', 'images', '33.png')]);
    expect(existsSync(ex[0].images[0])).toBe(true);
    const user = ex[0].messages[0].content as any[];
    expect(user[0]).toEqual({ type: 'image', image: ex[0].images[0] });
    expect(user[1].type).toBe('text');
  });

  it('messages rows: `images` fill image parts in order; a count mismatch names the line', () => {
    const row = (value: unknown) => ({ file: 'm.jsonl', line: 7, value });
    const msgs = [
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'compare' }, { type: 'image' }] },
      { role: 'assistant', content: 'same' },
    ];
    const ex = rowToExample(row({ messages: msgs, images: ['a.png', 'b.png'] }), OPTS, '/data');
    expect(ex.images).toEqual(['/data/a.png', '/data/b.png']);
    expect((ex.messages[0].content as any[])[2]).toEqual({ type: 'image', image: '/data/b.png' });
    expect(() => rowToExample(row({ messages: msgs, images: ['a.png'] }), OPTS, '/data')).toThrow(
      'm.jsonl:7: 2 image part(s) but 1 image path(s)',
    );
    expect(() => rowToExample(row({ messages: msgs }), OPTS, '/data')).toThrow(
      'm.jsonl:7: an image part has no path',
    );
    const inline = [
      {
        role: 'user',
        content: [
          { type: 'image', image: 'img/c.png' },
          { type: 'text', text: 'what?' },
        ],
      },
      { role: 'assistant', content: 'a cat' },
    ];
    const given = [
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'seen', train: false },
          { type: 'text', text: ' said' },
        ],
      },
    ];
    expect(rowToExample(row({ messages: given }), OPTS, '/data').messages[1].content).toEqual(
      given[1].content,
    );
    expect(() =>
      rowToExample(
        row({
          messages: [given[0], { role: 'assistant', content: [{ type: 'text', text: 'x', train: 'no' }] }],
        }),
        OPTS,
        '/data',
      ),
    ).toThrow(/^m\.jsonl:7: messages\.1\.content: /);
    const ex2 = rowToExample(row({ messages: inline }), OPTS, '/data');
    expect(ex2.images).toEqual(['/data/img/c.png']);
    expect((ex2.messages[0].content as any[])[0]).toEqual({ type: 'image', image: '/data/img/c.png' });
  });
});

describe('tokenizeExamples', () => {
  it('drops truncated examples that carry images', async () => {
    const msgs: ChatMessage[] = [
      {
        role: 'user',
        content: [
          { type: 'image', image: '/x.png' },
          { type: 'text', text: 'what?' },
        ],
      },
      { role: 'assistant', content: 'a cat' },
    ];
    const ex = [{ messages: msgs, images: ['/x.png'], where: 'a:1' }];
    expect((await tokenizeExamples(ex, charTokenize, 30)).dropped).toBe(1);
    const kept = await tokenizeExamples(ex, charTokenize, 64);
    expect(kept.dropped).toBe(0);
    expect(kept.examples[0].images).toEqual(['/x.png']);
  });

  it('truncates to maxSeqLen and drops examples left without labels', async () => {
    const ex = [
      {
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'ok' },
        ] as ChatMessage[],
        images: [],
        where: 'a:1',
      },
      {
        messages: [
          { role: 'user', content: 'a long question' },
          { role: 'assistant', content: 'x' },
        ] as ChatMessage[],
        images: [],
        where: 'a:2',
      },
    ];
    const r = await tokenizeExamples(ex, charTokenize, 24);
    // row 1: '<user>:hi\n' (10) + '<assistant>:ok\n' (15) = 25 > 24 keeps 'ok'; row 2's answer starts at 35 -> dropped
    expect(r.truncated).toBe(2);
    expect(r.dropped).toBe(1);
    expect(r.examples[0].inputIds).toHaveLength(24);
    expect(String.fromCharCode(...r.examples[0].inputIds)).toBe('<user>:hi\n<assistant>:ok');
  });
});

describe('order and batching', () => {
  it('epochOrder is a seeded permutation, different per epoch and seed, same on every call', () => {
    const a = epochOrder(50, 0, 0);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(epochOrder(50, 0, 0)).toEqual(a);
    expect(epochOrder(50, 0, 1)).not.toEqual(a);
    expect(epochOrder(50, 1, 0)).not.toEqual(a);
  });

  it('every example appears exactly once per epoch, with and without length grouping', () => {
    const lengths = Array.from({ length: 23 }, (_, i) => (i * 7) % 13);
    for (const lengthGrouping of [false, true]) {
      const b = planEpoch(lengths, 2, { batchSize: 4, seed: 5, lengthGrouping });
      expect(b.map((x) => x.length)).toEqual([4, 4, 4, 4, 4, 3]);
      expect(b.flat(2).sort((x, y) => x - y)).toEqual(Array.from({ length: 23 }, (_, i) => i));
    }
    expect(
      planEpoch(lengths, 0, { batchSize: 4, seed: 5, lengthGrouping: false, dropLast: true }),
    ).toHaveLength(5);
  });

  it('batch 4 x accum 1 and batch 1 x accum 4 see the same examples in the same order', () => {
    const lengths = Array.from({ length: 500 }, (_, i) => 1 + ((i * 53) % 97));
    for (const lengthGrouping of [false, true]) {
      const a = planEpoch(lengths, 1, { batchSize: 4, gradAccumSteps: 1, seed: 2, lengthGrouping }).flat(2);
      const b = planEpoch(lengths, 1, { batchSize: 1, gradAccumSteps: 4, seed: 2, lengthGrouping }).flat(2);
      expect(b).toEqual(a);
    }
  });

  it('length grouping cuts padding compared with random batches', () => {
    const lengths = Array.from({ length: 400 }, (_, i) => 1 + ((i * 37) % 200));
    const padding = (lg: boolean) =>
      planEpoch(lengths, 0, { batchSize: 8, seed: 0, lengthGrouping: lg }).reduce((s, b) => {
        const ls = b.map((r) => lengths[r[0]]);
        return s + ls.reduce((t, l) => t + Math.max(...ls) - l, 0);
      }, 0);
    const random = padding(false);
    const grouped = padding(true);
    console.log(`padding tokens: random ${random}, length-grouped ${grouped}`);
    expect(grouped).toBeLessThan(random / 5);
  });

  it('evalBatches covers every example once in file order', () => {
    const ex = seqs([2, 3, 1, 4, 2]);
    const b = evalBatches(ex, 2, 0, 'right');
    expect(b.map((x) => x.inputIds.length)).toEqual([2, 2, 1]);
    expect(b.flatMap((x) => x.inputIds.map((r) => r[0]))).toEqual([100, 200, 300, 400, 500]);
    expect(b[1].inputIds).toEqual([
      [300, 0, 0, 0],
      [400, 401, 402, 403],
    ]);
  });

  it('stepsForEpochs rounds up', () => {
    expect(stepsForEpochs(1.5, 10, 2)).toBe(8);
    expect(stepsForEpochs(1, 3, 4)).toBe(1);
  });
});

describe('collate and packing', () => {
  const ex = seqs([3, 1, 2]);
  it('pads right with padId and IGNORE_INDEX, with masks and positions', () => {
    const b = collate([[ex[0]], [ex[1]]], 0, 'right');
    expect(b.inputIds).toEqual([
      [100, 101, 102],
      [200, 0, 0],
    ]);
    expect(b.labels).toEqual([
      [100, 101, 102],
      [200, -100, -100],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1],
      [1, 0, 0],
    ]);
    expect(b.positionIds).toEqual([
      [0, 1, 2],
      [0, 1, 1],
    ]);
    expect(b.numLabelTokens).toBe(4);
  });

  it('pads left', () => {
    const b = collate([[ex[2]], [ex[0]]], 9, 'left');
    expect(b.inputIds).toEqual([
      [9, 300, 301],
      [100, 101, 102],
    ]);
    expect(b.attentionMask[0]).toEqual([0, 1, 1]);
    expect(b.labels[0]).toEqual([-100, 300, 301]);
    expect(b.positionIds[0]).toEqual([1, 0, 1]);
  });

  it('packs greedily, restarts positions per sequence and masks the first label of later sequences', () => {
    expect(packGreedy([0, 1, 2], [3, 4, 2], 6)).toEqual([[0], [1, 2]]);
    expect(() => packGreedy([0], [7], 6)).toThrow(/7 tokens, more than the packing length 6/);
    const b = collate([[ex[0], ex[1], ex[2]]], 0, 'right');
    expect(b.inputIds).toEqual([[100, 101, 102, 200, 300, 301]]);
    expect(b.positionIds).toEqual([[0, 1, 2, 0, 0, 1]]);
    expect(b.segmentIds).toEqual([[0, 0, 0, 1, 2, 2]]);
    expect(b.labels).toEqual([[100, 101, 102, -100, -100, 301]]);
  });

  it('packed epochs keep every example once and no row exceeds the length', () => {
    const lengths = Array.from({ length: 40 }, (_, i) => 1 + ((i * 11) % 9));
    const plan = planEpoch(lengths, 0, { batchSize: 2, seed: 3, lengthGrouping: true, packTo: 16 });
    for (const row of plan.flat()) expect(row.reduce((s, i) => s + lengths[i], 0)).toBeLessThanOrEqual(16);
    expect(plan.flat(2).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

describe('SftBatches', () => {
  const examples = seqs([5, 3, 8, 2, 7, 1, 4, 6, 9, 2, 3]);
  const opts = { batchSize: 3, seed: 11, lengthGrouping: true, padId: 0, padSide: 'right' as const };

  it('rolls over epochs and reshuffles', () => {
    const d = new SftBatches(examples, opts);
    expect(d.batchesInEpoch(0)).toBe(4);
    const ids = Array.from({ length: 8 }, () => d.next());
    expect(ids[3].epoch).toBe(0);
    expect(ids[4]).toMatchObject({ epoch: 1, index: 0 });
    expect(
      ids
        .slice(0, 4)
        .flatMap((x) => x.exampleIds.flat())
        .sort((a, b) => a - b),
    ).toEqual([...examples.keys()]);
    expect(ids.slice(4).map((x) => x.exampleIds)).not.toEqual(ids.slice(0, 4).map((x) => x.exampleIds));
  });

  it('resumes exactly from a saved position (also across an epoch boundary)', () => {
    for (const stopAt of [2, 4, 6]) {
      const full = new SftBatches(examples, opts);
      const all = Array.from({ length: 10 }, () => full.next().batch);
      const first = new SftBatches(examples, opts);
      for (let i = 0; i < stopAt; i++) first.next();
      const saved = JSON.parse(JSON.stringify(first.position));
      const resumed = new SftBatches(examples, opts);
      resumed.seek(saved);
      const rest = Array.from({ length: 10 - stopAt }, () => resumed.next().batch);
      expect(rest).toEqual(all.slice(stopAt));
    }
  });

  it('rejects bad positions and empty data with a reason', () => {
    const d = new SftBatches(examples, opts);
    expect(() => d.seek({ epoch: 0, index: 9 })).toThrow(
      /past epoch 0's 4 batches; was the dataset or batchSize changed/,
    );
    expect(() => d.seek({ epoch: -1, index: 0 })).toThrow(/bad data position/);
    expect(() => new SftBatches([], opts)).toThrow(/no examples/);
  });

  it('end to end: JSONL -> char tokenizer -> padded batches', async () => {
    const f = tmpFile(
      [
        '{"question":"1+1?","solution":"2","answer":"2"}',
        '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}',
      ].join('\n'),
    );
    const ex = await loadSftExamples(f, { ...OPTS, promptTemplate: 'plain' });
    const { examples: tok } = await tokenizeExamples(ex, charTokenize, 64);
    const d = new SftBatches(tok, {
      batchSize: 2,
      seed: 0,
      lengthGrouping: false,
      padId: 0,
      padSide: 'left',
    });
    const { batch } = d.next();
    const texts = batch.labels.map((r) => String.fromCharCode(...r.filter((x) => x !== -100)));
    expect(texts.sort()).toEqual(['2\n', 'hello\n']);
    expect(batch.inputIds[0].length).toBe(Math.max(...tok.map((t) => t.inputIds.length)));
  });
});

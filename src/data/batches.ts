// SFT batches: the seeded epoch order, length grouping, packing, padding/collate and the resumable batch stream.
// Batching follows HF `LengthGroupedSampler` (shuffle, cut into mega-batches of 50 batches, sort each by length) and
// mlx-lm `iterate_batches` (pad to the longest row). The order of epoch e is a pure function of (seed, e): the Rng
// stream 'data' split per epoch. So a data position (epoch, index) is all `--resume` needs to continue exactly.
//
// Packing puts several sequences into one row of at most maxSeqLen tokens. `segmentIds` tell sequences apart; the
// first label of every packed sequence after the first is IGNORE_INDEX so the (shifted) loss never trains on
// predicting one sequence from the end of another. The trainer passes segmentIds to the model (ModelInputs), which
// makes attention block-diagonal per sequence and restarts positions per sequence (3-D for images), so a packed row
// is exactly equivalent to its sequences run unpacked. `positionIds` here only count tokens per sequence (the
// model derives its 3-D positions from segmentIds).
import { IGNORE_INDEX } from '../model/loss.js';
import { Rng } from '../util/rng.js';
import type { TokenizedExample } from './dataset.js';

/** Position in a data stream, enough to continue exactly (SFT batches, GRPO prompts). */
export interface DataPosition {
  /** 0-based epoch. */
  epoch: number;
  /** Index of the next batch (or prompt) within the epoch's order. */
  index: number;
}

/** Batches per mega-batch for length grouping (HF LengthGroupedSampler uses 50). */
export const MEGA_BATCH_MULT = 50;

/**
 * Permutation of 0..n-1 for `epoch`: Rng(seed) -> stream 'data' -> stream `epoch-<e>`. Pure in (n, seed, epoch).
 * @example epochOrder(5, 0, 0) // a permutation of [0, 1, 2, 3, 4], the same on every call
 */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new Rng(seed ?? 0).split('data').split(`epoch-${epoch}`);
  return rng.shuffle(Array.from({ length: n }, (_, i) => i));
}

/** Options of {@link planEpoch}. */
export interface PlanOptions {
  batchSize: number;
  seed: number;
  /** Sort within mega-batches of MEGA_BATCH_MULT * batchSize * gradAccumSteps by length (longest first). */
  lengthGrouping: boolean;
  /**
   * Micro-batches per optimizer step (default 1). It only sizes the mega-batches, so that batch 4 x accum 1 and
   * batch 1 x accum 4 see the same examples in the same order.
   */
  gradAccumSteps?: number;
  /** Pack sequences into rows of at most this many tokens (lengthGrouping is then ignored); omit for one per row. */
  packTo?: number;
  /** Drop a final partial batch (default false). */
  dropLast?: boolean;
}

/**
 * Batches of one epoch, each a list of rows, each row a list of example indices (one index unless packing).
 * @example planEpoch([5, 3, 9], 0, { batchSize: 2, seed: 0, lengthGrouping: false }) // e.g. [[[2], [0]], [[1]]]
 */
export function planEpoch(lengths: number[], epoch: number, o: PlanOptions): number[][][] {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
    throw new Error(`batchSize must be an integer >= 1, got ${o.batchSize}`);
  const order = epochOrder(lengths.length, o.seed, epoch);
  let rows: number[][];
  if (o.packTo !== undefined) rows = packGreedy(order, lengths, o.packTo);
  else if (o.lengthGrouping)
    rows = groupByLength(order, lengths, MEGA_BATCH_MULT * o.batchSize * (o.gradAccumSteps ?? 1)).map((i) => [
      i,
    ]);
  else rows = order.map((i) => [i]);
  const batches: number[][][] = [];
  for (let i = 0; i < rows.length; i += o.batchSize) batches.push(rows.slice(i, i + o.batchSize));
  if (o.dropLast && batches.length && batches[batches.length - 1].length < o.batchSize) batches.pop();
  return batches;
}

/** Cuts `order` into mega-batches of `mega` and sorts each by length, longest first (stable, so ties keep the shuffle). */
function groupByLength(order: number[], lengths: number[], mega: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < order.length; i += mega) {
    out.push(...order.slice(i, i + mega).sort((a, b) => lengths[b] - lengths[a]));
  }
  return out;
}

/**
 * Greedy packing in the given order: a sequence joins the current row if it fits, else starts a new row.
 * @example packGreedy([0, 1, 2], [3, 4, 2], 6) // [[0], [1, 2]]
 */
export function packGreedy(order: number[], lengths: number[], maxLen: number): number[][] {
  const rows: number[][] = [];
  let cur: number[] = [];
  let used = 0;
  for (const i of order) {
    if (lengths[i] > maxLen)
      throw new Error(`example ${i} has ${lengths[i]} tokens, more than the packing length ${maxLen}`);
    if (used + lengths[i] > maxLen && cur.length) {
      rows.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += lengths[i];
  }
  if (cur.length) rows.push(cur);
  return rows;
}

/** A padded batch as plain arrays [B][T]; the trainer turns them into int32 tensors. */
export interface Batch {
  inputIds: number[][];
  labels: number[][];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[][];
  /** 0-based positions, restarting for each packed sequence; 1 on padding (as HF fills masked positions). */
  positionIds: number[][];
  /** Which packed sequence each token belongs to (0, 1, ...), -1 on padding. */
  segmentIds: number[][];
  /** Image paths per row, in placeholder order. */
  images: string[][];
  /** Number of label tokens (not IGNORE_INDEX): the loss normaliser. */
  numLabelTokens: number;
}

/**
 * Joins the examples of each row (packing) and pads rows to the longest with `padId` (labels with IGNORE_INDEX).
 * @example collate([[{ inputIds: [5, 6], labels: [-100, 6], images: [] }]], 0, 'left').inputIds // [[5, 6]]
 */
export function collate(rows: TokenizedExample[][], padId: number, padSide: 'left' | 'right'): Batch {
  const joined = rows.map(joinRow);
  const T = Math.max(...joined.map((r) => r.inputIds.length));
  const pad = <V>(xs: V[], v: V): V[] => {
    const p = new Array<V>(T - xs.length).fill(v);
    return padSide === 'left' ? [...p, ...xs] : [...xs, ...p];
  };
  const labels = joined.map((r) => pad(r.labels, IGNORE_INDEX));
  return {
    inputIds: joined.map((r) => pad(r.inputIds, padId)),
    labels,
    attentionMask: joined.map((r) =>
      pad(
        r.inputIds.map(() => 1),
        0,
      ),
    ),
    positionIds: joined.map((r) => pad(r.positionIds, 1)),
    segmentIds: joined.map((r) => pad(r.segmentIds, -1)),
    images: joined.map((r) => r.images),
    numLabelTokens: labels.flat().filter((l) => l !== IGNORE_INDEX).length,
  };
}

/** Concatenates one row's sequences; positions restart per sequence; the first label of later sequences is masked. */
function joinRow(seqs: TokenizedExample[]) {
  const r = {
    inputIds: [] as number[],
    labels: [] as number[],
    positionIds: [] as number[],
    segmentIds: [] as number[],
    images: [] as string[],
  };
  seqs.forEach((s, k) => {
    r.inputIds.push(...s.inputIds);
    r.labels.push(...s.labels.map((l, t) => (k > 0 && t === 0 ? IGNORE_INDEX : l)));
    r.positionIds.push(...s.inputIds.map((_, t) => t));
    r.segmentIds.push(...s.inputIds.map(() => k));
    r.images.push(...s.images);
  });
  return r;
}

/** Options of {@link SftBatches}. */
export interface SftBatchOptions extends Omit<PlanOptions, 'packTo'> {
  padId: number;
  padSide: 'left' | 'right';
  /** Pack sequences into rows of this many tokens (SftConfig: maxSeqLen when packing is on). */
  packTo?: number;
}

/**
 * Endless, resumable stream of collated batches over epochs. `position` is the next batch to be read.
 * @example
 * const data = new SftBatches(examples, { batchSize: 4, seed: cfg.seed, lengthGrouping: true, padId, padSide: 'right' });
 * data.seek(saved.dataPosition);            // on --resume
 * const { batch, epoch, index } = data.next();
 * save({ dataPosition: data.position });
 */
export class SftBatches {
  private pos: DataPosition = { epoch: 0, index: 0 };
  private plan: { epoch: number; batches: number[][][] } | undefined;
  private readonly lengths: number[];

  constructor(
    private readonly examples: TokenizedExample[],
    private readonly o: SftBatchOptions,
  ) {
    if (examples.length === 0)
      throw new Error('SftBatches: no examples (is the dataset empty or fully truncated?)');
    this.lengths = examples.map((e) => e.inputIds.length);
    if (this.batchesInEpoch(0) === 0) {
      throw new Error(
        `SftBatches: ${examples.length} examples give no full batch of ${o.batchSize} with dropLast`,
      );
    }
  }

  /** Batches in epoch `e` (constant unless packing, whose row count depends on the order). */
  batchesInEpoch(e: number): number {
    return this.planFor(e).length;
  }

  private planFor(e: number): number[][][] {
    if (this.plan?.epoch !== e) this.plan = { epoch: e, batches: planEpoch(this.lengths, e, this.o) };
    return this.plan.batches;
  }

  /** The next batch to be read, as (epoch, index within epoch). */
  get position(): DataPosition {
    return { ...this.pos };
  }

  /** Continue from a saved position. */
  seek(p: DataPosition): void {
    if (!Number.isInteger(p.epoch) || !Number.isInteger(p.index) || p.epoch < 0 || p.index < 0) {
      throw new Error(`SftBatches.seek: bad data position ${JSON.stringify(p)}`);
    }
    if (p.index > this.batchesInEpoch(p.epoch)) {
      throw new Error(
        `SftBatches.seek: index ${p.index} is past epoch ${p.epoch}'s ${this.batchesInEpoch(p.epoch)} batches; was the dataset or batchSize changed?`,
      );
    }
    this.pos = { ...p };
  }

  /** Reads one batch and advances (rolling over to the next epoch). */
  next(): { batch: Batch; epoch: number; index: number; exampleIds: number[][] } {
    if (this.pos.index >= this.batchesInEpoch(this.pos.epoch))
      this.pos = { epoch: this.pos.epoch + 1, index: 0 };
    const { epoch, index } = this.pos;
    const rows = this.planFor(epoch)[index];
    this.pos = { epoch, index: index + 1 };
    const batch = collate(
      rows.map((r) => r.map((i) => this.examples[i])),
      this.o.padId,
      this.o.padSide,
    );
    return { batch, epoch, index, exampleIds: rows };
  }
}

/**
 * Evaluation batches: every example once, in file order, no shuffling or grouping.
 * @example for (const b of evalBatches(evalExamples, 8, padId, 'right')) loss += evalLoss(b);
 */
export function evalBatches(
  examples: TokenizedExample[],
  batchSize: number,
  padId: number,
  padSide: 'left' | 'right',
): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be an integer >= 1, got ${batchSize}`);
  const out: Batch[] = [];
  for (let i = 0; i < examples.length; i += batchSize) {
    out.push(
      collate(
        examples.slice(i, i + batchSize).map((e) => [e]),
        padId,
        padSide,
      ),
    );
  }
  return out;
}

/**
 * Optimizer steps for `epochs` passes (rounded up), given batches per epoch and gradient accumulation.
 * @example stepsForEpochs(1.5, 10, 2) // 8
 */
export function stepsForEpochs(epochs: number, batchesPerEpoch: number, gradAccumSteps: number): number {
  return Math.max(1, Math.ceil((epochs * batchesPerEpoch) / gradAccumSteps));
}

// Seeded, splittable pseudo-random numbers (xoshiro128** seeded through SplitMix32).
// One `seed` per run, split into named streams (data, sampling, init) so that adding a draw in one stream
// never shifts another. The state is four uint32 words: it can be saved in a checkpoint and restored.

/** Serialisable generator state: four uint32 words. */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a hash of a stream name, used to derive independent streams from one seed. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * A seeded generator. `new Rng(0).uniform()` is always the same number.
 * @example
 * const rng = new Rng(seed ?? 0);
 * const data = rng.split('data');   // independent stream for shuffling
 * data.shuffle(indices);
 */
export class Rng {
  private s: RngState;

  constructor(seed: number | RngState = 0) {
    if (Array.isArray(seed)) {
      if (seed.length !== 4 || seed.every((w) => w === 0)) {
        throw new Error('Rng state must be four uint32 words, not all zero');
      }
      this.s = [seed[0] >>> 0, seed[1] >>> 0, seed[2] >>> 0, seed[3] >>> 0];
    } else {
      if (!Number.isFinite(seed)) throw new Error(`Rng seed must be a finite number, got ${seed}`);
      const sm = splitmix32((Math.floor(seed) >>> 0) ^ Math.floor(seed / 2 ** 32));
      this.s = [sm(), sm(), sm(), sm()];
      if (this.s.every((w) => w === 0)) this.s[0] = 1;
    }
  }

  /** A new generator for the named stream, independent of this one's future draws. */
  split(name: string): Rng {
    const sm = splitmix32((this.s[0] ^ hashName(name)) >>> 0);
    const st: RngState = [sm() ^ this.s[1], sm() ^ this.s[2], sm() ^ this.s[3], sm()];
    return new Rng(st.map((w) => w >>> 0) as RngState);
  }

  /** Next uint32. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    s[0] >>>= 0;
    s[1] >>>= 0;
    s[2] >>>= 0;
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`Rng.int(n) needs a positive integer, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = xs[i];
      xs[i] = xs[j];
      xs[j] = tmp;
    }
    return xs;
  }

  /** Copy of the state, for checkpoints. */
  getState(): RngState {
    return [...this.s] as RngState;
  }

  /** Restore a state saved with getState(). */
  setState(state: RngState): void {
    this.s = new Rng(state).s;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

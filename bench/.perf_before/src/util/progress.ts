// Training progress display: a one-line bar redrawn in place on a TTY, plain lines otherwise (CI logs, pipes).
// Formatting is pure (`formatProgress`) so it is tested without a terminal.

/** What a progress line shows. */
export interface ProgressInfo {
  step: number;
  total: number;
  loss?: number;
  lr?: number;
  tokensPerSec?: number;
  /** Seconds since the first step started, for the ETA. */
  elapsedSec: number;
}

/**
 * Duration as `1h02m`, `3m05s` or `12s`; `--` when unknown.
 * @example formatDuration(3725) // '1h02m'
 */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/**
 * One progress line. With `barWidth` > 0 a `[####....]` bar leads.
 * @example formatProgress({ step: 5, total: 10, loss: 1.5, lr: 1e-4, tokensPerSec: 250, elapsedSec: 10 }, 10)
 * // '[#####.....] 5/10 loss 1.5000 lr 1.00e-4 tok/s 250 eta 10s'
 */
export function formatProgress(p: ProgressInfo, barWidth = 0): string {
  const frac = p.total > 0 ? Math.min(1, p.step / p.total) : 0;
  const parts: string[] = [];
  if (barWidth > 0) {
    const filled = Math.round(frac * barWidth);
    parts.push(`[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]`);
  }
  parts.push(`${p.step}/${p.total}`);
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.lr !== undefined) parts.push(`lr ${p.lr.toExponential(2)}`);
  if (p.tokensPerSec !== undefined) parts.push(`tok/s ${Math.round(p.tokensPerSec)}`);
  const eta = p.step > 0 ? (p.elapsedSec / p.step) * (p.total - p.step) : Number.NaN;
  parts.push(`eta ${formatDuration(eta)}`);
  return parts.join(' ');
}

/** Where the bar writes: process.stdout / stderr or anything with `write` (and `isTTY` when it is a terminal). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Progress bar for a run of `total` steps: redraws one line on a TTY, prints a plain line per update otherwise.
 * @example
 * const bar = new ProgressBar(cfg.steps, process.stderr);
 * bar.update({ step, loss, lr, tokensPerSec });
 * bar.done();
 */
export class ProgressBar {
  private readonly start: number;

  constructor(
    readonly total: number,
    private readonly stream: ProgressStream = process.stderr,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.start = now();
  }

  update(p: Omit<ProgressInfo, 'total' | 'elapsedSec'>): void {
    const info = { ...p, total: this.total, elapsedSec: (this.now() - this.start) / 1000 };
    if (this.stream.isTTY) {
      const line = formatProgress(info, 24);
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, 100))}`);
    } else {
      this.stream.write(`${formatProgress(info)}\n`);
    }
  }

  /** Ends the TTY line so later output starts on a fresh line. */
  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

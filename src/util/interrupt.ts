// Graceful stop on SIGINT / SIGTERM for long runs: the first signal asks the loop to stop after the current step (the
// trainer then saves a checkpoint and exits with a message); a second one exits at once. Like Ctrl-C in HF Trainer
// callbacks / Lightning's graceful shutdown, but explicit: the loop polls `requested` once per step.

/** Exit code of a run stopped by a signal (128 + signal number, the shell convention). */
export const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Catches SIGINT and SIGTERM while installed. `requested` is the first signal received (undefined until then).
 * @example
 * const stop = StopSignal.install((l) => console.error(l));
 * try { for (...) { await step(); if (stop.requested) { await save(); break; } } } finally { stop.dispose(); }
 */
export class StopSignal {
  requested: 'SIGINT' | 'SIGTERM' | undefined;
  private readonly handlers = new Map<'SIGINT' | 'SIGTERM', () => void>();

  private constructor(private readonly say: (line: string) => void) {}

  /** Installs the handlers; `say` prints the one-line notice (default: stderr). */
  static install(say: (line: string) => void = (l) => console.error(l)): StopSignal {
    const s = new StopSignal(say);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = () => s.onSignal(sig);
      s.handlers.set(sig, h);
      process.on(sig, h);
    }
    return s;
  }

  private onSignal(sig: 'SIGINT' | 'SIGTERM'): void {
    if (this.requested) {
      this.say(`${sig} again: exiting now without saving (the last saved checkpoint is kept)`);
      process.exit(SIGNAL_EXIT[sig]);
    }
    this.requested = sig;
    this.say(
      `${sig} received: stopping after the current step and saving a checkpoint (send it again to exit at once)`,
    );
  }

  /** Exit code for the received signal (0 when none). */
  get exitCode(): number {
    return this.requested ? SIGNAL_EXIT[this.requested] : 0;
  }

  /** Removes the handlers (the default signal behaviour returns). */
  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }
}

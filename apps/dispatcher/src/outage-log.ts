import type { Logger } from "@runbridge/common";

/**
 * One warning per interval for failures that come in floods: while PostgreSQL is unreachable every
 * queued delivery fails and is retried each second, and a line per attempt buried the logs (hundreds a
 * second with a few hundred jobs waiting). Each line says how many failed since the previous one; the
 * failures after the last line are reported an interval later (flush), not carried to the next outage.
 */
export class OutageLog {
  private lastAt = Number.NEGATIVE_INFINITY;
  private unreported = 0;
  private lastError = "";
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  failed(error: string): void {
    this.unreported++;
    this.lastError = error;
    if (this.now() - this.lastAt < this.intervalMs) {
      // Not an open handle of its own: a process with nothing else to do may exit without this line.
      this.pending ??= setTimeout(() => this.flush(), this.intervalMs).unref();
      return;
    }
    this.flush();
  }

  /** Logs the failures not reported yet, if any. */
  flush(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    if (this.unreported === 0) return;
    this.logger.warn(this.message, { error: this.lastError, failures: this.unreported, perSeconds: this.intervalMs / 1000 });
    this.lastAt = this.now();
    this.unreported = 0;
  }
}

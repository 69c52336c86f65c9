import type { Logger } from "@runbridge/common";

/**
 * One warning per interval for failures that come in floods: while PostgreSQL is unreachable every
 * queued delivery fails and is retried each second, and a line per attempt buried the logs (hundreds a
 * second with a few hundred jobs waiting). Each line says how many failed since the previous one.
 */
export class OutageLog {
  private lastAt = Number.NEGATIVE_INFINITY;
  private unreported = 0;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  failed(error: string): void {
    this.unreported++;
    const t = this.now();
    if (t - this.lastAt < this.intervalMs) return;
    this.logger.warn(this.message, { error, failures: this.unreported, perSeconds: this.intervalMs / 1000 });
    this.lastAt = t;
    this.unreported = 0;
  }
}

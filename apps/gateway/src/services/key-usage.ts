import type { Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";

/**
 * Records `last_used_at` / `last_used_ip` of automation keys behind the
 * request path: requests only note the use in memory; a timer writes the
 * latest use of each key at most once per interval, all keys in one statement. Raw SQL so the row's
 * `updated_at` (which means "settings changed") is not touched, and the
 * condition keeps an older write from another replica from going backwards.
 */
export class KeyUsageRecorder {
  private pending = new Map<string, { at: Date; ip: string }>();
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
    intervalMs = 2000,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  record(keyId: string, ip: string): void {
    this.pending.set(keyId, { at: new Date(), ip });
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      // One statement for the whole batch: a replica serving many keys (a CI fleet) would
      // otherwise send one UPDATE per key every interval.
      // In id order: with a plan that locks the rows in the array's order (a nested loop, on a large table),
      // two replicas that first saw the same keys in opposite orders would deadlock, and one batch be lost.
      const uses = [...batch].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const ids = uses.map(([id]) => id);
      const ats = uses.map(([, use]) => use.at.toISOString());
      const ips = uses.map(([, use]) => use.ip);
      try {
        await this.prisma.$executeRaw`
          UPDATE automation_keys k SET last_used_at = u.at, last_used_ip = u.ip
          FROM unnest(${ids}::uuid[], ${ats}::timestamptz[], ${ips}::text[]) AS u(id, at, ip)
          WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`;
      } catch (err) {
        // Losing last-used stamps is harmless; the next use records them again.
        this.logger.warn("could not record key use", { keys: ids.length, error: String(err) });
      }
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    // A flush that was already running when close began may have left newer uses behind.
    await this.flush();
  }
}

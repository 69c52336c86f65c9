import type { Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";

/**
 * Records `last_used_at` / `last_used_ip` of automation keys behind the
 * request path: requests only note the use in memory; a timer writes the
 * latest use of each key at most once per interval. Raw SQL so the row's
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
      for (const [id, use] of batch) {
        try {
          await this.prisma.$executeRaw`
            UPDATE automation_keys SET last_used_at = ${use.at}, last_used_ip = ${use.ip}
            WHERE id = ${id}::uuid AND (last_used_at IS NULL OR last_used_at < ${use.at})`;
        } catch (err) {
          // Losing a last-used stamp is harmless; the next use records it again.
          this.logger.warn("could not record key use", { automationKeyId: id, error: String(err) });
        }
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

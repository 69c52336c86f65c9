import { clockOffset, type Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";

const MEASURE_INTERVAL_MS = 60_000;
/** A slower answer says too little about the offset (half of it is the possible error). */
const MAX_ROUND_TRIP_MS = 1_000;

/**
 * PostgreSQL's clock, by which every delivery deadline is written and read, as this dispatcher
 * estimates it: its own corrected by an offset measured once a minute. What runners measure
 * their clocks against (`runner:clock`). Until the first measurement, this dispatcher's own clock.
 */
export class PostgresClock {
  private offsetMs = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
  ) {}

  now(): number {
    return Date.now() + this.offsetMs;
  }

  start(): void {
    void this.measure();
    this.timer = setInterval(() => void this.measure(), MEASURE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One measurement; a failed or slow one keeps the last offset. */
  async measure(): Promise<void> {
    const sentAt = Date.now();
    const rows = await this.prisma.$queryRaw<{ now: Date }[]>`SELECT clock_timestamp() AS now`.catch((err: unknown) => {
      this.logger.debug("could not read PostgreSQL's clock", { error: String(err) });
      return [];
    });
    const offset = rows[0] ? clockOffset(sentAt, rows[0].now.getTime(), Date.now(), MAX_ROUND_TRIP_MS) : null;
    if (offset !== null) this.offsetMs = offset;
  }
}

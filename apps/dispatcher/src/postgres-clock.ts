import { type ClockSample, bestClockSample, type Logger } from "@runbridge/common";
import type { PrismaClient } from "@runbridge/db";

const MEASURE_INTERVAL_MS = 60_000;
/** A slower answer says too little about the offset (half of it is the possible error). */
const MAX_ROUND_TRIP_MS = 1_000;
/** Older than this (a few missed readings: PostgreSQL unreachable or slow), the estimate is not handed out. */
const FRESH_FOR_MS = 3 * MEASURE_INTERVAL_MS + 5_000;
/** Queries per reading, the quickest answer's kept (bestClockSample); fewer when one comes back within GOOD_ROUND_TRIP_MS. */
const SAMPLES_PER_READING = 5;
const GOOD_ROUND_TRIP_MS = 4;
/** How long the first reading is waited for at boot, in tries a second apart. */
const FIRST_READING_TRIES = 5;

/**
 * PostgreSQL's clock, by which every delivery deadline is written and read, as this dispatcher
 * estimates it: a reading taken once a minute, carried forward by the monotonic clock (a step of
 * this machine's wall clock, NTP setting it, does not move it). What runners measure their
 * clocks against (`runner:clock`), only while a reading is recent: until then this dispatcher's
 * own clock could be the one that is off, and passed off as PostgreSQL's it would have runners
 * with correct clocks refuse timely starts.
 */
export class PostgresClock {
  /** The last good reading: PostgreSQL's time, and performance.now() at the moment it was read. */
  private reading: { postgresAt: number; monotonicAt: number } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
  ) {}

  now(): number {
    return this.reading ? this.reading.postgresAt + (performance.now() - this.reading.monotonicAt) : Date.now();
  }

  /** PostgreSQL's time, when the last reading is recent; null otherwise. */
  fresh(): number | null {
    return this.reading !== null && performance.now() - this.reading.monotonicAt <= FRESH_FOR_MS ? this.now() : null;
  }

  /** Reads the clock (waiting a few seconds at most for a first good reading), then once a minute. */
  async start(): Promise<void> {
    for (let i = 0; i < FIRST_READING_TRIES && !(await this.measure()); i++) await new Promise((resolve) => setTimeout(resolve, 1_000));
    this.timer = setInterval(() => void this.measure(), MEASURE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One reading; a failed or slow one keeps the last. */
  async measure(): Promise<boolean> {
    const best = await bestClockSample(() => this.exchange(), SAMPLES_PER_READING, GOOD_ROUND_TRIP_MS);
    if (best === null) return false;
    this.reading = { postgresAt: best.postgresAt, monotonicAt: best.monotonicAt };
    this.logger.debug("read PostgreSQL's clock", { offsetMs: best.offsetMs, roundTripMs: best.roundTripMs });
    return true;
  }

  private async exchange(): Promise<(ClockSample & { postgresAt: number; monotonicAt: number }) | null> {
    const sentAt = performance.now();
    const rows = await this.prisma.$queryRaw<{ now: Date }[]>`SELECT clock_timestamp() AS now`.catch((err: unknown) => {
      this.logger.debug("could not read PostgreSQL's clock", { error: String(err) });
      return [];
    });
    const receivedAt = performance.now();
    const postgresAt = rows[0]?.now.getTime();
    const roundTripMs = receivedAt - sentAt;
    if (postgresAt === undefined || !Number.isFinite(postgresAt) || roundTripMs > MAX_ROUND_TRIP_MS) return null;
    // PostgreSQL read its clock somewhere in the round trip: taken as its middle, off by half of it at most.
    const monotonicAt = (sentAt + receivedAt) / 2;
    // (Against this machine's wall clock only for the log.)
    return { postgresAt, monotonicAt, roundTripMs, offsetMs: Math.round(postgresAt - (Date.now() - (receivedAt - monotonicAt))) };
  }
}

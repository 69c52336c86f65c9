import { type ClockSample, bestClockSample, clockOffset, type Logger } from "@runbridge/common";
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
  /** The last good reading: PostgreSQL's clock less the monotonic one (performance.now()), and when it was read. */
  private reading: { offsetMs: number; readAt: number } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
  ) {}

  now(): number {
    return this.reading ? performance.now() + this.reading.offsetMs : Date.now();
  }

  /** PostgreSQL's time, when the last reading is recent; null otherwise. */
  fresh(): number | null {
    return this.reading !== null && performance.now() - this.reading.readAt <= FRESH_FOR_MS ? this.now() : null;
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
    // Dated from before its first query: never fresher than it is.
    const readAt = performance.now();
    const best = await bestClockSample(() => this.exchange(), SAMPLES_PER_READING, GOOD_ROUND_TRIP_MS);
    if (best === null) return false;
    this.reading = { offsetMs: best.offsetMs, readAt };
    // (Against this machine's wall clock only for the log.)
    this.logger.debug("read PostgreSQL's clock", { offsetMs: Math.round(this.now() - Date.now()), roundTripMs: best.roundTripMs });
    return true;
  }

  /** One query, timed on the monotonic clock: its offset is PostgreSQL's clock less that one. */
  private async exchange(): Promise<ClockSample | null> {
    const sentAt = performance.now();
    const rows = await this.prisma.$queryRaw<{ now: Date }[]>`SELECT clock_timestamp() AS now`.catch((err: unknown) => {
      this.logger.debug("could not read PostgreSQL's clock", { error: String(err) });
      return [];
    });
    const receivedAt = performance.now();
    const offsetMs = rows[0] ? clockOffset(sentAt, rows[0].now.getTime(), receivedAt, MAX_ROUND_TRIP_MS) : null;
    return offsetMs === null ? null : { offsetMs, roundTripMs: receivedAt - sentAt };
  }
}

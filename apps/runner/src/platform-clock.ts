import { type ClockSample, bestClockSample, clockOffset, type Logger } from "@runbridge/common";
import type { PlatformTime } from "@runbridge/contracts";

/** An exchange slower than this says too little about the offset (half of it is the possible error). */
const MAX_ROUND_TRIP_MS = 2_000;
/** Asks per measurement, the quickest answer's kept (bestClockSample); fewer when one comes back within GOOD_ROUND_TRIP_MS. */
const SAMPLES_PER_MEASUREMENT = 3;
const GOOD_ROUND_TRIP_MS = 4;
/** Beyond this the server's clock is worth a warning: it is corrected for, but its other users are not. */
const WARN_OFFSET_MS = 5_000;
/** An answer this far off is taken for a broken one, not a clock: it is not used. */
const MAX_OFFSET_MS = 24 * 3_600_000;
/** The wall clock moved this much more or less than the monotonic one since the measurement: it was set (NTP stepped it). */
const STEP_MS = 1_000;

/**
 * The platform's time as this runner estimates it: its own clock corrected by the offset last
 * measured against a dispatcher (`runner:clock`, PostgreSQL's clock). Without a measurement — none
 * yet, an answer that was not signed for this connection, or the wall clock was set since — the
 * runner's own clock, within RUNBRIDGE_CLOCK_SKEW_SECONDS of tolerance.
 */
export class PlatformClock {
  private measurement: { offsetMs: number; wallAt: number; monotonicAt: number } | null = null;
  private warnedOffset: number | null = null;

  constructor(private readonly logger: Logger) {}

  now(): number {
    return Date.now() + (this.current()?.offsetMs ?? 0);
  }

  /** Whether an offset is known; `maxAgeMs`: measured at most that long ago. */
  measured(maxAgeMs = Infinity): boolean {
    const m = this.current();
    return m !== null && performance.now() - m.monotonicAt <= maxAgeMs;
  }

  /** The measurement, unless the wall clock was set since (its offset no longer applies). */
  private current(): { offsetMs: number; wallAt: number; monotonicAt: number } | null {
    const m = this.measurement;
    if (m === null) return null;
    if (Math.abs(Date.now() - m.wallAt - (performance.now() - m.monotonicAt)) <= STEP_MS) return m;
    this.logger.info("this server's clock was set since the platform's clock was measured; measuring again");
    this.measurement = null;
    return null;
  }

  /**
   * Asks through `ask` (the dispatcher's answer to `runner:clock`) a few times; `signed` says whether an
   * answer is signed for this connection. False when nothing usable came back.
   */
  async measure(ask: () => Promise<PlatformTime>, signed: (answer: PlatformTime) => boolean): Promise<boolean> {
    const best = await bestClockSample(() => this.exchange(ask, signed), SAMPLES_PER_MEASUREMENT, GOOD_ROUND_TRIP_MS);
    if (best === null) return false;
    const { offsetMs: offset, roundTripMs } = best;
    this.measurement = { offsetMs: offset, wallAt: best.wallAt, monotonicAt: best.monotonicAt };
    // Said once per large change, not at every measurement of a clock that stays off.
    if (Math.abs(offset) >= WARN_OFFSET_MS && (this.warnedOffset === null || Math.abs(offset - this.warnedOffset) >= WARN_OFFSET_MS)) {
      this.warnedOffset = offset;
      this.logger.warn("this server's clock is off from the platform's (PostgreSQL's); runbridge corrects its deadlines and start times for it, but keep the clock in sync (NTP)", {
        offsetMs: offset,
      });
    }
    this.logger.debug("measured the platform's clock", { offsetMs: offset, roundTripMs });
    return true;
  }

  private async exchange(ask: () => Promise<PlatformTime>, signed: (answer: PlatformTime) => boolean): Promise<(ClockSample & { wallAt: number; monotonicAt: number }) | null> {
    const sentAt = Date.now();
    const monotonicSentAt = performance.now();
    const reply = await ask().catch(() => null);
    const receivedAt = Date.now();
    const monotonicReceivedAt = performance.now();
    if (!reply) return null;
    if (!signed(reply)) {
      this.logger.warn("ignored an answer to runner:clock without a valid signature");
      return null;
    }
    const offsetMs = typeof reply.now === "string" ? clockOffset(sentAt, Date.parse(reply.now), receivedAt, MAX_ROUND_TRIP_MS) : null;
    if (offsetMs === null) return null;
    if (Math.abs(offsetMs) > MAX_OFFSET_MS) {
      this.logger.warn("ignored a platform time more than a day away from this server's clock", { now: reply.now });
      return null;
    }
    return { offsetMs, roundTripMs: receivedAt - sentAt, wallAt: (sentAt + receivedAt) / 2, monotonicAt: (monotonicSentAt + monotonicReceivedAt) / 2 };
  }
}

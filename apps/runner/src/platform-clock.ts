import { clockOffset, type Logger } from "@runbridge/common";
import type { PlatformTime } from "@runbridge/contracts";

/** An exchange slower than this says too little about the offset (half of it is the possible error). */
const MAX_ROUND_TRIP_MS = 2_000;
/** Beyond this the server's clock is worth a warning: it is corrected for, but its other users are not. */
const WARN_OFFSET_MS = 5_000;

/**
 * The platform's time as this runner estimates it: its own clock corrected by the offset last
 * measured against a dispatcher (`runner:clock`, PostgreSQL's clock). Until a measurement succeeds
 * — or against a dispatcher of an earlier release, which does not answer — the runner's own clock,
 * within RUNBRIDGE_CLOCK_SKEW_SECONDS of tolerance.
 */
export class PlatformClock {
  private offsetMs: number | null = null;
  private warnedOffset: number | null = null;

  constructor(private readonly logger: Logger) {}

  now(): number {
    return Date.now() + (this.offsetMs ?? 0);
  }

  /** Whether an offset has been measured. */
  get measured(): boolean {
    return this.offsetMs !== null;
  }

  /** Asks through `ask` (the dispatcher's answer to `runner:clock`); false when nothing usable came back. */
  async measure(ask: () => Promise<PlatformTime>): Promise<boolean> {
    const sentAt = Date.now();
    const reply = await ask().catch(() => null);
    const receivedAt = Date.now();
    const offset = reply && typeof reply.now === "string" ? clockOffset(sentAt, Date.parse(reply.now), receivedAt, MAX_ROUND_TRIP_MS) : null;
    if (offset === null) return false;
    this.offsetMs = offset;
    // Said once per large change, not at every measurement of a clock that stays off.
    if (Math.abs(offset) >= WARN_OFFSET_MS && (this.warnedOffset === null || Math.abs(offset - this.warnedOffset) >= WARN_OFFSET_MS)) {
      this.warnedOffset = offset;
      this.logger.warn("this server's clock is off from the platform's (PostgreSQL's); runbridge corrects its deadlines and start times for it, but keep the clock in sync (NTP)", {
        offsetMs: offset,
      });
    }
    this.logger.debug("measured the platform's clock", { offsetMs: offset, roundTripMs: receivedAt - sentAt });
    return true;
  }
}

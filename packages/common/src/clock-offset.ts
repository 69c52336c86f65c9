/**
 * How far a reference clock is ahead of ours (ms; negative: behind), from one exchange: asked at
 * `sentAt`, answered with the reference's `referenceTime`, the answer received at `receivedAt` (the
 * two in our clock). The reference read its clock somewhere in between, so the estimate is off by at
 * most half the round trip; an exchange slower than `maxRoundTripMs` (or a clock that stepped back
 * meanwhile) bounds nothing useful and gives null.
 */
export function clockOffset(sentAt: number, referenceTime: number, receivedAt: number, maxRoundTripMs: number): number | null {
  const roundTrip = receivedAt - sentAt;
  if (!Number.isFinite(referenceTime) || !(roundTrip >= 0 && roundTrip <= maxRoundTripMs)) return null;
  return Math.round(referenceTime - (sentAt + receivedAt) / 2);
}

/** One exchange with a reference clock: the offset it gave, and the round trip that bounds its error. */
export interface ClockSample {
  offsetMs: number;
  roundTripMs: number;
}

/**
 * Of up to `tries` exchanges one after another, the one with the shortest round trip: its offset has
 * the smallest error bound. One exchange is not enough: the first on a connection can carry the
 * connection's own set-up (a pool opening it: 110 ms here, which put a dispatcher's reading of
 * PostgreSQL's clock 55–90 ms off, and with it every runner's start stamps, after completed_at).
 * Stops at one within `goodEnoughMs`, and at an exchange that gives nothing (an error or a timeout
 * would only repeat).
 */
export async function bestClockSample<S extends ClockSample>(exchange: () => Promise<S | null>, tries: number, goodEnoughMs: number): Promise<S | null> {
  let best: S | null = null;
  for (let i = 0; i < tries; i++) {
    const sample = await exchange();
    if (sample === null) break;
    if (best === null || sample.roundTripMs < best.roundTripMs) best = sample;
    if (best.roundTripMs <= goodEnoughMs) break;
  }
  return best;
}

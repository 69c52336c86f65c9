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

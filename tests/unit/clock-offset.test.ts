import { type ClockSample, bestClockSample, clockOffset } from "@runbridge/common";

describe("clockOffset (one exchange with a reference clock)", () => {
  it("is the reference's time less the middle of the round trip", () => {
    expect(clockOffset(1_000, 181_010, 1_020, 2_000)).toBe(180_000);
    expect(clockOffset(1_000, -178_990, 1_020, 2_000)).toBe(-180_000);
  });

  it("gives nothing for a round trip too slow to bound the error, a clock that stepped back meanwhile, or a time that is not one", () => {
    expect(clockOffset(1_000, 5_000, 3_001, 2_000)).toBeNull();
    expect(clockOffset(1_000, 5_000, 999, 2_000)).toBeNull();
    expect(clockOffset(1_000, Number.NaN, 1_010, 2_000)).toBeNull();
  });
});

describe("bestClockSample (a few exchanges, the quickest kept)", () => {
  const exchanges = (...samples: (ClockSample | null)[]) => {
    let asked = 0;
    return { asked: () => asked, next: async () => samples[asked++] ?? null };
  };

  it("keeps the exchange with the shortest round trip, not the first (a connection's set-up rides on it)", async () => {
    const e = exchanges({ offsetMs: 55, roundTripMs: 110 }, { offsetMs: -4, roundTripMs: 10 }, { offsetMs: 1, roundTripMs: 6 });
    expect(await bestClockSample(e.next, 3, 4)).toEqual({ offsetMs: 1, roundTripMs: 6 });
    expect(e.asked()).toBe(3);
  });

  it("stops at a round trip good enough, and at an exchange that gives nothing", async () => {
    const quick = exchanges({ offsetMs: 30, roundTripMs: 60 }, { offsetMs: 0, roundTripMs: 2 }, { offsetMs: 9, roundTripMs: 1 });
    expect(await bestClockSample(quick.next, 5, 4)).toEqual({ offsetMs: 0, roundTripMs: 2 });
    expect(quick.asked()).toBe(2);
    const failing = exchanges({ offsetMs: 30, roundTripMs: 60 }, null, { offsetMs: 0, roundTripMs: 1 });
    expect(await bestClockSample(failing.next, 5, 4)).toEqual({ offsetMs: 30, roundTripMs: 60 });
    expect(failing.asked()).toBe(2);
    expect(await bestClockSample(exchanges(null).next, 5, 4)).toBeNull();
  });
});

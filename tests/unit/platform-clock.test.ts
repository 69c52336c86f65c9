import { createLogger } from "@runbridge/common";
import { PlatformClock } from "../../apps/runner/src/platform-clock";

describe("the runner's estimate of the platform's clock", () => {
  const logger = createLogger("runner", "error");
  const inThreeMinutes = () => Promise.resolve({ now: new Date(Date.now() + 180_000).toISOString(), sig: "checked by the callback" });

  it("takes a signed answer, and corrects its clock by it", async () => {
    const clock = new PlatformClock(logger);
    expect(await clock.measure(inThreeMinutes, () => true)).toBe(true);
    expect(clock.measured()).toBe(true);
    expect(Math.abs(clock.now() - (Date.now() + 180_000))).toBeLessThan(1_000);
  });

  it("ignores an answer not signed for its connection, one a day or more away, and no answer", async () => {
    const clock = new PlatformClock(logger);
    expect(await clock.measure(inThreeMinutes, () => false)).toBe(false);
    expect(await clock.measure(() => Promise.resolve({ now: "+275760-09-13T00:00:00.000Z" }), () => true)).toBe(false);
    expect(await clock.measure(() => Promise.resolve({ now: new Date(Date.now() - 2 * 86_400_000).toISOString() }), () => true)).toBe(false);
    expect(await clock.measure(() => Promise.reject(new Error("operation has timed out")), () => true)).toBe(false);
    expect(clock.measured()).toBe(false);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(50);
  });

  it("drops its measurement when the wall clock is set afterwards (NTP stepping it)", async () => {
    const clock = new PlatformClock(logger);
    await clock.measure(inThreeMinutes, () => true);
    const realNow = Date.now;
    Date.now = () => realNow() + 180_000;
    try {
      expect(clock.measured()).toBe(false);
      expect(Math.abs(clock.now() - (realNow() + 180_000))).toBeLessThan(50);
    } finally {
      Date.now = realNow;
    }
  });
});

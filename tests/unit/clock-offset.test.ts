import { clockOffset } from "@runbridge/common";

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

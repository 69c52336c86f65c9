import { HttpError, RateLimitedError, UnauthorizedError } from "../../apps/gateway/src/errors";

describe("domain errors (HTTP answers)", () => {
  it("carry status, headers and message, without capturing a stack trace", () => {
    const e = new RateLimitedError("slow down", 12.2);
    expect(e).toBeInstanceOf(HttpError);
    expect(e).toBeInstanceOf(Error);
    expect([e.status, e.headers, e.message, e.name]).toEqual([429, { "Retry-After": "13" }, "slow down", "RateLimitedError"]);
    expect(e.stack).not.toMatch(/\n\s+at /);
  });

  it("leave stack traces on for every other error", () => {
    const before = Error.stackTraceLimit;
    new UnauthorizedError();
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error("x").stack).toMatch(/\n\s+at /);
  });
});

// Preloaded (node --require) into a process the tests want on a clock of its own: every `Date`
// made and `Date.now()` read in it are off by TEST_CLOCK_SKEW_MS, as on a host whose clock drifted;
// on SIGUSR2 by TEST_CLOCK_STEP_MS instead, as when NTP (or an operator) sets the clock.
"use strict";
let skew = Number(process.env.TEST_CLOCK_SKEW_MS || 0);
process.on("SIGUSR2", () => (skew = Number(process.env.TEST_CLOCK_STEP_MS || 0)));
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + skew);
    else super(...args);
  }
  static now() {
    return RealDate.now() + skew;
  }
}
globalThis.Date = SkewedDate;

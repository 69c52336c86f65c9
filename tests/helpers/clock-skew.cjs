// Preloaded (node --require) into a process the tests want on a clock of its own: every `Date`
// made and `Date.now()` read in it are off by TEST_CLOCK_SKEW_MS, as on a host whose clock drifted.
"use strict";
const skew = Number(process.env.TEST_CLOCK_SKEW_MS || 0);
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

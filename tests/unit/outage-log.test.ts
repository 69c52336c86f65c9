import { createLogger } from "@runbridge/common";
import { OutageLog } from "../../apps/dispatcher/src/outage-log";

/** Failures that come in floods (every queued delivery, each second, while PostgreSQL is down) are logged once per interval, counted. */
describe("outage log", () => {
  /** The service's own logger, its console output silenced; each entry read as it leaves the logger. */
  function capture() {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger("dispatcher", "warn");
    for (const t of logger.transports) t.silent = true;
    logger.on("data", (info: Record<string, unknown>) => lines.push(info));
    return { lines, logger };
  }

  it("writes the first failure at once, then one line per interval with how many failed since", async () => {
    const { lines, logger } = capture();
    let now = 0;
    const log = new OutageLog(logger, "deliveries failing", 10_000, () => now);
    // 300 queued jobs failing once a second for 25 s: lines at 0, 10 and 20 s, each counting the failures since the one before.
    for (let second = 0; second < 25; second++, now += 1000) for (let job = 0; job < 300; job++) log.failed("Connection terminated");
    // The outage ends: what failed after the last line is reported once (by a timer an interval later; here at once).
    log.flush();
    log.flush();
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.message, l.failures, l.error])).toEqual([
      ["deliveries failing", 1, "Connection terminated"],
      ["deliveries failing", 10 * 300, "Connection terminated"],
      ["deliveries failing", 10 * 300, "Connection terminated"],
      ["deliveries failing", 5 * 300 - 1, "Connection terminated"],
    ]);
  });

  it("reports the failures after its last line an interval later, without waiting for the next outage", async () => {
    const { lines, logger } = capture();
    const log = new OutageLog(logger, "deliveries failing", 200);
    for (let i = 0; i < 5; i++) log.failed("Connection terminated");
    await new Promise((r) => setTimeout(r, 400));
    expect(lines.map((l) => l.failures)).toEqual([1, 4]);
  });
});

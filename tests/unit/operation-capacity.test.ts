import { createLogger } from "@runbridge/common";
import { OperationCapacity } from "../../apps/runner/src/capacity";

/** The runner's cap on operations held at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS), on the counts the agent reads from its state. */
describe("the runner's operation capacity", () => {
  /** The runner's logger, its console output silenced; each entry read as it leaves it. */
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("runner", "info");
    for (const t of logger.transports) t.silent = true;
    logger.on("data", (info: Record<string, unknown>) => lines.push(info));
    return { lines, logger };
  }

  it("takes starts below the cap and refuses, for later, one at it, with the counts and the setting in the reason", () => {
    const capacity = new OperationCapacity(2, capture().logger);
    expect(capacity.refusal("shell", { running: 1, undelivered: 0 })).toBeNull();
    expect(capacity.refusal("shell", { running: 2, undelivered: 0 })).toEqual({
      ok: false,
      error: "runner at capacity: 2 operations running, the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=2)",
      retryable: true,
      busy: true,
    });
    expect(capacity.refusal("argv", { running: 3, undelivered: 0 })).toMatchObject({ ok: false, retryable: true });
  });

  it("counts results not yet delivered as held, and says so", () => {
    const capacity = new OperationCapacity(4, capture().logger);
    expect(capacity.refusal("shell", { running: 1, undelivered: 2 })).toBeNull();
    expect(capacity.refusal("shell", { running: 1, undelivered: 3 })).toEqual({
      ok: false,
      error: "runner at capacity: 4 operations running or delivering their results (1 running, 3 results not yet stored), the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=4)",
      retryable: true,
      busy: true,
    });
  });

  it("never refuses a reboot", () => {
    expect(new OperationCapacity(1, capture().logger).refusal("reboot", { running: 5, undelivered: 5 })).toBeNull();
  });

  it("has no cap at 0", () => {
    expect(new OperationCapacity(0, capture().logger).refusal("shell", { running: 10_000, undelivered: 10_000 })).toBeNull();
  });

  it("warns at the first refusal, then at most once a minute, with the refusals since", () => {
    const { lines, logger } = capture();
    let now = 0;
    const capacity = new OperationCapacity(1, logger, () => now);
    const full = { running: 1, undelivered: 0 };
    capacity.refusal("shell", full);
    for (let i = 0; i < 30; i++) {
      now += 1000;
      capacity.refusal("shell", full);
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "warn", message: expect.stringContaining("runner at capacity") as unknown, running: 1, undelivered: 0, max: 1, refused: 1 });
    now += 30_000;
    capacity.refusal("shell", full);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ refused: 31 });
    // Taking a start says nothing.
    expect(capacity.refusal("shell", { running: 0, undelivered: 0 })).toBeNull();
    expect(lines).toHaveLength(2);
  });
});

import { type RetryOptions, withRetries } from "@runbridge/common";

/** Work failing `failures` times (errors "fail 1", "fail 2"...), then answering "done"; each try's time kept. */
function flaky(failures: number) {
  const triedAt: number[] = [];
  const work = async () => {
    triedAt.push(performance.now());
    if (triedAt.length <= failures) throw new Error(`fail ${triedAt.length}`);
    return "done";
  };
  return { work, triedAt };
}

/** Runs withRetries to its end on fake timers: its answer or error, and the pauses it said it takes. */
async function settle(work: () => Promise<string>, options: RetryOptions) {
  const retries: Array<[string, number]> = [];
  const run = withRetries(work, { ...options, onRetry: (err, pauseMs) => retries.push([(err as Error).message, pauseMs]) }).then(
    (value) => ({ value }),
    (error: unknown) => ({ error: (error as Error).message }),
  );
  await jest.runAllTimersAsync();
  return { outcome: await run, retries };
}

describe("withRetries", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it("tries at once, then after each pause of a list until it succeeds", async () => {
    const { work, triedAt } = flaky(2);
    const start = performance.now();
    const { outcome, retries } = await settle(work, { pauses: [250, 500, 1000] });
    expect(outcome).toEqual({ value: "done" });
    expect(retries).toEqual([
      ["fail 1", 250],
      ["fail 2", 500],
    ]);
    expect(triedAt.map((t) => t - start)).toEqual([0, 250, 750]);
  });

  it("gives up with the last error once the list is used up, without a retry hook call for it", async () => {
    const { work, triedAt } = flaky(10);
    const { outcome, retries } = await settle(work, { pauses: [250, 500] });
    expect(outcome).toEqual({ error: "fail 3" });
    expect(triedAt).toHaveLength(3);
    expect(retries.map(([message]) => message)).toEqual(["fail 1", "fail 2"]);
  });

  it("grows pauses by the factor up to the cap, and takes none that would end past the total after the first failure", async () => {
    const { work } = flaky(100);
    // 1 + 2 + 4 + 8 s = 15 s; the next (16 s) would end at 31 s, past 30 s.
    expect((await settle(work, { pauses: { firstMs: 1_000, totalMs: 30_000 } })).retries.map(([, ms]) => ms)).toEqual([1_000, 2_000, 4_000, 8_000]);
    // 1 + 3 + 5 + 5 + 5 = 19 s; the next would end at 24 s, past 20 s.
    expect((await settle(work, { pauses: { firstMs: 1_000, factor: 3, capMs: 5_000, totalMs: 20_000 } })).retries.map(([, ms]) => ms)).toEqual([
      1_000, 3_000, 5_000, 5_000, 5_000,
    ]);
  });

  it("counts the total from the first failure, tries included", async () => {
    let tries = 0;
    const slow = () =>
      new Promise<string>((_, reject) => {
        tries++;
        setTimeout(() => reject(new Error(`fail ${tries}`)), 10_000);
      });
    // Tries end at 10 s (the first failure: the total counts from here), 21 s, 33 s; a 4 s pause would end at 37 s, past 10 + 15 s.
    const { outcome, retries } = await settle(slow, { pauses: { firstMs: 1_000, totalMs: 15_000 } });
    expect(outcome).toEqual({ error: "fail 3" });
    expect(retries.map(([, ms]) => ms)).toEqual([1_000, 2_000]);
  });

  it("gives up before a pause once stopped, with the last error", async () => {
    const { work, triedAt } = flaky(10);
    const { outcome } = await settle(work, { pauses: [100, 100, 100], stopped: () => triedAt.length >= 2 });
    expect(outcome).toEqual({ error: "fail 2" });
    expect(triedAt).toHaveLength(2);
  });

  it("after a first try that failed elsewhere, starts with a pause, and gives up with that error if stopped before it", async () => {
    const { work, triedAt } = flaky(0);
    const start = performance.now();
    const { outcome } = await settle(work, { pauses: { firstMs: 1_000, totalMs: 60_000 }, alreadyFailed: { error: new Error("first") } });
    expect(outcome).toEqual({ value: "done" });
    expect(triedAt.map((t) => t - start)).toEqual([1_000]);

    const stopped = await settle(work, { pauses: [100], alreadyFailed: { error: new Error("first") }, stopped: () => true });
    expect(stopped.outcome).toEqual({ error: "first" });
    expect(triedAt).toHaveLength(1);
  });

  it("unrefs its pauses only when asked (a background retry does not hold the process open)", async () => {
    jest.useRealTimers();
    const setTimer = jest.spyOn(global, "setTimeout");
    try {
      for (const unref of [false, true]) await withRetries(flaky(1).work, { pauses: [7], unref });
      const pauses = setTimer.mock.calls.flatMap((call, i) => (call[1] === 7 ? [setTimer.mock.results[i]?.value as NodeJS.Timeout] : []));
      expect(pauses.map((timer) => timer.hasRef())).toEqual([true, false]);
    } finally {
      setTimer.mockRestore();
    }
  });
});

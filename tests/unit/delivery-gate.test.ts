import { DeliveryGate } from "../../apps/dispatcher/src/delivery-gate";

const ACK_TIMEOUT_MS = 5000;

function gateAt(clock: { now: number }, onUnresponsive?: (serverId: string) => void): DeliveryGate {
  return new DeliveryGate({ ackTimeoutMs: ACK_TIMEOUT_MS, slowAfterMs: 2500, now: () => clock.now, onUnresponsive });
}

class NotConnected extends Error {}
const isAbsence = (err: unknown) => err instanceof NotConnected;

/** A request that fails after `ms` of the test's clock (as an ack time-out does), or with `err`. */
function failsAfter(clock: { now: number }, ms: number, err: Error = new Error("operation has timed out")): () => Promise<never> {
  return async () => {
    clock.now += ms;
    throw err;
  };
}

describe("the delivery gate", () => {
  it("lets any number through to a runner that answers", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const tickets = Array.from({ length: 100 }, () => gate.ticket("a"));
    expect(tickets.every((t) => t.admit())).toBe(true);
    await Promise.all(tickets.map((t) => t.request(async () => "ok", isAbsence)));
    for (const t of tickets) t.leave();
    expect(gate.isHolding("a")).toBe(false);
  });

  it("after an unanswered request, lets one through at a time, and everything again once the runner answers", async () => {
    const clock = { now: 0 };
    const told: string[] = [];
    const gate = gateAt(clock, (id) => told.push(id));
    const first = gate.ticket("a");
    expect(first.admit()).toBe(true);
    await expect(first.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow("timed out");
    expect(told).toEqual(["a"]);
    expect(gate.isHolding("a")).toBe(true);

    // The one still holding its ticket is the probe: a second delivery is turned away...
    const second = gate.ticket("a");
    expect(second.admit()).toBe(false);
    expect(second.retryInMs).toBe(1000);
    // ...but not another server's.
    expect(gate.ticket("b").admit()).toBe(true);
    first.leave();

    // Unanswered again: waits longer, up to a bound.
    expect(second.admit()).toBe(true);
    await expect(second.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    expect(gate.ticket("a").retryInMs).toBe(2000);
    for (let i = 0; i < 5; i++) await expect(second.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    expect(gate.ticket("a").retryInMs).toBe(5000);
    expect(told).toEqual(["a"]); // logged once per spell, not per request
    second.leave();

    const probe = gate.ticket("a");
    expect(probe.admit()).toBe(true);
    await probe.request(async () => ({ ok: true }), isAbsence);
    expect(gate.isHolding("a")).toBe(false);
    expect(gate.ticket("a").admit()).toBe(true);
  });

  it("the runner gone (a quick failure saying so) lets deliveries through again: a new connection starts afresh", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const t = gate.ticket("a");
    t.admit();
    await expect(t.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    await expect(t.request(failsAfter(clock, 3, new NotConnected()), isAbsence)).rejects.toThrow();
    expect(gate.isHolding("a")).toBe(false);
  });

  it("any other quick failure (the operation ended meanwhile, a store hiccup) says nothing about the runner", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const t = gate.ticket("a");
    t.admit();
    await expect(t.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    await expect(t.request(failsAfter(clock, 3, new Error("connection reset")), isAbsence)).rejects.toThrow();
    expect(gate.isHolding("a")).toBe(true);
    expect(gate.ticket("a").retryInMs).toBe(1000);
  });

  it("a request waiting past slowAfterMs already holds the others back, before its time-out", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const waiting = gate.ticket("a");
    waiting.admit();
    let answer: (v: string) => void = () => undefined;
    const pending = waiting.request(() => new Promise<string>((resolve) => (answer = resolve)), isAbsence);
    clock.now += 1000;
    expect(gate.ticket("a").admit()).toBe(true);
    clock.now += 2000;
    const turnedAway = gate.ticket("a");
    expect(turnedAway.admit()).toBe(false);
    expect(turnedAway.retryInMs).toBe(500); // only slow: it may answer any moment
    answer("late but answered");
    await pending;
    expect(gate.ticket("a").admit()).toBe(true);
  });

  it("forgets a server nobody has asked about for a minute", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const t = gate.ticket("a");
    t.admit();
    await expect(t.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    clock.now += 61_000;
    expect(gate.isHolding("a")).toBe(false);
    expect(gate.ticket("a").admit()).toBe(true);
  });

  it("lets probes of unresponsive runners hold at most half the slots at once, the rest left to runners that answer", async () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    gate.useSlots(4);
    const frozen = ["a", "b", "c"];
    for (const id of frozen) {
      const t = gate.ticket(id);
      t.admit();
      await expect(t.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
      t.leave();
    }
    const probes = frozen.map((id) => gate.ticket(id));
    expect(probes.map((t) => t.admit())).toEqual([true, true, false]);
    expect(probes[2]?.heldFor).toBe("unresponsive");
    expect(probes[2]?.retryInMs).toBe(1000);
    // Any number to a runner that answers.
    expect(Array.from({ length: 10 }, () => gate.ticket("healthy").admit()).every(Boolean)).toBe(true);

    // A probe ending frees its place for the next one, whichever server it is for.
    probes[0]?.leave();
    expect(probes[2]?.admit()).toBe(true);
    expect(gate.ticket("a").admit()).toBe(false);

    // One turned away for the bound is not forgotten meanwhile: it was not asked since.
    clock.now += 50_000;
    expect(gate.ticket("a").admit()).toBe(false);
    clock.now += 50_000;
    expect(gate.isHolding("a")).toBe(true);

    // With a single slot, one probe still goes.
    const single = gateAt(clock);
    single.useSlots(1);
    const t = single.ticket("a");
    t.admit();
    await expect(t.request(failsAfter(clock, ACK_TIMEOUT_MS), isAbsence)).rejects.toThrow();
    t.leave();
    expect(single.ticket("a").admit()).toBe(true);
    expect(single.ticket("b").admit()).toBe(true); // not known unresponsive: not a probe
  });

  it("while the runner is busy, lets one start through now and then, and all once a place frees", () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    const probe = gate.ticket("a");
    expect(probe.admit()).toBe(true);
    probe.noteBusy("runner at capacity: 2 operations running");
    probe.leave();

    const waiting = gate.ticket("a");
    expect(waiting.admit()).toBe(false);
    expect(waiting.heldFor).toBe("busy");
    expect(waiting.busyReason).toBe("runner at capacity: 2 operations running");
    expect(waiting.retryInMs).toBe(2000);
    // A start it was handed already is answered from its ledger, never "busy": not held back.
    expect(gate.ticket("a").admit(true)).toBe(true);
    // Another server is not concerned.
    expect(gate.ticket("b").admit()).toBe(true);

    clock.now += 500;
    expect(gate.ticket("a").admit()).toBe(true); // the next probe
    expect(gate.ticket("a").admit()).toBe(false);

    gate.ticket("a").notePlace();
    expect(gate.ticket("a").admit()).toBe(true);
    expect(gate.ticket("a").admit()).toBe(true);
    expect(gate.ticket("a").busyReason).toBeNull();
  });

  it("forgets a busy answer that nothing has refreshed for a few seconds", () => {
    const clock = { now: 0 };
    const gate = gateAt(clock);
    gate.ticket("a").noteBusy("at capacity");
    clock.now += 400;
    expect(gate.ticket("a").admit()).toBe(false);
    clock.now += 4700;
    expect(gate.ticket("a").busyReason).toBeNull();
    expect(gate.ticket("a").admit()).toBe(true);
    expect(gate.ticket("a").admit()).toBe(true);
  });
});

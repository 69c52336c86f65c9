import { StreamSlots } from "../../apps/gateway/src/services/stream-slots";

describe("StreamSlots", () => {
  it("gives each key its own slots, and a slot given back twice counts once", () => {
    const slots = new StreamSlots(2);
    const a1 = slots.acquire("a");
    const a2 = slots.acquire("a");
    expect(a1).not.toBeNull();
    expect(a2).not.toBeNull();
    expect(slots.acquire("a")).toBeNull();
    expect(slots.acquire("b")).not.toBeNull();

    a1?.();
    a1?.();
    expect(slots.held("a")).toBe(1);
    const a3 = slots.acquire("a");
    expect(a3).not.toBeNull();
    expect(slots.acquire("a")).toBeNull();

    a2?.();
    a3?.();
    expect(slots.held("a")).toBe(0);
    expect(slots.held("b")).toBe(1);
  });
});

import { StreamSlots } from "../../apps/gateway/src/services/stream-slots";

describe("StreamSlots", () => {
  it("gives each key its own slots, and a slot given back twice counts once", () => {
    const slots = new StreamSlots(2);
    const a1 = slots.acquire("a") as () => void;
    const a2 = slots.acquire("a") as () => void;
    expect(typeof a1).toBe("function");
    expect(typeof a2).toBe("function");
    expect(slots.acquire("a")).toBe("key-full");
    expect(typeof slots.acquire("b")).toBe("function");

    a1();
    a1();
    expect(slots.held("a")).toBe(1);
    const a3 = slots.acquire("a") as () => void;
    expect(typeof a3).toBe("function");
    expect(slots.acquire("a")).toBe("key-full");

    a2();
    a3();
    expect(slots.held("a")).toBe(0);
    expect(slots.held("b")).toBe(1);
  });

  it("caps the streams of every key together, and the process cap frees as any key gives one back", () => {
    const slots = new StreamSlots(2, 3);
    const a1 = slots.acquire("a") as () => void;
    slots.acquire("a");
    slots.acquire("b");
    expect(slots.inUse).toBe(3);
    // "c" holds none of its own, but the process is full; "a" is refused for its own cap first.
    expect(slots.acquire("c")).toBe("process-full");
    expect(slots.acquire("a")).toBe("key-full");
    a1();
    a1();
    expect(slots.inUse).toBe(2);
    expect(typeof slots.acquire("c")).toBe("function");
    expect(slots.acquire("b")).toBe("process-full");
    expect(slots.held("c")).toBe(1);
  });
});

import { newest, surelyOlder, type ReplaceableSocket } from "../../apps/dispatcher/src/runner-link";

/** A runner connection as `newest` sees it: admission number (absent for some), handshake time, id. */
function conn(id: string, issued: number, seq?: number): ReplaceableSocket {
  return {
    id,
    data: { serverId: "s", tenantId: "t", serverName: "web", dispatcherId: "d", seq },
    handshake: { address: "127.0.0.1", headers: {}, issued },
    emit: () => undefined,
    disconnect: () => undefined,
  } as ReplaceableSocket;
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

/**
 * Every dispatcher that finds a server's runner connected more than once keeps
 * `newest` of them and sends the others away (the runner sent away stops for
 * good): they must all keep the same one, whatever order each lists them in.
 */
describe("the newest of a runner's connections", () => {
  it("goes by admission number, not by the dispatchers' clocks", () => {
    const live = conn("b", 1_000, 7);
    const stale = conn("a", 5_000, 3); // admitted earlier, on a dispatcher whose clock runs ahead
    for (const order of permutations([live, stale])) expect(newest(order)?.id).toBe("b");
  });

  it("is the same in every order and in every subset that holds it, when some connections have no admission number", () => {
    // By number 5 > 3; by clock 3 (t 20) > x (t 15) > 5 (t 10): comparing the kinds by clock made a cycle,
    // and a dispatcher holding b and c kept b while one seeing all three sent b away.
    const set = [conn("a", 10, 5), conn("b", 20, 3), conn("c", 15), conn("d", 30)];
    const keptOfAll = new Set(permutations(set).map((order) => newest(order)?.id));
    expect([...keptOfAll]).toEqual(["a"]);
    // Every subset keeps its best by the same order: the one kept of the whole set whenever it is there.
    const subsets = Array.from({ length: 2 ** set.length - 1 }, (_, mask) => set.filter((_, i) => ((mask + 1) >> i) & 1));
    for (const subset of subsets) {
      const kept = new Set(permutations(subset).map((order) => newest(order)?.id));
      expect({ subset: subset.map((c) => c.id), kept: kept.size }).toEqual({ subset: subset.map((c) => c.id), kept: 1 });
      if (subset.some((c) => c.id === "a")) expect(newest(subset)?.id).toBe("a");
    }
    // Numbered before unnumbered; among the unnumbered, the later handshake.
    expect(newest([conn("b", 20, 3), conn("c", 15), conn("d", 30)])?.id).toBe("b");
    expect(newest([conn("c", 15), conn("d", 30)])?.id).toBe("d");
  });

  it("never sends a connection away for one it cannot be compared with by number", () => {
    // A's network broke (its dispatcher has not noticed yet); the runner came back as B while its
    // dispatcher's Redis did not answer, so B has no number. Requests may go to A meanwhile; B must not be sent away.
    const dead = conn("a", 1_000, 10);
    const live = conn("b", 2_000);
    expect(newest([dead, live])?.id).toBe("a");
    expect(surelyOlder(dead, [live])).toEqual([]);
    // Nor the other way round; pairs of one kind are.
    expect(surelyOlder(live, [dead])).toEqual([]);
    expect(surelyOlder(conn("n", 1, 11), [dead]).map((c) => c.id)).toEqual(["a"]);
    expect(surelyOlder(conn("u", 3_000), [live]).map((c) => c.id)).toEqual(["b"]);
  });

  it("never sends a connection away for one numbered only after its admission", () => {
    // A was admitted while Redis did not answer, then the runner's network broke; it came back as B
    // elsewhere, numbered 20, before A's dispatcher noticed. A's number, asked again later, is 21.
    const late = { ...conn("a", 1_000, 21), data: { ...conn("a", 1_000, 21).data, seqLate: true as const } } as ReplaceableSocket;
    const live = conn("b", 2_000, 20);
    expect(newest([late, live])?.id).toBe("a");
    expect(surelyOlder(late, [live])).toEqual([]);
    // One admitted after it was numbered is surely newer, and may send it away.
    expect(surelyOlder(conn("c", 3_000, 22), [late]).map((c) => c.id)).toEqual(["a"]);
  });

  it("breaks ties by id, and keeps a lone connection", () => {
    for (const order of permutations([conn("x", 10), conn("y", 10), conn("w", 10)])) expect(newest(order)?.id).toBe("y");
    expect(newest([conn("only", 1, 1)])?.id).toBe("only");
    expect(newest([])).toBeUndefined();
  });
});

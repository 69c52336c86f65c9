import { newest, type ReplaceableSocket } from "../../apps/dispatcher/src/runner-link";

/** A runner connection as `newest` sees it: admission number (absent for some), handshake time, id. */
function conn(id: string, issued: number, seq?: number): ReplaceableSocket {
  return {
    id,
    data: { serverId: "s", tenantId: "t", serverName: "web", tokenHash: "h", dispatcherId: "d", seq },
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

  it("is the same in every order when some connections have no admission number", () => {
    // 5 > 3 by number; 3 (t 20) > x (t 15) and x > 5 (t 10) by clock: pairwise, a cycle.
    const set = [conn("a", 10, 5), conn("b", 20, 3), conn("c", 15)];
    const kept = new Set(permutations(set).map((order) => newest(order)?.id));
    expect([...kept]).toHaveLength(1);
    // The best numbered one (a, 5) against the best unnumbered (c): by clock, c.
    expect([...kept][0]).toBe("c");
  });

  it("breaks ties by id, and keeps a lone connection", () => {
    for (const order of permutations([conn("x", 10), conn("y", 10), conn("w", 10)])) expect(newest(order)?.id).toBe("y");
    expect(newest([conn("only", 1, 1)])?.id).toBe("only");
    expect(newest([])).toBeUndefined();
  });
});

import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import request from "supertest";
import { hashToken } from "@runbridge/common";
import { SocketPath } from "@runbridge/contracts";
import { createFixture } from "../helpers/factories";
import { HoldingProxy } from "../helpers/holding-proxy";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

const LIMIT = 3;
const CLOSED_LOG = /closed runner connections: too many not yet authenticated from one address/g;

/** A WebSocket upgrade to the runner endpoint that, once opened, never sends socket.io's handshake: anyone's. */
type Opened = { status: 101; socket: Socket; closed: Promise<unknown>; sid: Promise<string> };
type Upgrade = Opened | { status: number; body: string; closed: Promise<unknown> };

/**
 * Until its token is accepted, a connection to the dispatcher is anyone's: it may send messages as big as
 * a runner's result and stay until the handshake timeout. Each client address may hold only so many, and
 * only so long: one more closes the address's oldest (but not one whose token is being looked up) and is let
 * in, so a runner gets in at once however many idle ones share its address. Runners the dispatcher has let in do not count, and no request may name an
 * existing connection (which would skip the count). Real dispatcher and runner processes; raw WebSocket
 * upgrades for the rest.
 */
describe("runner connections not yet authenticated", () => {
  // A handshake timeout as long as allowed: these tests hold connections open on purpose.
  const suite = useStack({ dispatchers: 1, dispatcher: { RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS: String(LIMIT), RUNNER_HANDSHAKE_TIMEOUT_MS: "60000" } });
  let stack: TestStack;
  const sockets: Socket[] = [];
  const runners: ScriptedSocket[] = [];

  beforeAll(() => {
    ({ stack } = suite);
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const r of runners.splice(0)) r.disconnect();
    // The next test starts from nothing held on the shared dispatcher.
    await waitFor(async () => (await unauthenticated(stack.dispatcherPorts[0] as number)) === 0, 5_000, "the held connections to stop counting");
  });

  const upgrade = (port: number, opts: { forwardedFor?: string; sid?: string } = {}): Promise<Upgrade> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port,
        // A connection of its own each time, closed when the dispatcher closes it.
        agent: false,
        path: `${SocketPath}/?EIO=4&transport=websocket${opts.sid ? `&sid=${encodeURIComponent(opts.sid)}` : ""}`,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
          ...(opts.forwardedFor ? { "X-Forwarded-For": opts.forwardedFor } : {}),
        },
      });
      const closed = new Promise((done) => req.once("socket", (s: Socket) => s.once("close", done)));
      req.on("upgrade", (_res, socket: Socket, head: Buffer) => {
        sockets.push(socket);
        socket.on("error", () => undefined);
        // Read what the dispatcher sends, or its end of the connection would go unseen; engine.io's open packet names the connection.
        let received = head.toString("latin1");
        const sid = new Promise<string>((found) => {
          const look = () => {
            const m = /"sid":"([^"]+)"/.exec(received);
            if (m) found(m[1] as string);
          };
          socket.on("data", (d: Buffer) => {
            if (received.length < 4096) received += d.toString("latin1");
            look();
          });
          look();
        });
        resolve({ status: 101, socket, closed, sid });
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, closed }));
      });
      req.on("error", reject);
      req.end();
    });
  /** An upgrade let in. */
  const opened = async (port: number, forwardedFor?: string): Promise<Opened> => {
    const u = await upgrade(port, { forwardedFor });
    expect(u.status).toBe(101);
    return u as Opened;
  };
  /** `n` upgrades let in, one after another (the first the oldest). */
  const openedInTurn = async (port: number, n: number, forwardedFor?: string): Promise<Opened[]> => {
    const out: Opened[] = [];
    for (let i = 0; i < n; i++) out.push(await opened(port, forwardedFor));
    return out;
  };
  const connectRunner = async (port: number, token: string, forwardedFor?: string) => {
    const socket = scriptedRunner(port, token, forwardedFor ? { headers: { "X-Forwarded-For": forwardedFor } } : {});
    runners.push(socket);
    await untilConnected(socket);
  };
  const metric = async (port: number, name: string, outcome?: string) => {
    const text = (await request(`http://127.0.0.1:${port}`).get("/metrics").expect(200)).text;
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && (!outcome || l.includes(`outcome="${outcome}"`)));
    return line ? Number(line.split(" ").pop()) : 0;
  };
  const closedForRoom = (port: number) => metric(port, "runbridge_dispatcher_runner_handshakes_total", "too_many_unauthenticated");
  const unauthenticated = (port: number) => metric(port, "runbridge_dispatcher_unauthenticated_runner_connections");
  /** Which of `held` the dispatcher has closed (after a round trip to it: anything it closed before has arrived). */
  const closedOf = async (port: number, held: Opened[]) => {
    await metric(port, "runbridge_dispatcher_unauthenticated_runner_connections");
    return held.flatMap((u, i) => (u.socket.destroyed ? [i] : []));
  };

  it("lets an address hold so many; one more closes its oldest and is let in (counted, logged once); a closed one frees its place; runners let in do not count", async () => {
    const port = stack.dispatcherPorts[0] as number;
    // More runners than the limit, all let in and connected: a connection stops counting once its token is accepted.
    const fixtures = await Promise.all(Array.from({ length: LIMIT + 1 }, () => createFixture()));
    for (const fx of fixtures) await connectRunner(port, fx.runnerToken);

    const held = await openedInTurn(port, LIMIT);
    expect(await unauthenticated(port)).toBe(LIMIT);
    const next = await opened(port);
    await held[0]?.closed;
    expect(await closedOf(port, held)).toEqual([0]);
    // Without TRUST_PROXY an address a client writes into X-Forwarded-For is not believed: the same address, the next oldest.
    const forged = await opened(port, "203.0.113.9");
    await held[1]?.closed;
    // Nor does it take a valid token to get in: a runner's connection makes room like any other, then stops counting.
    const late = await createFixture();
    await connectRunner(port, late.runnerToken);
    await held[2]?.closed;

    expect(await closedForRoom(port)).toBe(3);
    expect(await unauthenticated(port)).toBe(LIMIT - 1);
    expect(stack.dispatchers[0]?.output.match(CLOSED_LOG)).toHaveLength(1);

    // A connection that closes frees its place at once: the next one closes nothing.
    next.socket.destroy();
    await waitFor(async () => (await unauthenticated(port)) === LIMIT - 2, 5_000, "the closed connection to stop counting");
    const more = await openedInTurn(port, 2);
    expect(await closedOf(port, [forged, ...more])).toEqual([]);
    expect(await closedForRoom(port)).toBe(3);
    await opened(port);
    await forged.closed;
    expect(await closedOf(port, more)).toEqual([]);

    expect(await closedForRoom(port)).toBe(4);
    expect(await unauthenticated(port)).toBe(LIMIT);
    expect(stack.dispatchers[0]?.output.match(CLOSED_LOG)).toHaveLength(1);
  });

  it("a runner gets in at once while its address is full of idle connections", async () => {
    const port = stack.dispatcherPorts[0] as number;
    const held = await openedInTurn(port, LIMIT);
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { waitConnected: false });
    // Not after retries (the idle ones would stay a minute): the first connection is let in.
    await stack.waitRunnerConnected(fx.server.id, 20_000);
    expect(runner.output).not.toContain("cannot connect to dispatcher");
    await held[0]?.closed;
    expect(await closedOf(port, held)).toEqual([0]);
    expect(await unauthenticated(port)).toBe(LIMIT - 1);
  });

  it("refuses every request naming an existing connection (its sid): an upgrade that would go uncounted and undated", async () => {
    const port = stack.dispatcherPorts[0] as number;
    const first = await opened(port);
    const sid = await first.sid;
    // Far more than the limit: without the refusal each is let in (101) and held, counted nowhere.
    const attempts = await Promise.all(Array.from({ length: LIMIT * 3 }, () => upgrade(port, { sid })));
    expect(attempts.map((u) => u.status)).toEqual(Array(LIMIT * 3).fill(400));
    expect(await metric(port, "runbridge_dispatcher_runner_handshakes_total", "names_session")).toBe(LIMIT * 3);
    // Closed by the dispatcher at once, not after a WebSocket close handshake.
    const closedWithin = (ms: number) => Promise.race([Promise.all(attempts.map((u) => u.closed)).then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);
    expect(await closedWithin(2_000)).toBe(true);
    // The connection named is untouched, and still the only one counted.
    expect(await closedOf(port, [first])).toEqual([]);
    expect(await unauthenticated(port)).toBe(1);
  });

  it("behind a proxy (TRUST_PROXY), counts per client address it forwarded (an IPv6 client per /64), not per proxy", async () => {
    await stack.startDispatcher({ TRUST_PROXY: "1" });
    const port = stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number;
    const a = await openedInTurn(port, LIMIT, "203.0.113.7");
    const b = await opened(port, "203.0.113.8");
    const fx = await createFixture();
    await connectRunner(port, fx.runnerToken, "203.0.113.8");
    await opened(port, "203.0.113.7");
    await a[0]?.closed;

    const v6: Opened[] = [];
    for (let i = 1; i <= LIMIT; i++) v6.push(await opened(port, `2001:db8:1:2::${i}`));
    await opened(port, "2001:db8:1:2:ffff::9");
    await v6[0]?.closed;
    const other = await opened(port, "2001:db8:1:3::1");

    // Only the oldest of each full address was closed.
    expect(await closedOf(port, [...a, b, ...v6, other])).toEqual([0, LIMIT + 1]);
    expect(await closedForRoom(port)).toBe(2);
    expect(await unauthenticated(port)).toBe(2 * LIMIT + 2);
  });

  it("holds at most RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX from all addresses together: one more closes the oldest of all, and a runner still gets in", async () => {
    const max = LIMIT + 2;
    await stack.startDispatcher({ TRUST_PROXY: "1", RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX: String(max) });
    const port = stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number;
    // Each address below its own share, all of them together at the limit.
    const held: Opened[] = [];
    for (let i = 1; i <= max; i++) held.push(await opened(port, `2001:db8:${i}::1`));
    expect(await unauthenticated(port)).toBe(max);
    expect(await closedForRoom(port)).toBe(0);
    // From yet another address: the oldest of all makes room.
    await opened(port, "2001:db8:ff::1");
    await held[0]?.closed;
    expect(await closedOf(port, held)).toEqual([0]);
    // A runner, from another address again, is let in at once (closing the next oldest), and then no longer counts.
    const fx = await createFixture();
    await connectRunner(port, fx.runnerToken, "198.51.100.20");
    await held[1]?.closed;
    expect(await closedOf(port, held)).toEqual([0, 1]);
    expect(await closedForRoom(port)).toBe(2);
    expect(await unauthenticated(port)).toBe(max - 1);
  });

  it("closes a connection not let in within RUNNER_HANDSHAKE_TIMEOUT_MS", async () => {
    const timeoutMs = 5000;
    await stack.startDispatcher({ RUNNER_HANDSHAKE_TIMEOUT_MS: String(timeoutMs) });
    const port = stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number;
    const opening = Date.now();
    const held = await openedInTurn(port, LIMIT);

    // Closed by the dispatcher, not by us: the runner sends its handshake at once, a connection that does not is dropped.
    await Promise.all(held.map((u) => u.closed));
    expect(Date.now() - opening).toBeLessThan(timeoutMs + 3000);
    expect(Date.now() - opening).toBeGreaterThanOrEqual(timeoutMs - 100);
    await waitFor(async () => (await unauthenticated(port)) === 0, 5_000, "nothing left counted");
    expect(await metric(port, "runbridge_dispatcher_runner_handshakes_total", "timed_out")).toBe(LIMIT);
    expect(await closedForRoom(port)).toBe(0);
  });

  /**
   * A dispatcher of its own whose PostgreSQL is reached through a proxy that can hold back the answers to
   * token lookups; `fleet` starts scripted runners with fresh tokens whose lookups are held, resolving once
   * every one of them is being checked.
   */
  const dispatcherWithHeldLookups = async (extra: Record<string, string> = {}) => {
    const db = new URL(stack.databaseUrl);
    const proxy = new HoldingProxy(Number(db.port || 5432));
    await proxy.listen();
    db.port = String(proxy.port);
    await stack.startDispatcher({ DATABASE_URL: db.toString(), ...extra });
    const port = stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number;
    const fleet = async (n: number) => {
      const fixtures = await Promise.all(Array.from({ length: n }, () => createFixture()));
      // Each lookup sends its token's hash: PostgreSQL's answers to those are held.
      proxy.hold(fixtures.map((fx) => hashToken(fx.runnerToken)));
      const sockets: ScriptedSocket[] = [];
      for (const fx of fixtures) {
        const before = proxy.heldRequests;
        sockets.push(scriptedRunner(port, fx.runnerToken));
        // One at a time, so the first is the oldest.
        await waitFor(async () => proxy.heldRequests > before, 10_000, "the runner's token lookup");
      }
      runners.push(...sockets);
      return sockets;
    };
    return { port, proxy, fleet };
  };

  it("does not close a connection whose token is being looked up to make room: a fleet behind one address reconnecting at once is not sent away", async () => {
    const { port, proxy, fleet } = await dispatcherWithHeldLookups();
    try {
      // PostgreSQL slow to answer: as many runners as the address may hold, being checked.
      const letIn = (await fleet(LIMIT)).map((socket) => untilConnected(socket));
      // One more connection: none of theirs is closed for it, so the address holds one more than its share for now.
      const idle = await opened(port);
      expect(await unauthenticated(port)).toBe(LIMIT + 1);
      proxy.release();
      await Promise.all(letIn);
      expect(await closedForRoom(port)).toBe(0);
      expect(await unauthenticated(port)).toBe(1);
      // An idle one is still closable: the address is full of idle ones, and one more closes the oldest.
      const more = await openedInTurn(port, LIMIT);
      await idle.closed;
      expect(await closedOf(port, more)).toEqual([]);
      expect(await closedForRoom(port)).toBe(1);
    } finally {
      proxy.release();
      await proxy.close();
    }
  });

  it("across addresses the bound holds even when every connection is being looked up: the oldest of them is closed", async () => {
    const { port, proxy, fleet } = await dispatcherWithHeldLookups({ RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX: "2" });
    try {
      const [oldest, newer] = await fleet(2);
      const closed = new Promise((resolve) => {
        oldest?.on("disconnect", resolve);
        oldest?.on("connect_error", resolve);
      });
      await opened(port);
      await closed;
      expect(await closedForRoom(port)).toBe(1);
      expect(await unauthenticated(port)).toBe(2);
      proxy.release();
      if (newer) await untilConnected(newer);
      expect(await unauthenticated(port)).toBe(1);
    } finally {
      proxy.release();
      await proxy.close();
    }
  });
});

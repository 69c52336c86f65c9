import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import request from "supertest";
import { SocketPath } from "@runbridge/contracts";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

const LIMIT = 3;
const REFUSED_LOG = /refused runner connections: too many not yet authenticated/g;

/** A WebSocket upgrade to the runner endpoint that, once opened, never sends socket.io's handshake: anyone's. */
type Upgrade = { status: 101; socket: Socket; closed: Promise<unknown> } | { status: number; body: string };

/**
 * Until its token is accepted, a connection to the dispatcher is anyone's: it may send messages as big as
 * a runner's result and stay until the handshake timeout. Each client address may hold only so many, and
 * only so long; runners the dispatcher has let in do not count, and a runner refused meanwhile gets in
 * with its own backoff. Real dispatcher and runner processes; raw WebSocket upgrades for the rest.
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
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const r of runners.splice(0)) r.disconnect();
  });

  const upgrade = (port: number, forwardedFor?: string): Promise<Upgrade> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({
        host: "127.0.0.1",
        port,
        path: `${SocketPath}/?EIO=4&transport=websocket`,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
          ...(forwardedFor ? { "X-Forwarded-For": forwardedFor } : {}),
        },
      });
      req.on("upgrade", (_res, socket: Socket) => {
        sockets.push(socket);
        // Read (and drop) what the dispatcher sends, or its end of the connection would go unseen.
        socket.resume();
        socket.on("error", () => undefined);
        resolve({ status: 101, socket, closed: new Promise((closed) => socket.once("close", closed)) });
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  const statuses = async (port: number, n: number, forwardedFor?: string) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await upgrade(port, forwardedFor)).status);
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
  const refusedCount = (port: number) => metric(port, "runbridge_dispatcher_runner_handshakes_total", "too_many_unauthenticated");
  const unauthenticated = (port: number) => metric(port, "runbridge_dispatcher_unauthenticated_runner_connections");

  it("lets an address hold so many, refuses one more at the upgrade (counted, logged once), frees a place when one closes; runners let in do not count", async () => {
    const port = stack.dispatcherPorts[0] as number;
    // More runners than the limit, all let in and connected: a connection stops counting once its token is accepted.
    const fixtures = await Promise.all(Array.from({ length: LIMIT + 1 }, () => createFixture()));
    for (const fx of fixtures) await connectRunner(port, fx.runnerToken);

    const held = await Promise.all(Array.from({ length: LIMIT }, () => upgrade(port)));
    expect(held.map((u) => u.status)).toEqual(Array(LIMIT).fill(101));
    const refused = await upgrade(port);
    expect(refused).toEqual({ status: 400, body: "too many runner connections not yet authenticated from this address, retry later" });
    // Without TRUST_PROXY an address a client writes into X-Forwarded-For is not believed.
    expect((await upgrade(port, "203.0.113.9")).status).toBe(400);
    // Nor does a valid token help before it is sent: the runner's own client sees the upgrade fail.
    const late = await createFixture();
    await expect(connectRunner(port, late.runnerToken)).rejects.toThrow("websocket error");

    expect(await refusedCount(port)).toBe(3);
    expect(await unauthenticated(port)).toBe(LIMIT);
    expect(stack.dispatchers[0]?.output.match(REFUSED_LOG)).toHaveLength(1);

    // A connection that closes frees its place at once.
    const first = held[0] as Extract<Upgrade, { status: 101 }>;
    first.socket.destroy();
    await waitFor(async () => (await unauthenticated(port)) === LIMIT - 1, 5_000, "the closed connection to stop counting");
    expect(await statuses(port, 2)).toEqual([101, 400]);
    // The runner refused a moment ago gets in once there is room.
    for (const s of sockets.splice(0)) s.destroy();
    await waitFor(async () => (await unauthenticated(port)) === 0, 5_000, "the held connections to stop counting");
    await connectRunner(port, late.runnerToken);

    expect(await refusedCount(port)).toBe(4);
    expect(stack.dispatchers[0]?.output.match(REFUSED_LOG)).toHaveLength(1);
  });

  it("behind a proxy (TRUST_PROXY), counts per client address it forwarded (an IPv6 client per /64), not per proxy", async () => {
    await stack.startDispatcher({ TRUST_PROXY: "1" });
    const port = stack.dispatcherPorts[stack.dispatcherPorts.length - 1] as number;
    expect(await statuses(port, LIMIT + 1, "203.0.113.7")).toEqual([...Array(LIMIT).fill(101), 400]);
    expect(await statuses(port, 1, "203.0.113.8")).toEqual([101]);
    const fx = await createFixture();
    await connectRunner(port, fx.runnerToken, "203.0.113.8");

    for (let i = 1; i <= LIMIT; i++) expect(await statuses(port, 1, `2001:db8:1:2::${i}`)).toEqual([101]);
    expect(await statuses(port, 1, "2001:db8:1:2:ffff::9")).toEqual([400]);
    expect(await statuses(port, 1, "2001:db8:1:3::1")).toEqual([101]);
  });

  it("closes a connection not let in within RUNNER_HANDSHAKE_TIMEOUT_MS; a real runner refused meanwhile retries and gets in", async () => {
    const timeoutMs = 5000;
    await stack.startDispatcher({ RUNNER_HANDSHAKE_TIMEOUT_MS: String(timeoutMs) });
    const index = stack.dispatcherPorts.length - 1;
    const port = stack.dispatcherPorts[index] as number;
    const opened = Date.now();
    const held = (await Promise.all(Array.from({ length: LIMIT }, () => upgrade(port)))) as Extract<Upgrade, { status: 101 }>[];
    expect(held.map((u) => u.status)).toEqual(Array(LIMIT).fill(101));

    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: index, waitConnected: false });
    await waitFor(async () => (await refusedCount(port)) > 0, 10_000, "the runner's connection to be refused");

    // Closed by the dispatcher, not by us: the runner sends its handshake at once, a connection that does not is dropped.
    await Promise.all(held.map((u) => u.closed));
    expect(Date.now() - opened).toBeLessThan(timeoutMs + 3000);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(timeoutMs - 100);

    // socket.io's reconnection (a failed upgrade leaves it on), within its 5 s ceiling.
    await stack.waitRunnerConnected(fx.server.id, 20_000);
    expect(runner.output).toContain("cannot connect to dispatcher");
    expect(runner.output).toContain("Unexpected server response: 400");
    await waitFor(async () => (await unauthenticated(port)) === 0, 5_000, "nothing left counted");
    expect(await metric(port, "runbridge_dispatcher_runner_handshakes_total", "timed_out")).toBe(LIMIT);
  });
});

import request from "supertest";
import { HandshakeRefusal } from "@runbridge/contracts";
import { TokenKind, generateToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

const LOOKUPS = 3;

/**
 * Runner tokens that name no server: their checksum is public, so anyone can
 * make well-formed ones, and each new one costs the dispatcher a PostgreSQL
 * lookup before it can refuse the handshake. Those lookups are bounded per
 * client address; tokens the dispatcher has accepted before are never
 * affected. A real dispatcher process, connections with the runner's own
 * socket.io client.
 */
describe("unknown runner tokens at the dispatcher", () => {
  const suite = useStack({ dispatchers: 1, dispatcher: { RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE: String(LOOKUPS) } });
  let stack: TestStack;
  const open: ScriptedSocket[] = [];

  beforeAll(() => {
    ({ stack } = suite);
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.disconnect();
  });

  /** "connected", or the dispatcher's refusal. */
  const handshake = (token: string, dispatcher = 0, forwardedFor?: string): Promise<string> => {
    const socket = scriptedRunner(stack.dispatcherPorts[dispatcher] as number, token, forwardedFor ? { headers: { "X-Forwarded-For": forwardedFor } } : {});
    open.push(socket);
    return new Promise((resolve) => {
      socket.on("connect", () => resolve("connected"));
      socket.on("connect_error", ((err: Error) => resolve(err.message)) as never);
    });
  };
  const forged = () => generateToken(TokenKind.RunnerToken);
  const handshakes = async (outcome: string) => {
    const text = (await request(`http://127.0.0.1:${stack.dispatcherPorts[0]}`).get("/metrics").expect(200)).text;
    const line = text.split("\n").find((l) => l.startsWith("runbridge_dispatcher_runner_handshakes_total{") && l.includes(`outcome="${outcome}"`));
    return line ? Number(line.split(" ").pop()) : 0;
  };

  it("looks up so many unknown tokens from one address a minute, then refuses new ones without a lookup; runners it knows keep connecting", async () => {
    const known = await createFixture();
    const unseen = await createFixture();
    expect(await handshake(known.runnerToken)).toBe("connected");
    for (const s of open.splice(0)) s.disconnect();

    for (let i = 0; i < LOOKUPS; i++) expect(await handshake(forged())).toBe(HandshakeRefusal.InvalidToken);
    expect(await handshake(forged())).toBe(HandshakeRefusal.Throttled);
    // A valid token this dispatcher has never let in waits out the minute like any other (the runner retries with backoff) ...
    expect(await handshake(unseen.runnerToken)).toBe(HandshakeRefusal.Throttled);
    // ... while one it has let in before connects as usual.
    expect(await handshake(known.runnerToken)).toBe("connected");

    // No lookup at all for a refused token: with the servers table locked, a lookup would wait for the lock.
    await testPrisma().$transaction(async (tx) => {
      await tx.$executeRawUnsafe("LOCK TABLE servers IN ACCESS EXCLUSIVE MODE");
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([handshake(forged()), new Promise<string>((resolve) => (timer = setTimeout(() => resolve("no answer within 3 s"), 3000)))]);
      clearTimeout(timer);
      expect(outcome).toBe(HandshakeRefusal.Throttled);
    });

    // Without TRUST_PROXY a forwarded address is not believed: anyone could send a fresh one with each try.
    expect(await handshake(forged(), 0, "203.0.113.9")).toBe(HandshakeRefusal.Throttled);

    expect(await handshakes("invalid_token")).toBe(LOOKUPS);
    expect(await handshakes("throttled")).toBe(4);
    expect(await handshakes("accepted")).toBe(2);
    // Four refusals, one line: an operator learns of the guessing (and why new runners there wait) without a flood.
    const told = (stack.dispatchers[0]?.output ?? "").split("\n").filter((l) => l.includes("refusing runner tokens this dispatcher has not let in"));
    expect(told).toHaveLength(1);
    expect(JSON.parse(told[0] as string)).toMatchObject({ level: "warn", clientIp: "127.0.0.1", limit: LOOKUPS });
  });

  it("behind a proxy (TRUST_PROXY), counts per client address the proxy forwarded, not per proxy", async () => {
    await stack.startDispatcher({ TRUST_PROXY: "1" });
    const proxied = stack.dispatcherPorts.length - 1;
    const runner = await createFixture();
    for (let i = 0; i < LOOKUPS; i++) expect(await handshake(forged(), proxied, "203.0.113.7")).toBe(HandshakeRefusal.InvalidToken);
    expect(await handshake(forged(), proxied, "203.0.113.7")).toBe(HandshakeRefusal.Throttled);
    // Another client behind the same proxy is looked up as usual, and a runner from there connects.
    expect(await handshake(forged(), proxied, "203.0.113.8")).toBe(HandshakeRefusal.InvalidToken);
    expect(await handshake(runner.runnerToken, proxied, "203.0.113.8")).toBe("connected");

    // The audit trail names runners by the address the proxy forwarded, too: here a second connection with the same token,
    // once the first is admitted (shown as connected) — before that it would not be there to replace.
    await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(runner.server.id))) === 1, 10_000, "the first connection to be admitted");
    expect(await handshake(runner.runnerToken, proxied, "198.51.100.4")).toBe("connected");
    const event = await waitFor(
      async () => (await testPrisma().auditEvent.findFirst({ where: { serverId: runner.server.id, type: "runner.replaced" } })) ?? null,
      10_000,
      "the runner.replaced audit event",
    );
    expect(event.clientIp).toBe("198.51.100.4");
    expect(event.data).toMatchObject({ new_connection: { client_ip: "198.51.100.4", forwarded_for: "198.51.100.4" }, replaced: [{ client_ip: "203.0.113.8" }] });
  });

  it("counts lookups under way, so concurrent handshakes cannot all slip past, and an IPv6 client per /64", async () => {
    await stack.startDispatcher({ TRUST_PROXY: "1" });
    const proxied = stack.dispatcherPorts.length - 1;
    const burst = await Promise.all(Array.from({ length: LOOKUPS + 5 }, () => handshake(forged(), proxied, "203.0.113.20")));
    expect(burst.filter((o) => o === HandshakeRefusal.InvalidToken)).toHaveLength(LOOKUPS);
    expect(burst.filter((o) => o === HandshakeRefusal.Throttled)).toHaveLength(5);

    for (let i = 0; i < LOOKUPS; i++) expect(await handshake(forged(), proxied, `2001:db8:1:2::${i + 1}`)).toBe(HandshakeRefusal.InvalidToken);
    // Another address of the same /64 (one host's prefix) shares its budget; another /64 has its own.
    expect(await handshake(forged(), proxied, "2001:db8:1:2:ffff::9")).toBe(HandshakeRefusal.Throttled);
    expect(await handshake(forged(), proxied, "2001:db8:1:3::1")).toBe(HandshakeRefusal.InvalidToken);
    // A lookup that finds its server gives its point back: a runner from a busy /64 still connects after.
    const runner = await createFixture();
    expect(await handshake(runner.runnerToken, proxied, "2001:db8:1:4::1")).toBe("connected");
    for (let i = 0; i < LOOKUPS; i++) expect(await handshake(forged(), proxied, `2001:db8:1:4::${i + 2}`)).toBe(HandshakeRefusal.InvalidToken);
  });
});

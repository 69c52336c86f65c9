import { randomUUID } from "node:crypto";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Sealer, createLogger, createRedis, hashToken, validRunnerSignature } from "@runbridge/common";
import { RELAY_PROTOCOL_VERSION, redisKeys } from "@runbridge/contracts";
import type { DispatcherConfig } from "../../apps/dispatcher/src/config";
import { rememberTokenHash } from "../../apps/dispatcher/src/connection-keys";
import { serverRoom, type DispatcherContext } from "../../apps/dispatcher/src/context";
import { RunnerPresence } from "../../apps/dispatcher/src/presence";
import { RunnerRelay } from "../../apps/dispatcher/src/relay";
import { RunnerUnreachable, askLocalRunner, requestRunner } from "../../apps/dispatcher/src/runner-link";
import { createRunnerIo } from "../../apps/dispatcher/src/socket-server";
import { freshPrefix, testRedisUrl } from "../helpers/env";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createServer as createServerRow, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";

/**
 * Two connections of one server's runner can sit in its room for a while
 * (admitted at the same moment on two dispatchers, or while the lookup of
 * older ones failed). A request must then reach one of them — the newest —
 * never both: a start sent to both runs the command twice. The older one is
 * sent away, as a newer connection replaces older ones when admitted.
 *
 * Two socket.io servers built as the dispatcher builds them (Redis adapter on
 * the real Redis, a fresh key), the two connections on the first; requests
 * from the first (local path) and from the second (through Redis).
 */
describe("requests to a server's runner", () => {
  // A real server row: a request through the adapter is signed with the server's token hash from PostgreSQL.
  let serverId: string;
  let runnerToken: string;
  const prefix = freshPrefix("link");
  const keys = redisKeys(prefix);
  const adapterKey = `${prefix}:socket.io`;
  const redis = createRedis(testRedisUrl());
  const sealer = new Sealer(Buffer.alloc(32, 7).toString("base64"));
  const nodes: { http: HttpServer; ctx: DispatcherContext; close: () => void }[] = [];
  let runners: ScriptedSocket[] = [];
  const heard: Record<string, number> = { older: 0, newer: 0 };
  const replaced: Record<string, boolean> = {};

  const node = async (id: string): Promise<{ ctx: DispatcherContext; port: number }> => {
    const config = { REDIS_URL: testRedisUrl(), RUNNER_ACK_TIMEOUT_MS: 3000, DISPATCHER_ID: id } as DispatcherConfig;
    const http = createServer();
    const { io, close } = createRunnerIo(http, config, adapterKey);
    // Stands in for admitRunner having let both connections in.
    io.on("connection", (socket) => {
      socket.data.dispatcherId = id;
      socket.data.serverId = serverId;
      // What messages to the runner are signed with (the hash of the token it connected with).
      rememberTokenHash(socket, hashToken(runnerToken));
      void socket.join(serverRoom(serverId));
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const logger = createLogger("test", "error");
    const relay: RunnerRelay = new RunnerRelay({
      redis,
      redisUrl: testRedisUrl(),
      keys,
      sealer,
      dispatcherId: id,
      ackTimeoutMs: config.RUNNER_ACK_TIMEOUT_MS,
      logger,
      askLocal: (sid, socketId, event, payload) => askLocalRunner(ctx)(sid, socketId, event, payload),
    });
    await relay.start();
    const ctx = { config, io, logger, redis, keys, relay, prisma: testPrisma() } as unknown as DispatcherContext;
    nodes.push({
      http,
      ctx,
      close: () => {
        relay.close();
        close();
      },
    });
    return { ctx, port: (http.address() as AddressInfo).port };
  };

  const runner = async (port: number, name: string): Promise<ScriptedSocket> => {
    const socket = scriptedRunner(port, runnerToken);
    // As the runner does: only what is signed for this connection counts (whichever path it came by).
    const signed = (event: string, message: unknown) => validRunnerSignature({ socketId: socket.id ?? "", tokenHash: hashToken(runnerToken) }, event, message);
    socket.on("operation:query", ((payload: unknown, ack: (reply: unknown) => void) => {
      if (!signed("operation:query", payload)) return;
      heard[name] = (heard[name] ?? 0) + 1;
      ack({ from: name });
    }) as never);
    socket.on("runner:replaced", ((info: unknown) => {
      if (signed("runner:replaced", info)) replaced[name] = true;
    }) as never);
    runners.push(socket);
    await untilConnected(socket);
    return socket;
  };

  let first: DispatcherContext;
  let second: DispatcherContext;
  let firstPort: number;

  beforeAll(async () => {
    const { tenant } = await createTenant();
    const created = await createServerRow(tenant.id);
    serverId = created.server.id;
    runnerToken = created.runnerToken;
    const a = await node("first");
    const b = await node("second");
    first = a.ctx;
    firstPort = a.port;
    second = b.ctx;
  });

  /** Two connections of the server's runner on the first node, both in its room as the second node sees it. */
  beforeEach(async () => {
    heard.older = 0;
    heard.newer = 0;
    for (const k of Object.keys(replaced)) delete replaced[k];
    const older = await runner(firstPort, "older");
    // A later handshake: the newer connection, the one the replacement rule keeps.
    await new Promise((r) => setTimeout(r, 20));
    const newer = await runner(firstPort, "newer");
    runners = [older, newer];
    const deadline = Date.now() + 5000;
    while ((await second.io.in(serverRoom(serverId)).fetchSockets()).length < 2) {
      if (Date.now() > deadline) throw new Error("the two connections never both showed in the room");
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterEach(async () => {
    for (const r of runners) r.disconnect();
    // Gone from the room before the next test connects its own two.
    while ((await first.io.in(serverRoom(serverId)).fetchSockets()).length > 0) await new Promise((r) => setTimeout(r, 20));
  });

  afterAll(async () => {
    for (const n of nodes) {
      n.ctx.io.disconnectSockets(true);
      await new Promise<void>((resolve) => n.ctx.io.close(() => resolve()));
      n.close();
    }
    redis.disconnect();
    await closeTestPrisma();
  });

  const olderSentAway = async () => {
    const [older, newer] = runners;
    const deadline = Date.now() + 5000;
    while (older?.connected) {
      if (Date.now() > deadline) throw new Error("the older connection was not sent away");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(replaced).toEqual({ older: true });
    expect(newer?.connected).toBe(true);
  };

  it("from the dispatcher holding both connections, goes to the newest only, and sends the older away", async () => {
    await expect(requestRunner(first, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
    expect(heard).toEqual({ older: 0, newer: 1 });
    await olderSentAway();
  });

  // Whichever of the two connections the presence key names (the newer, or a stale older one), the request reaches the newest only.
  it.each([
    ["through the one its presence key names", 1],
    ["when presence names an older connection, through the adapter", 0],
  ])("from another dispatcher, %s, goes to the newest only, and sends the older away", async (_, named) => {
    const socket = runners[named] as unknown as { id: string };
    await redis.set(keys.runnerPresence(serverId), `first/${socket.id}`, "EX", 60);
    try {
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
      await new Promise((r) => setTimeout(r, 300));
      expect(heard).toEqual({ older: 0, newer: 1 });
      await olderSentAway();
    } finally {
      await redis.del(keys.runnerPresence(serverId));
    }
  });

  it("from another dispatcher, when presence names a dispatcher that is gone, looks again at once, even with a client subscribed to every relay channel", async () => {
    const newer = runners[1] as unknown as { id: string };
    await redis.set(keys.runnerPresence(serverId), `gone/${newer.id}`, "EX", 60);
    // A monitor subscribed by pattern receives every relayed request, and never answers one.
    const monitor = createRedis(testRedisUrl());
    await monitor.psubscribe(keys.relayRequests("*"));
    try {
      const started = Date.now();
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
      expect(Date.now() - started).toBeLessThan(2000);
      await olderSentAway();
    } finally {
      monitor.disconnect();
      await redis.del(keys.runnerPresence(serverId));
    }
  });

  it("a relayed request replayed with another server, connection or reply channel beside its sealed payload is refused, and never reaches a runner", async () => {
    const newer = runners[1] as unknown as { id: string };
    await redis.set(keys.runnerPresence(serverId), `first/${newer.id}`, "EX", 60);
    const captured: string[] = [];
    const answers: string[] = [];
    const spy = createRedis(testRedisUrl());
    spy.on("pmessage", (_p: string, channel: string, message: string) => (channel === "test:stolen-replies" ? answers : captured).push(message));
    await spy.psubscribe(keys.relayRequests("*"), "test:stolen-replies");
    try {
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
      await waitFor(async () => captured.length > 0, 2000, "the relayed request");
      const original = JSON.parse(captured[0] as string) as Record<string, unknown>;
      const heardBefore = heard.newer;
      // Whoever can publish on Redis: the same envelope, answered to a channel of theirs, or meant for another server.
      for (const change of [{ from: "test:stolen-replies" }, { from: "test:stolen-replies", serverId: randomUUID() }, { from: "test:stolen-replies", event: "runner:replaced" }]) {
        await redis.publish(keys.relayRequests("first"), JSON.stringify({ ...original, ...change }));
      }
      await waitFor(async () => answers.length >= 2, 3000, "answers to the replays");
      await new Promise((r) => setTimeout(r, 300));
      // Two could not be opened (bound to the original server, connection, event and reply channel); the made-up event is dropped unanswered.
      expect(answers.map((a) => Object.keys(JSON.parse(a) as object).sort())).toEqual([
        ["error", "id"],
        ["error", "id"],
      ]);
      expect(heard.newer).toBe(heardBefore);
    } finally {
      spy.disconnect();
      await redis.del(keys.runnerPresence(serverId));
    }
  });

  it("never falls back to the adapter for a connection whose dispatcher speaks our relay but did not hear (its subscriber reconnecting)", async () => {
    // The dispatcher holding the connections, as the asker sees it, is one whose relay channel nobody
    // listens on just now: the adapter would carry the request readable to anyone on Redis.
    const held = [...first.io.of("/").sockets.values()];
    for (const socket of held) socket.data.dispatcherId = "first-not-listening";
    try {
      for (const socket of held) socket.data.relayVersion = RELAY_PROTOCOL_VERSION;
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).rejects.toBeInstanceOf(RunnerUnreachable);
      expect(heard).toEqual({ older: 0, newer: 0 });
      // One held by a dispatcher of an earlier release (no relay of ours): through the adapter, signed.
      for (const socket of held) delete socket.data.relayVersion;
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
      expect(heard.newer).toBe(1);
    } finally {
      for (const socket of held) socket.data.dispatcherId = "first";
    }
  });

  it("the periodic presence refresh renews this dispatcher's own key, and never takes the key from a connection elsewhere", async () => {
    for (const socket of first.io.of("/").sockets.values()) socket.data.serverId = serverId;
    const presence = new RunnerPresence({ ...first, config: { ...first.config, DISPATCHER_ID: "first" } } as DispatcherContext);
    const refresh = () => (presence as unknown as { refresh(): Promise<void> }).refresh();
    const key = keys.runnerPresence(serverId);
    try {
      await redis.set(key, "elsewhere/newer-socket", "EX", 60);
      await refresh();
      expect(await redis.get(key)).toBe("elsewhere/newer-socket");
      // Free (expired, or Redis lost it): taken, by one of this dispatcher's connections.
      await redis.del(key);
      await refresh();
      expect(await redis.get(key)).toMatch(/^first\//);
      const mine = (await redis.get(key)) as string;
      await redis.expire(key, 5);
      await refresh();
      expect(await redis.get(key)).toBe(mine);
      expect(await redis.ttl(key)).toBeGreaterThan(5);
    } finally {
      await redis.del(key);
    }
  });

  it("from another dispatcher, answers at once while a third dispatcher is stalled (subscribed, never answering)", async () => {
    const newer = runners[1] as unknown as { id: string };
    await redis.set(keys.runnerPresence(serverId), `first/${newer.id}`, "EX", 60);
    // A dispatcher whose process is frozen still holds its Redis subscriptions: the adapter counts it
    // among the servers that must answer a socket lookup or an acknowledged broadcast, and waits for it.
    const stalled = createRedis(testRedisUrl());
    await stalled.subscribe(`${adapterKey}-request#/#`);
    try {
      const started = Date.now();
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).resolves.toEqual({ from: "newer" });
      expect(Date.now() - started).toBeLessThan(2000);
      // Through the adapter the same request waits for the stalled one, and fails.
      await redis.del(keys.runnerPresence(serverId));
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [] })).rejects.toThrow(/timeout/);
    } finally {
      stalled.disconnect();
      await redis.del(keys.runnerPresence(serverId));
    }
  });

  it("from another dispatcher, without a presence key, found through the adapter, goes to the newest only (relayed, sealed), and sends the older away", async () => {
    // Every message on the adapter's channels and the relay's, as anyone who can subscribe to Redis sees them.
    const seen: string[] = [];
    const spy = createRedis(testRedisUrl());
    spy.on("pmessageBuffer", (_p: Buffer, _c: Buffer, message: Buffer) => seen.push(message.toString("latin1")));
    await spy.psubscribe(`${adapterKey}*`, keys.relayRequests("*"));
    const marker = randomUUID();
    try {
      await expect(requestRunner(second, serverId, "operation:query", { operationIds: [marker] })).resolves.toEqual({ from: "newer" });
      // Give a stray copy time to arrive before counting.
      await new Promise((r) => setTimeout(r, 300));
      expect(heard).toEqual({ older: 0, newer: 1 });
      await olderSentAway();
      // The lookup went through the adapter, the request itself through the relay, sealed: its payload is in neither in clear.
      expect(seen.length).toBeGreaterThan(1);
      expect(seen.filter((m) => m.includes(marker))).toEqual([]);
    } finally {
      spy.disconnect();
    }
  });
});

import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Server } from "socket.io";
import { HandshakeRefusal, RELAY_PROTOCOL_VERSION, RUNNER_VERSION_PATTERN, ResultsNamespace, RunnerMessageMaxBytes, SignedAnswer, SocketPath, runnerEventSchemas, type RunnerHandshakeAuth } from "@runbridge/contracts";
import { TokenKind, TokenLookupGuard, clientAddressResolver, createRedis, createSubscriber, hashToken, isWellFormedToken, signForRunner, withTimeout } from "@runbridge/common";
import type { DispatcherConfig } from "./config";
import { serverRoom, type DispatcherContext, type RunnerIo, type RunnerSocket } from "./context";
import type { RunnerPresence } from "./presence";
import { recordRunnerResult } from "./results";
import { countRunnerHandshake } from "./metrics";
import { appendOutput } from "./output-log";
import { localSignatureTarget, rememberTokenHash, tokenHashOf } from "./connection-keys";
import { ConnectionHealth } from "./runner-health";
import { ADAPTER_REQUESTS_TIMEOUT_MS, REDIS_WAIT_MS, newest, replaceConnections, type ReplaceableSocket } from "./runner-link";
import type { TokenRevocations } from "./token-revocations";
import type { UnauthenticatedConnections } from "./unauthenticated-connections";

/**
 * Socket.io server for runners; the Redis adapter lets any dispatcher reach a runner connected to another.
 * `unauthenticated` bounds the connections each address holds before their token is accepted.
 */
export function createRunnerIo(
  http: HttpServer,
  config: DispatcherConfig,
  adapterPrefix: string,
  unauthenticated?: UnauthenticatedConnections,
): { io: RunnerIo; close: () => void } {
  const pub = createRedis(config.REDIS_URL);
  const sub = createSubscriber(config.REDIS_URL);
  const io: RunnerIo = new Server(http, {
    path: SocketPath,
    serveClient: false,
    transports: ["websocket"],
    pingInterval: 10_000,
    pingTimeout: 10_000,
    // Results need it, but anyone may send that much before authenticating: connections not let in yet are
    // bounded in number per address (allowRequest) and in time (a runner sends its handshake at once).
    maxHttpBufferSize: RunnerMessageMaxBytes,
    connectTimeout: config.RUNNER_HANDSHAKE_TIMEOUT_MS,
    ...(unauthenticated ? { allowRequest: unauthenticated.allowRequest } : {}),
    adapter: createAdapter(pub, sub, { key: adapterPrefix, requestsTimeout: ADAPTER_REQUESTS_TIMEOUT_MS }),
  });
  // allowRequest sees only requests opening a connection: one naming an existing connection (an upgrade with
  // its sid) would skip it. Runners never send one; engine.io runs its middlewares on upgrades too, first.
  if (unauthenticated) io.engine.use(unauthenticated.refuseSessionRequests);
  return {
    io,
    close: () => {
      pub.disconnect();
      sub.disconnect();
    },
  };
}

export function attachRunnerHandlers(
  ctx: DispatcherContext,
  presence: RunnerPresence,
  revocations: TokenRevocations,
  draining: AbortSignal,
  unauthenticated?: UnauthenticatedConnections,
): void {
  const { io, logger } = ctx;

  // PostgreSQL lookups of runner tokens that name no server are bounded per client address: past
  // RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE, tokens this process has not let in are refused without
  // a lookup until the minute ends (the runner retries with backoff). More runners are remembered
  // than one dispatcher holds (the bench connects 10,000).
  const guard = new TokenLookupGuard("unknown-runner-token", ctx.config.RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE, { max: 50_000 }, (holder) =>
    logger.warn(
      "refusing runner tokens this dispatcher has not let in from one address without a lookup until its minute ends: it sent more tokens that name no server than RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE (logged at most once a minute per address)",
      { clientIp: holder, limit: ctx.config.RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE },
    ),
  );
  // Behind the shipped proxy every runner's socket comes from the proxy: the guard counts per client it forwarded for.
  const clientAddress = clientAddressResolver(ctx.config.TRUST_PROXY);
  /** The token check of both namespaces; `countAccepted`: false where a later check can still refuse (the results ticket). */
  const authenticate = async (socket: RunnerSocket, next: (err?: Error) => void, countAccepted = true) => {
    const auth = (socket.handshake.auth ?? {}) as Partial<RunnerHandshakeAuth>;
    const token = typeof auth.token === "string" ? auth.token : "";
    const refuse = (outcome: "invalid_token" | "throttled" | "unavailable" | "draining", reason: string) => {
      unauthenticated?.refused(socket.request);
      countRunnerHandshake(outcome);
      next(new Error(reason));
    };
    // A runner let in now would be sent away again in a moment: it retries and lands on another dispatcher.
    if (draining.aborted) return refuse("draining", HandshakeRefusal.ShuttingDown);
    if (!isWellFormedToken(token, TokenKind.RunnerToken)) return refuse("invalid_token", HandshakeRefusal.InvalidToken);
    unauthenticated?.checking(socket.request);
    // Everything after this can fail, and nothing may escape: a rejected middleware would leave the handshake hanging.
    try {
      const tokenHash = hashToken(token);
      const address = clientAddress(socket.request);
      const admission = await guard.check(address, tokenHash);
      if (!admission.allowed) return refuse("throttled", HandshakeRefusal.Throttled);
      const server = await ctx.prisma.server.findUnique({ where: { runnerTokenHash: tokenHash } }).catch(async (err: unknown) => {
        await guard.failed(address, admission.charged);
        throw err;
      });
      // Also refused when the token was rotated away while it was being looked up (the lookup saw the old row).
      if (!server || revocations.isRevoked(tokenHash)) {
        guard.forget(tokenHash);
        return refuse("invalid_token", HandshakeRefusal.InvalidToken);
      }
      await guard.found(address, tokenHash, admission.charged);
      // A runner's connection from now on: no longer held against its address's unauthenticated ones.
      unauthenticated?.authenticated(socket.request);
      if (countAccepted) countRunnerHandshake("accepted");
      // The token's hash stays in this process and the token leaves the handshake: both would
      // otherwise travel on Redis in the adapter's answers to other dispatchers' socket lookups.
      rememberTokenHash(socket, tokenHash);
      delete (socket.handshake.auth as Partial<RunnerHandshakeAuth>).token;
      socket.data = {
        serverId: server.id,
        tenantId: server.tenantId,
        serverName: server.name,
        dispatcherId: ctx.config.DISPATCHER_ID,
        relayVersion: RELAY_PROTOCOL_VERSION,
        clientIp: address,
        runnerVersion: typeof auth.version === "string" && RUNNER_VERSION_PATTERN.test(auth.version) ? auth.version : undefined,
      };
      next();
    } catch (err) {
      logger.warn("runner auth failed", { error: String(err) });
      refuse("unavailable", HandshakeRefusal.Unavailable);
    }
  };
  io.use((socket, next) => void authenticate(socket, next));

  // A replaced runner's last connection: the token, and the ticket it was given when it was replaced.
  const results = io.of(ResultsNamespace);
  results.use((socket, next) => void authenticate(socket, next, false));
  results.use((socket, next) => {
    const verdict = (outcome: "accepted" | "invalid_token" | "unavailable", refusal?: string) => {
      countRunnerHandshake(outcome);
      next(refusal ? new Error(refusal) : undefined);
    };
    const auth = (socket.handshake.auth ?? {}) as Partial<RunnerHandshakeAuth>;
    const ticket = auth.resultsTicket;
    delete auth.resultsTicket;
    if (typeof ticket !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(ticket)) return verdict("invalid_token", HandshakeRefusal.NoResultsTicket);
    ctx.redis.exists(ctx.keys.resultsTicket(socket.data.serverId, ticket)).then(
      (found) => {
        if (!found) return verdict("invalid_token", HandshakeRefusal.NoResultsTicket);
        // Checked again: a revocation heard while Redis answered swept the connections here, which this one
        // is not among until it is let in (and then only the recheck, RUNNER_TOKEN_RECHECK_SECONDS on, would close it).
        const tokenHash = tokenHashOf(socket) ?? "";
        if (!revocations.isRevoked(tokenHash)) return verdict("accepted");
        guard.forget(tokenHash);
        verdict("invalid_token", HandshakeRefusal.InvalidToken);
      },
      () => verdict("unavailable", HandshakeRefusal.Unavailable),
    );
  });
  results.on("connection", (socket) => acceptResultsOnly(ctx, socket));

  io.on("connection", (socket) => {
    const { serverId } = socket.data;
    const health = new ConnectionHealth(ctx, socket, () => numberConnection(ctx, socket, true));
    // Listeners first, before any await: a runner re-sends its undelivered results the moment it
    // connects, and an event that arrives before its listener is silently dropped.
    attachRunnerEvents(ctx, socket, presence, health);
    void admitRunner(ctx, socket, presence, serverId, health);
  });
}

/** How long a stopping dispatcher waits for PostgreSQL to record when its runners were last seen. */
const LAST_SEEN_WAIT_MS = 3_000;

/**
 * Stamps last_seen_at of every runner held here, as this dispatcher stops and before it lets them go. Each
 * closing stamps its own (attachRunnerEvents), but closed all at once those stamps queue for the PostgreSQL
 * pool, which the stop closes moments later with them still queued: most runners kept the last_seen_at of
 * their admission and, while they reconnected elsewhere, looked long gone to the sweeper's
 * RUNNER_LOST_GRACE_SECONDS and to the gateway's reconnect wait. One statement for all, bounded: PostgreSQL
 * not answering must not hold up the stop (the runners then look away since their admission, as before).
 */
export async function recordRunnersLastSeen(ctx: DispatcherContext): Promise<void> {
  const serverIds = [...new Set([...ctx.io.of("/").sockets.values()].map((s) => s.data.serverId))];
  if (serverIds.length === 0) return;
  await withTimeout(ctx.operations.touchServers(serverIds), LAST_SEEN_WAIT_MS).catch((err: unknown) =>
    ctx.logger.warn("could not record when this dispatcher's runners were last seen", { runners: serverIds.length, error: String(err) }),
  );
}

/** Shows the runner as connected, then makes the socket the server's one live connection. */
async function admitRunner(ctx: DispatcherContext, socket: RunnerSocket, presence: RunnerPresence, serverId: string, health: ConnectionHealth): Promise<void> {
  const { logger } = ctx;
  // Set before the connection can be seen from other dispatchers (it is in what their lookups return).
  await numberConnection(ctx, socket);
  if (socket.disconnected) return;
  // In the room before other connections are looked for: of two connections of one runner admitted
  // at the same moment, the lookup made second always finds the first.
  await socket.join(serverRoom(serverId));
  // Seen before shown as connected: whoever reads presence (the gateway's reconnect grace, the
  // servers list) finds last_seen_at already set, and the health the runner said as it connected
  // (ConnectionHealth says why it is written here, after the admission number, and not on its own).
  const version = socket.data.runnerVersion ?? null;
  await health.admit((report) => ctx.operations.runnerAdmitted(serverId, version, report)).catch((err: unknown) => logger.warn("could not record last_seen_at", { serverId, error: String(err) }));
  // Bounded: with Redis down the write waits in the connection's queue, and the periodic refresh writes it anyway.
  await withTimeout(presence.online(serverId, socket.id, socket.data.seq), REDIS_WAIT_MS).catch((err: unknown) => logger.warn("presence write failed", { serverId, error: String(err) }));
  // The socket may have dropped while presence was being written.
  if (socket.disconnected) {
    await presence.offline(serverId, socket.id).catch(() => undefined);
    return;
  }
  logger.info("runner connected", { serverId, socketId: socket.id, version });
  // Only now: the lookup asks every dispatcher and waits for all of them, so a stalled one held each
  // admission for the adapter's whole timeout. Meanwhile requests go to this connection (it is the
  // one presence names, and the newest here).
  await replaceOtherConnections(ctx, socket, serverId);
}

/** When the lookup of other connections fails (a dispatcher stalled, Redis unreachable), it is tried again after these. */
const LOOKUP_RETRY_MS = [5_000, 15_000, 45_000];

/**
 * The next admission number. A counter that starts over (Redis restarted without its data, or
 * flushed) starts from Redis's clock in microseconds, not from 1: numbers handed out before the
 * reset are still held by connections, and a reconnected runner numbered below its dead connection
 * would be sent away for it. (Redis's clock, one for every dispatcher; below 2^53 for centuries.)
 */
const NEXT_ADMISSION = `
local n = redis.call("INCR", KEYS[1])
if n == 1 then
  local t = redis.call("TIME")
  n = redis.call("INCRBY", KEYS[1], tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
return n`;

/**
 * Gives the connection its admission number (socket.data.seq), which orders a runner's connections. Without
 * one (Redis did not answer in time) it cannot be compared with numbered connections (runner-link.ts,
 * `surelyOlder`): the lookup of other connections asks for it again, and leaves such pairs alone until then.
 */
async function numberConnection(ctx: DispatcherContext, socket: RunnerSocket, late = false): Promise<void> {
  if (socket.data.seq !== undefined) return;
  socket.data.seq = await withTimeout(ctx.redis.eval(NEXT_ADMISSION, 1, ctx.keys.runnerAdmissions).then(Number), REDIS_WAIT_MS).catch((err: unknown) => {
    ctx.logger.warn("could not number a runner connection; it counts as older than numbered ones until it is", { serverId: socket.data.serverId, error: String(err) });
    return undefined;
  });
  if (late && socket.data.seq !== undefined) socket.data.seqLate = true;
}

/**
 * One live connection per server: of this one and any other found on any dispatcher, the newest stays
 * and the others are sent away. Normally the others are older (the runner restarted or reconnected
 * before its old connection timed out); one newer than this is a connection admitted at the same
 * moment whose own lookup ran before this one joined the room. The one sent away does not touch
 * presence: writes of an earlier admission never replace a later one's (presence.ts).
 */
async function replaceOtherConnections(ctx: DispatcherContext, socket: RunnerSocket, serverId: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    let others: ReplaceableSocket[] | undefined;
    try {
      await numberConnection(ctx, socket, attempt > 0);
      others = (await ctx.io.in(serverRoom(serverId)).fetchSockets()).filter((s) => s.id !== socket.id);
    } catch (err) {
      ctx.logger.warn("could not look for older runner connections", { serverId, error: String(err), retryInMs: LOOKUP_RETRY_MS[attempt] ?? null });
    }
    if (others !== undefined) {
      if (others.length === 0 || socket.disconnected) return;
      // Unnumbered, this connection cannot be told apart from numbered ones (surelyOlder): asked again later.
      if (socket.data.seq !== undefined || LOOKUP_RETRY_MS[attempt] === undefined) {
        const all = [socket, ...others];
        const keep = newest(all) ?? socket;
        replaceConnections(ctx, keep, all.filter((s) => s !== keep));
        return;
      }
      ctx.logger.warn("found other connections of this runner while this one has no admission number; left alone until it has", { serverId, retryInMs: LOOKUP_RETRY_MS[attempt] });
    }
    // Until then, requests keep the newest connection they find and send away the ones surely older.
    const delay = LOOKUP_RETRY_MS[attempt];
    if (delay === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, delay).unref());
    if (socket.disconnected) return;
  }
}

/** How long a replaced runner's results-only connection may stay: it delivers what it has and leaves. */
const RESULTS_ONLY_MAX_MS = 120_000;

/**
 * A runner another one replaced delivers the results of the operations it was running then, before it
 * exits: without this they stayed in its ledger, and the operations failed as result lost after their
 * timeout. On a namespace of its own, the connection replaces nothing, joins no room (nothing is sent to
 * it) and shows no runner as connected; it is audited, as it is made with the server's token while
 * another runner holds it.
 */
function acceptResultsOnly(ctx: DispatcherContext, socket: RunnerSocket): void {
  const { serverId, tenantId, clientIp } = socket.data;
  let stored = 0;
  attachResultListener(ctx, socket, () => stored++);
  const limit = setTimeout(() => socket.disconnect(true), RESULTS_ONLY_MAX_MS);
  socket.on("disconnect", () => {
    clearTimeout(limit);
    ctx.logger.info("a replaced runner delivered its last results", { serverId, socketId: socket.id, results: stored });
    void ctx.prisma.auditEvent
      .create({ data: { tenantId, type: "runner.results_delivered", serverId, clientIp: clientIp ?? null, data: { results: stored, client_ip: clientIp ?? null } } })
      .catch((err: unknown) => ctx.logger.warn("could not record runner.results_delivered", { serverId, error: String(err) }));
  });
}

/** Whether a runner's event is well-formed; a malformed one is logged and dropped, never acted on. */
function isWellFormed(ctx: DispatcherContext, socket: RunnerSocket, event: keyof typeof runnerEventSchemas, payload: unknown): boolean {
  const { error } = runnerEventSchemas[event].validate(payload);
  if (error) ctx.logger.warn("dropped a malformed event from a runner", { serverId: socket.data.serverId, socketId: socket.id, event, error: error.message });
  return !error;
}

/** Stores a runner's results; acknowledged only once stored, so the runner keeps and re-sends one that was not. */
function attachResultListener(ctx: DispatcherContext, socket: RunnerSocket, onStored?: () => void): void {
  const { serverId } = socket.data;
  socket.on("operation:result", async (result, ack) => {
    // An event sent without an acknowledgement callback has nobody to answer.
    const answer = typeof ack === "function" ? ack : () => undefined;
    if (!isWellFormed(ctx, socket, "operation:result", result)) return answer({ stored: false });
    try {
      await recordRunnerResult(ctx, serverId, result);
      onStored?.();
      answer(signForRunner(localSignatureTarget(socket), SignedAnswer.Result, { stored: true, operationId: result.operationId }));
      // Its place on a runner at its cap frees as the runner reads this answer, which goes out before any start sent next.
      ctx.deliveryGate.notePlace(serverId);
    } catch (err) {
      // Not acked as stored: the runner keeps the result and sends it again.
      ctx.logger.error("could not store result", { operationId: result.operationId, error: String(err) });
      answer({ stored: false });
    }
  });
}

function attachRunnerEvents(ctx: DispatcherContext, socket: RunnerSocket, presence: RunnerPresence, health: ConnectionHealth): void {
  const { logger } = ctx;
  const { serverId } = socket.data;
  const wellFormed = (event: keyof typeof runnerEventSchemas, payload: unknown) => isWellFormed(ctx, socket, event, payload);

  // PostgreSQL's time, which deadlines are set by: the runner corrects its own clock with it. Not
  // answered while this process has no recent reading of it (its own clock may be the one that is off).
  socket.on("runner:clock", (ack) => {
    const now = ctx.clock.fresh();
    if (typeof ack === "function" && now !== null) ack(signForRunner(localSignatureTarget(socket), SignedAnswer.Clock, { now: new Date(now).toISOString() }));
  });

  socket.on("operation:started", (ev) => {
    if (!wellFormed("operation:started", ev)) return;
    const { operationId, startedAt } = ev;
    ctx.operations.markStarted(operationId, serverId, new Date(startedAt)).catch((err: unknown) => logger.warn("could not record start", { operationId, error: String(err) }));
  });

  // A runner may only write the live log of its own server's operations.
  const ownOperations = new Map<string, Promise<boolean>>();
  socket.on("operation:output", (chunk) => {
    if (!wellFormed("operation:output", chunk)) return;
    let owned = ownOperations.get(chunk.operationId);
    if (!owned) {
      if (ownOperations.size > 1000) ownOperations.clear();
      const operationId = chunk.operationId;
      owned = ctx.operations.belongsToServer(operationId, serverId).catch(() => {
        // Not an answer (PostgreSQL unreachable a moment): this chunk is dropped, the next asks again.
        ownOperations.delete(operationId);
        return false;
      });
      ownOperations.set(operationId, owned);
    }
    void owned.then((ok) => (ok ? appendOutput(ctx, serverId, chunk) : undefined));
  });

  attachResultListener(ctx, socket);

  // Recorded in order, and only while this connection is its server's newest (ConnectionHealth).
  socket.on("runner:health", (report) => {
    if (wellFormed("runner:health", report)) health.reported(report.problem);
  });

  socket.on("disconnect", (reason) => {
    health.close();
    logger.info("runner disconnected", { serverId, socketId: socket.id, reason });
    void presence.offline(serverId, socket.id).catch(() => undefined);
    void ctx.operations.touchServer(serverId).catch(() => undefined);
  });
}

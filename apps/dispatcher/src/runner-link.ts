import { randomBytes } from "node:crypto";
import { RELAY_PROTOCOL_VERSION, type DispatcherToRunnerEvents } from "@runbridge/contracts";
import { signForRunner, withTimeout, type SignatureTarget } from "@runbridge/common";
import { localSignatureTarget, signatureTargetOf } from "./connection-keys";
import { serverRoom, type DispatcherContext, type RunnerSocket } from "./context";
import { NoLocalRunner, RunnerSilent, type LocalRunnerAsk } from "./relay";
import { recordReplacement, type RunnerConnection } from "./runner-audit";

type Events = Pick<DispatcherToRunnerEvents, "operation:start" | "operation:cancel" | "operation:query">;
/** What a caller sends; signed for the connection it goes out on, by the dispatcher holding it (or the adapter's sender). */
type Payload<E extends keyof Events> = Omit<Parameters<Events[E]>[0], "sig">;
type Reply<E extends keyof Events> = Parameters<Parameters<Events[E]>[1]>[0];

export class RunnerNotConnected extends Error {}

/**
 * The runner is connected, to a dispatcher that speaks this one's relay, which did not hear the
 * request just now (its relay subscriber reconnecting after a Redis restart); or whether it is
 * connected is not known (Redis did not answer the read of its presence, and the adapter did not
 * find it — the adapter misses the connections of a dispatcher whose subscriber is reconnecting):
 * ask again later. Not a RunnerNotConnected — the sweeper would end the runner's overdue
 * operations as runner lost.
 */
export class RunnerUnreachable extends Error {}

/**
 * The newest of several connections of one server's runner. Normally there is
 * one: a newer connection replaces older ones as it is admitted. Two can still
 * sit in the room for a while — admitted at the same moment on two
 * dispatchers, or admitted while the lookup of older ones failed — and a
 * request sent to the room would then start the operation on both. Requests go
 * to the newest alone, the one the replacement rule keeps.
 */
export function newest<S extends ReplaceableSocket>(sockets: readonly S[]): S | undefined {
  let best: S | undefined;
  for (const s of sockets) if (!best || isNewer(s, best)) best = s;
  return best;
}

/**
 * A total order, so that every dispatcher keeps the same connection of any set it finds, whatever order it
 * lists them in and whichever of them it sees (a dispatcher holding two of three keeps the one a
 * dispatcher seeing all three keeps, if it is among its two): otherwise two could each send the other's
 * away, and a runner sent away stops for good. By admission number, which Redis hands out in order, not
 * by handshake time: dispatchers' clocks may disagree, and a slow one would have a reconnected runner
 * sent away in favour of its dead connection. A connection without a number (held by an earlier version,
 * or admitted while Redis did not answer) ranks below every numbered one, for choosing where a request
 * goes; it is never sent away on that ground alone, nor sends a numbered one away (surelyOlder). Among
 * those without, handshake time decides. Then the id.
 */
function isNewer(a: ReplaceableSocket, b: ReplaceableSocket): boolean {
  const seqA = a.data.seq ?? -1;
  const seqB = b.data.seq ?? -1;
  if (seqA !== seqB) return seqA > seqB;
  if (a.handshake.issued !== b.handshake.issued) return a.handshake.issued > b.handshake.issued;
  return a.id > b.id;
}

/** What a runner connection needs to be compared and, when an older duplicate, sent away and audited (local or remote socket). */
export interface ReplaceableSocket extends RunnerConnection {
  id: string;
  emit(event: "runner:replaced", info: { resultsTicket?: string; sig: string }): unknown;
  disconnect(close?: boolean): unknown;
}

/**
 * How long a replaced runner's results ticket stays valid: its stop lets running commands end
 * (RUNBRIDGE_STOP_DRAIN_SECONDS, 25 s by default, set higher by some) before it delivers.
 */
const RESULTS_TICKET_TTL_SECONDS = 1800;
/**
 * How long a runner connection's admission or replacement waits for a Redis write before going on without
 * it: the shared connection queues commands while Redis is down, and would hold it until Redis is back.
 */
export const REDIS_WAIT_MS = 2000;

/** How long socket.io's Redis adapter waits for every dispatcher's answer to a lookup (createRunnerIo). */
export const ADAPTER_REQUESTS_TIMEOUT_MS = 5000;
/**
 * How long a lookup through the adapter may take in all. Its time-out covers only the dispatchers' answers:
 * before them it counts the dispatchers (PUBSUB NUMSUB) on its connection, which queues commands while
 * Redis is down, and would hold the lookup until Redis is back.
 */
const ADAPTER_LOOKUP_MS = REDIS_WAIT_MS + ADAPTER_REQUESTS_TIMEOUT_MS;

/** How long two dispatchers sending the same connection away are told apart (it is gone long before). */
const REPLACED_MARK_TTL_SECONDS = 300;

/**
 * Tells older connections of a server's runner that `newer` replaced them,
 * then closes them. Told first (same Redis publisher, so in order), so the old
 * runner does not reconnect and fight. Each is given a ticket for one last
 * connection that may only deliver results (ResultsNamespace): the token alone
 * must not be enough to finish a server's operations without replacing its
 * runner. Each replacement is audited, once: two dispatchers that find the
 * same older connection at the same moment (each admitting one of two
 * connections made at once) leave it to whichever marks it first.
 */
export function replaceConnections(ctx: DispatcherContext, newer: RunnerConnection, candidates: readonly ReplaceableSocket[]): void {
  const older = surelyOlder(newer, candidates);
  const { serverId } = newer.data;
  if (older.length < candidates.length) {
    ctx.logger.warn("left a runner connection alone: one of the two has no admission number, so which is newer is not known", { serverId, connections: candidates.length + 1 });
  }
  if (older.length === 0) return;
  void (async () => {
    const claimed = await Promise.all(older.map((old) => claimReplacement(ctx, old.id)));
    const mine = older.filter((_, i) => claimed[i]);
    for (const old of mine) sendAway(ctx, serverId, old);
    if (mine.length > 0) recordReplacement(ctx, newer, mine);
  })();
}

/**
 * Of the connections `newest` ranked below `kept`, those that can be sent away on that ranking: both
 * numbered, or both without a number (an earlier version's pair, ordered by clock as that version
 * did). A numbered connection and one without a number are not compared for that: the one without
 * may be the live one, admitted while Redis did not answer, and a runner sent away stops for good.
 * They stay side by side until the dead one drops or the other gets its number (the admission asks
 * again, then looks again). A number got that late (seqLate) is higher than those of connections admitted
 * meanwhile, which may be the newer: such a connection sends none away (the others still may send it away,
 * when admitted after it was numbered), and a pair it ranks first stays side by side until one drops.
 */
export function surelyOlder<S extends RunnerConnection>(kept: RunnerConnection, others: readonly S[]): S[] {
  if (kept.data.seqLate) return [];
  return others.filter((o) => (o.data.seq === undefined) === (kept.data.seq === undefined));
}

/** Whether this dispatcher is the first to send the connection away; when Redis cannot say, it is (twice is better than never). */
async function claimReplacement(ctx: DispatcherContext, socketId: string): Promise<boolean> {
  try {
    return (await withTimeout(ctx.redis.set(ctx.keys.connectionReplaced(socketId), ctx.config.DISPATCHER_ID, "EX", REPLACED_MARK_TTL_SECONDS, "NX"), REDIS_WAIT_MS)) === "OK";
  } catch {
    return true;
  }
}

function sendAway(ctx: DispatcherContext, serverId: string, old: ReplaceableSocket): void {
  const resultsTicket = randomBytes(24).toString("base64url");
  const send = async () => {
    const to = await replacedNoticeTarget(ctx, serverId, old);
    if (to) old.emit("runner:replaced", signForRunner(to, "runner:replaced", { resultsTicket }));
    old.disconnect(true);
  };
  // The ticket exists before the runner can use it. Redis down or slow (the shared connection queues commands
  // until it is back): sent away all the same after a moment, its results then wait in its ledger.
  withTimeout(ctx.redis.set(ctx.keys.resultsTicket(serverId, resultsTicket), "1", "EX", RESULTS_TICKET_TTL_SECONDS), REDIS_WAIT_MS).then(send, (err: unknown) => {
    ctx.logger.warn("could not store a replaced runner's results ticket", { serverId, error: String(err) });
    void send();
  });
}

/** Tries to read a connection's signature key before sending it away without the notice. */
const NOTICE_KEY_ATTEMPTS_MS = [0, 250, 1000, 3000];

/**
 * What the notice to a connection being sent away is signed for. One held elsewhere needs the
 * server's key from PostgreSQL, and a connection closed without its notice reconnects — numbered
 * after the one that replaced it, which it would then send away in turn: PostgreSQL is asked again
 * for a few seconds before giving up (the server gone: null at once).
 */
async function replacedNoticeTarget(ctx: DispatcherContext, serverId: string, old: ReplaceableSocket): Promise<SignatureTarget | null> {
  for (const wait of NOTICE_KEY_ATTEMPTS_MS) {
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    try {
      return await signatureTargetOf(ctx, serverId, old);
    } catch (err) {
      ctx.logger.warn("could not read a runner's key to tell a replaced connection", { serverId, socketId: old.id, error: String(err) });
    }
  }
  return null;
}

/** Keeps the newest of several connections and sends the others away: duplicates found at send time are cleaned up too. */
function keepNewest<S extends ReplaceableSocket>(ctx: DispatcherContext, serverId: string, sockets: readonly S[]): S | undefined {
  const chosen = newest(sockets);
  if (chosen && sockets.length > 1) {
    ctx.logger.warn("several connections of one server's runner; the newest stays, the others are replaced", { serverId, connections: sockets.length });
    replaceConnections(ctx, chosen, sockets.filter((s) => s !== chosen));
  }
  return chosen;
}

/** The server's runner connections on this very dispatcher (no Redis round trip to know). */
function localSockets(ctx: DispatcherContext, serverId: string): RunnerSocket[] {
  const nsp = ctx.io.of("/");
  return [...(nsp.adapter.rooms.get(serverRoom(serverId)) ?? [])].flatMap((id) => nsp.sockets.get(id) ?? []);
}

/** The server's runner socket when it is connected to this very dispatcher. */
export function localRunnerSocket(ctx: DispatcherContext, serverId: string): RunnerSocket | undefined {
  return newest(localSockets(ctx, serverId));
}

export function hasLocalRunner(ctx: DispatcherContext, serverId: string): boolean {
  return localRunnerSocket(ctx, serverId) !== undefined;
}

/**
 * Where a server's runner socket is: on this dispatcher (sent to directly) or
 * on another one (the newest, and the dispatcher holding it, found through
 * the Redis adapter). Null when none has it.
 */
async function locate(
  ctx: DispatcherContext,
  serverId: string,
): Promise<{ local: RunnerSocket } | { remote: { socketId: string; dispatcherId: string; relayVersion?: number } } | null> {
  const local = keepNewest(ctx, serverId, localSockets(ctx, serverId));
  if (local) return { local };
  const remote = keepNewest(ctx, serverId, await withTimeout(ctx.io.in(serverRoom(serverId)).fetchSockets(), ADAPTER_LOOKUP_MS));
  return remote ? { remote: { socketId: remote.id, dispatcherId: remote.data.dispatcherId, relayVersion: remote.data.relayVersion } } : null;
}

/**
 * The dispatcher and connection that the runner's presence key names, or null when it has none; "unknown" when
 * Redis did not answer within REDIS_WAIT_MS. The shared connection queues commands while Redis is down: unbounded,
 * the read held requests to runners on other dispatchers, and the sweeper's overdue pass, until Redis was back.
 */
async function presenceOwner(ctx: DispatcherContext, serverId: string): Promise<{ dispatcherId: string; socketId: string } | null | "unknown"> {
  let marker: string | null;
  try {
    marker = await withTimeout(ctx.redis.get(ctx.keys.runnerPresence(serverId)), REDIS_WAIT_MS);
  } catch (err) {
    ctx.logger.warn("could not read a runner's presence; looking for it through the adapter", { serverId, error: String(err) });
    return "unknown";
  }
  const slash = marker?.lastIndexOf("/") ?? -1;
  return marker && slash > 0 ? { dispatcherId: marker.slice(0, slash), socketId: marker.slice(slash + 1) } : null;
}

/**
 * The owning dispatcher's side of a relayed request (relay.ts): the newest local connection, if it
 * is the one presence named, asked with the acknowledgement timeout; NoLocalRunner otherwise.
 */
export function askLocalRunner(ctx: DispatcherContext): LocalRunnerAsk {
  return (serverId, socketId, event, payload) => {
    const local = keepNewest(ctx, serverId, localSockets(ctx, serverId));
    // Only the connection presence named: another one here, or one elsewhere, is for the adapter's
    // lookup across every dispatcher to sort out (it keeps the newest and sends the others away).
    if (local?.id !== socketId) return Promise.reject(new NoLocalRunner());
    if (event === "probe") return Promise.resolve(true);
    const signed = signForRunner(localSignatureTarget(local), event, (payload ?? {}) as object);
    return askConnected(local, ctx.config.RUNNER_ACK_TIMEOUT_MS, serverId, event, signed);
  };
}

/** What socket.io rejects an acknowledged emit with when no acknowledgement came in time. */
const ACK_TIMED_OUT = "operation has timed out";

/** An acknowledged emit to a connection of this dispatcher's; no acknowledgement in time is RunnerSilent (it is connected). */
async function askConnected(socket: RunnerSocket, timeoutMs: number, serverId: string, event: string, signed: unknown): Promise<unknown> {
  try {
    return await (socket.timeout(timeoutMs) as unknown as { emitWithAck(ev: string, p: unknown): Promise<unknown> }).emitWithAck(event, signed);
  } catch (err) {
    throw err instanceof Error && err.message === ACK_TIMED_OUT ? new RunnerSilent(`runner of server ${serverId} did not acknowledge ${event} within ${timeoutMs} ms`) : err;
  }
}

/**
 * Sends an acknowledged event to a server's runner, wherever it is connected.
 * An absent runner is an explicit RunnerNotConnected, never a silent empty
 * reply. `beforeSend` runs once, once a runner is known to exist.
 *
 * A runner on this dispatcher is sent to directly. One on another, named by
 * its presence key, through that dispatcher alone (the relay). Otherwise —
 * no presence key, or that dispatcher does not have it (an earlier version's,
 * or the runner just moved), or Redis did not answer its read in time — the
 * socket.io adapter finds it wherever it is. Not found there while its presence
 * was not read, it is RunnerUnreachable: not known to be away.
 */
export async function requestRunner<E extends keyof Events>(
  ctx: DispatcherContext,
  serverId: string,
  event: E,
  payload: Payload<E>,
  beforeSend?: () => Promise<void>,
): Promise<Reply<E>> {
  let claimed = false;
  const claim = async () => {
    if (claimed) return;
    claimed = true;
    await beforeSend?.();
  };
  let presenceUnread = false;
  if (!hasLocalRunner(ctx, serverId)) {
    const owner = await presenceOwner(ctx, serverId);
    presenceUnread = owner === "unknown";
    // With a `beforeSend` (a delivery's claim), asked first whether it holds the runner: the claim only once a runner is known to exist.
    const holds = async (named: { dispatcherId: string; socketId: string }) => !beforeSend || (await ctx.relay.request(named, serverId, "probe", null)).delivered;
    if (owner !== null && owner !== "unknown" && owner.dispatcherId !== ctx.config.DISPATCHER_ID && (await holds(owner))) {
      await claim();
      const relayed = await ctx.relay.request(owner, serverId, event, payload);
      if (relayed.delivered) return relayed.reply as Reply<E>;
      // It went away meanwhile: wherever it is now, the adapter finds it.
    }
  }
  let target = await locate(ctx, serverId);
  if (!target && presenceUnread) throw new RunnerUnreachable(`runner of server ${serverId} not found through the adapter and its presence not read: whether it is connected is not known`);
  if (!target) throw new RunnerNotConnected(`runner of server ${serverId} is not connected`);
  await claim();
  // The local socket found before beforeSend may have gone (or been replaced) meanwhile: look again rather than emit into a closed one.
  if ("local" in target) target = await locate(ctx, serverId);
  const gone = () => new RunnerNotConnected(`runner of server ${serverId} went away before acknowledging`);
  if (!target) throw gone();
  const timeout = ctx.config.RUNNER_ACK_TIMEOUT_MS;
  // The typed emitWithAck overloads do not survive a generic event name; the shapes come from Events.
  if ("local" in target) {
    const signed = signForRunner(localSignatureTarget(target.local), event, payload);
    return (await askConnected(target.local, timeout, serverId, event, signed)) as Reply<E>;
  }
  // Through the dispatcher holding it, as above (sealed, and answered without waiting for every dispatcher)...
  const relayed = await ctx.relay.request(target.remote, serverId, event, payload);
  if (relayed.delivered) return relayed.reply as Reply<E>;
  // ...which no longer has it (it went away meanwhile)...
  if (relayed.listeners > 0) throw gone();
  // ...or has our relay but did not hear (its subscriber reconnecting after a Redis restart): not now...
  if (target.remote.relayVersion === RELAY_PROTOCOL_VERSION) throw new RunnerUnreachable(`the dispatcher holding the runner of server ${serverId} did not hear the request`);
  // ...or has no relay of ours (another release, during a rolling upgrade): the adapter then, whose messages are
  // signed but not sealed. Every socket is in a room named by its id, on whichever dispatcher holds it: exactly one recipient.
  const to = await signatureTargetOf(ctx, serverId, { id: target.remote.socketId });
  if (!to) throw gone();
  const remote = ctx.io.to(target.remote.socketId).timeout(timeout) as unknown as { emitWithAck(ev: E, p: Payload<E>): Promise<Reply<E>[]> };
  const reply = (await remote.emitWithAck(event, signForRunner(to, event, payload)))[0];
  if (reply === undefined) throw gone();
  return reply;
}

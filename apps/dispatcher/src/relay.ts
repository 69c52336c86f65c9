import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { createSubscriber, type Logger, type Sealer } from "@runbridge/common";
import type { DispatcherToRunnerEvents, RedisKeys } from "@runbridge/contracts";
import { countRelayRequest } from "./metrics";

/**
 * The requests a dispatcher relays to a runner connected to another dispatcher, and `probe`: whether
 * that dispatcher holds the runner at all (answered there, not sent to the runner).
 */
export type RelayedEvent = keyof Pick<DispatcherToRunnerEvents, "operation:start" | "operation:cancel" | "operation:query"> | "probe";

interface RelayRequest {
  id: string;
  /** The asking dispatcher's reply channel. */
  from: string;
  serverId: string;
  /** The connection the runner's presence key names: the owner answers only through that one (see askLocal). */
  socketId: string;
  event: RelayedEvent;
  /**
   * The payload as JSON, sealed (AES-256-GCM, bound to the request id): a start carries the operation's
   * env values or registry password, which must not cross Redis readable to whoever can subscribe.
   */
  sealed: string;
}

/** `silent`: the error is the runner's own silence (RunnerSilent), not the owner's; absent in answers of earlier releases. */
type RelayReply = { id: string; reply: unknown } | { id: string; absent: true } | { id: string; error: string; silent?: true };

/**
 * What a relayed request came to. Not delivered: `listeners` dispatchers heard it and none held the
 * connection (0: none listens there — gone, or of an earlier version without a relay).
 */
export type RelayOutcome = { delivered: true; reply: unknown } | { delivered: false; listeners: number };

const RELAYED_EVENTS: ReadonlySet<string> = new Set<RelayedEvent>(["operation:start", "operation:cancel", "operation:query", "probe"]);

/**
 * What a request's sealed payload is bound to: with the id alone, whoever can publish on Redis could
 * replay an envelope with another server or connection beside it, and have a start (its env values, a
 * registry password) handed to a runner of theirs.
 */
const sealedFor = (r: Pick<RelayRequest, "id" | "from" | "serverId" | "socketId" | "event">) => [r.id, r.from, r.serverId, r.socketId, r.event].join("|");

/**
 * Asks the runner of `serverId` on this dispatcher and returns its answer; NoLocalRunner when its
 * newest connection here is not `socketId` (gone, or a newer one elsewhere named by presence since).
 */
export type LocalRunnerAsk = (serverId: string, socketId: string, event: RelayedEvent, payload: unknown) => Promise<unknown>;

/** The local runner was not there: the asking dispatcher looks for it elsewhere. */
export class NoLocalRunner extends Error {}

/**
 * The runner is connected and did not acknowledge within the acknowledgement time-out: known to be there, and silent
 * (frozen, its event loop or disk stalled) — unlike a request that got no answer for other reasons (Redis, a
 * dispatcher between it and the runner), which says nothing of the runner.
 */
export class RunnerSilent extends Error {}

interface Pending {
  event: RelayedEvent;
  resolve: (o: RelayOutcome) => void;
  reject: (err: Error) => void;
  /** How many dispatchers received the request (subscribers of its channel; null until known). */
  receivers: number | null;
  /** How many of them answered that the runner is not there. */
  absent: number;
  timer: NodeJS.Timeout;
}

/**
 * Requests to a runner connected to another dispatcher, sent to that dispatcher
 * alone on its own Redis channel (it is named in the runner's presence key),
 * and answered on the asker's. Not broadcast through the socket.io adapter:
 * the adapter's acknowledged broadcasts, and its socket lookups, wait for every
 * dispatcher to answer, so one stalled dispatcher made every request to a
 * runner held by another time out.
 */
export class RunnerRelay {
  private readonly sub: Redis;
  private readonly pending = new Map<string, Pending>();
  private readonly inbox: string;
  private readonly replies: string;

  constructor(
    private readonly opts: {
      redis: Redis;
      redisUrl: string;
      keys: Pick<RedisKeys, "relayRequests" | "relayReplies">;
      sealer: Pick<Sealer, "seal" | "open">;
      dispatcherId: string;
      ackTimeoutMs: number;
      logger: Logger;
      askLocal: LocalRunnerAsk;
    },
  ) {
    this.sub = createSubscriber(opts.redisUrl);
    this.sub.on("error", (err: Error) => opts.logger.warn("relay redis error", { error: err.message }));
    this.inbox = opts.keys.relayRequests(opts.dispatcherId);
    this.replies = opts.keys.relayReplies(opts.dispatcherId);
  }

  async start(): Promise<void> {
    this.sub.on("message", (channel: string, message: string) => {
      if (channel === this.inbox) this.answer(message).catch((err: unknown) => this.opts.logger.warn("could not answer a relayed request", { error: String(err) }));
      else if (channel === this.replies) this.settle(message);
    });
    await this.sub.subscribe(this.inbox, this.replies);
  }

  /**
   * Sends `event` to the runner of `serverId` through dispatcher `owner`. Not delivered when no
   * dispatcher listens there (gone, or of an earlier version) or the runner is not on it (it
   * moved): the caller then looks for it another way. Rejects when no answer comes in time.
   */
  async request(owner: { dispatcherId: string; socketId: string }, serverId: string, event: RelayedEvent, payload: unknown): Promise<RelayOutcome> {
    const head = { id: randomUUID(), from: this.replies, serverId, socketId: owner.socketId, event };
    const req: RelayRequest = { ...head, sealed: this.opts.sealer.seal(JSON.stringify(payload ?? null), sealedFor(head)) };
    return new Promise<RelayOutcome>((resolve, reject) => {
      // The owner gives the runner ackTimeoutMs; a margin for the two Redis hops.
      const timer = setTimeout(
        () => this.fail(req.id, new Error(`no answer through dispatcher ${owner.dispatcherId} within ${this.opts.ackTimeoutMs + 1000} ms`)),
        this.opts.ackTimeoutMs + 1000,
      );
      this.pending.set(req.id, { event, resolve, reject, receivers: null, absent: 0, timer });
      const channel = this.opts.keys.relayRequests(owner.dispatcherId);
      // Who will answer: the channel's own subscribers (NUMSUB, in the same round trip). PUBLISH's count also takes
      // in clients subscribed by pattern (a monitor, a debugging session), which never answer.
      this.opts.redis
        .pipeline()
        .publish(channel, JSON.stringify(req))
        .call("PUBSUB", "NUMSUB", channel)
        .exec()
        .then(
          (results) => {
            const [published, numsub] = results ?? [];
            if (published?.[0] || numsub?.[0]) throw published?.[0] ?? numsub?.[0];
            const p = this.pending.get(req.id);
            if (!p) return; // Answered already (answers can come before these replies).
            const counts = numsub?.[1] as [string, number] | undefined;
            p.receivers = Math.min(Number(published?.[1] ?? 0), Number(counts?.[1] ?? 0));
            if (p.absent >= p.receivers) this.finish(req.id, { delivered: false, listeners: p.receivers });
          },
        )
        .catch((err: unknown) => this.fail(req.id, err instanceof Error ? err : new Error(String(err))));
    });
  }

  /** The owner's side: asks its local runner and publishes the answer to the asker. */
  private async answer(message: string): Promise<void> {
    const req = parseMessage(message) as Partial<RelayRequest> | null;
    if (!req || typeof req.from !== "string" || typeof req.serverId !== "string" || typeof req.socketId !== "string" || !RELAYED_EVENTS.has(req.event ?? "") || typeof req.sealed !== "string") {
      this.opts.logger.warn("dropped a malformed relay request");
      return;
    }
    const { id, from, serverId, socketId, event, sealed } = req as RelayRequest;
    let reply: RelayReply;
    try {
      const payload: unknown = JSON.parse(this.opts.sealer.open(sealed, sealedFor({ id, from, serverId, socketId, event })));
      // null, not undefined, for an empty answer: an absent key would read as "not here" and send it again elsewhere.
      reply = { id, reply: (await this.opts.askLocal(serverId, socketId, event, payload)) ?? null };
    } catch (err) {
      reply = err instanceof NoLocalRunner
        ? { id, absent: true }
        : { id, error: err instanceof Error ? err.message : String(err), ...(err instanceof RunnerSilent ? { silent: true as const } : {}) };
    }
    await this.opts.redis.publish(from, JSON.stringify(reply)).catch((err: unknown) => {
      // The asker times out and retries as for a runner that did not answer.
      this.opts.logger.warn("could not send a relayed answer back", { serverId, event, error: String(err) });
    });
  }

  private settle(message: string): void {
    const reply = parseMessage(message) as RelayReply | null;
    if (!reply) return;
    const p = this.pending.get(reply.id);
    if (!p) return; // Timed out already.
    if ("reply" in reply) return this.finish(reply.id, { delivered: true, reply: reply.reply });
    if ("error" in reply) return this.fail(reply.id, reply.silent === true ? new RunnerSilent(reply.error) : new Error(reply.error));
    // Absent there. Normally one dispatcher listens per id; with several (a shared DISPATCHER_ID) the one holding the runner may still answer.
    p.absent += 1;
    if (p.receivers !== null && p.absent >= p.receivers) this.finish(reply.id, { delivered: false, listeners: p.receivers });
  }

  private finish(id: string, outcome: RelayOutcome): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (p.event !== "probe") countRelayRequest(outcome.delivered ? "delivered" : "absent");
    p.resolve(outcome);
  }

  private fail(id: string, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (p.event !== "probe") countRelayRequest("failed");
    p.reject(err);
  }

  close(): void {
    for (const [id] of this.pending) this.fail(id, new Error("dispatcher shutting down"));
    this.sub.disconnect();
  }
}

/** A relay message: an object with a string `id`, or null for anything else (only what can write to Redis could send it). */
function parseMessage(message: string): { id: string } | null {
  try {
    const m: unknown = JSON.parse(message);
    return m && typeof m === "object" && typeof (m as { id?: unknown }).id === "string" ? (m as { id: string }) : null;
  } catch {
    return null;
  }
}

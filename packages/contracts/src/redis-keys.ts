/**
 * The relay's message format (apps/dispatcher/src/relay.ts), part of its channel names. Raise it with
 * any change to that format: dispatchers of two versions then do not hear each other on the relay (a
 * request finds no listener there) and reach each other's runners through the socket.io adapter, as
 * they would a dispatcher without a relay, rather than misreading each other's messages.
 */
export const RELAY_PROTOCOL_VERSION = 1;

/**
 * Redis key and channel names, all under one configurable prefix so several
 * deployments (or test files) can share a Redis without seeing each other.
 */
export function redisKeys(prefix: string) {
  return {
    /** BullMQ prefix for queues. */
    bull: `${prefix}:bull`,
    /** Presence of a server's runner: value = "<dispatcherId>/<socketId>", with TTL. */
    runnerPresence: (serverId: string) => `${prefix}:runner:${serverId}`,
    /** The admission number (runnerAdmissions) of the connection runnerPresence names, with the same TTL: a connection admitted earlier does not overwrite it. */
    runnerPresenceSeq: (serverId: string) => `${prefix}:runner-seq:${serverId}`,
    /** Counter: each runner connection's admission number, so that "the newest connection" never depends on the dispatchers' clocks. */
    runnerAdmissions: `${prefix}:runner-admissions`,
    /** Pub/sub: an operation reached a terminal state; message = operation id. */
    operationFinished: `${prefix}:events:operation-finished`,
    /** Pub/sub: an automation key changed (revoked, re-scoped); message = key hash. */
    keyChanged: `${prefix}:events:key-changed`,
    /** Pub/sub: requests relayed to the runners connected to one dispatcher (apps/dispatcher/src/relay.ts). */
    relayRequests: (dispatcherId: string) => `${prefix}:relay:v${RELAY_PROTOCOL_VERSION}:${dispatcherId}`,
    /** Pub/sub: answers to the requests one dispatcher relayed. */
    relayReplies: (dispatcherId: string) => `${prefix}:relay-replies:v${RELAY_PROTOCOL_VERSION}:${dispatcherId}`,
    /** A replaced runner's ticket for its results connection (ResultsNamespace), with TTL. */
    resultsTicket: (serverId: string, ticket: string) => `${prefix}:results-ticket:${serverId}:${ticket}`,
    /** Set (NX, with TTL) by the dispatcher that sends a runner connection away, so that two finding it at once do it once. */
    connectionReplaced: (socketId: string) => `${prefix}:replaced:${socketId}`,
    /** Socket.io adapter channel prefix. */
    socketAdapter: `${prefix}:sio`,
    /** Live output of an operation (Redis stream, bounded, with TTL). */
    operationLog: (operationId: string) => `${prefix}:oplog:${operationId}`,
    /** Pub/sub: cancel an operation; message = JSON {operationId, serverId}; the dispatcher holding the runner socket acts. */
    operationCancel: `${prefix}:events:operation-cancel`,
    /** Set of a server's operation ids whose cancel its runner has not confirmed yet (sent again when it reconnects). */
    pendingCancels: (serverId: string) => `${prefix}:cancels:${serverId}`,
    /**
     * Set by a gateway whose insert of this operation went unconfirmed (its commit's answer lost) after it told
     * the client the operation was not started: a row that landed all the same is failed by the sweeper, never
     * re-enqueued as a lost job. With a TTL past the latest moment the sweeper would re-enqueue it.
     */
    operationUnconfirmed: (operationId: string) => `${prefix}:unconfirmed:${operationId}`,
    /**
     * The reason its runner gave when it last refused this operation for later (retryably), with a TTL
     * of a few delivery attempts: present when the delivery deadline passes, the operation fails as
     * deferred by a connected runner rather than as runner offline.
     */
    operationDeferred: (operationId: string) => `${prefix}:deferred:${operationId}`,
    /**
     * Set, with a TTL of a few retries, when a delivery of this operation was held back because its runner,
     * connected, left the requests sent to it unanswered: present when the delivery deadline passes, the
     * operation fails as runner unresponsive rather than as runner offline.
     */
    operationHeldBack: (operationId: string) => `${prefix}:held-back:${operationId}`,
    /**
     * Set, with a TTL of a few retries, when a delivery of this operation found its runner not connected (or
     * not reachable through the dispatcher holding it): present when the delivery deadline passes, the
     * operation fails as runner offline; absent, no runner was ever asked (queue backlog).
     */
    operationRunnerAway: (operationId: string) => `${prefix}:runner-away:${operationId}`,
    /** Set (NX, PX the window) by the gateway that writes the audit event of an automation key's refusals of one reason in one window (`<key id>:<reason>`). */
    refusalAudited: (mark: string) => `${prefix}:refusal-audited:${mark}`,
    /** Pub/sub: a server's runner token was rotated; message = encodeTokenRevoked (token-revoked.ts); every dispatcher drops its connections that used the old token. */
    runnerTokenRevoked: `${prefix}:events:runner-token-revoked`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;

/**
 * A message on `operationFinished`: the operation id, optionally followed by a
 * newline and the finished operation as JSON, so a waiting gateway need not
 * read it back from PostgreSQL. Rows too large to carry (big outputs) are sent
 * as the bare id and read back.
 */
export const FINISHED_ROW_MAX_BYTES = 256 * 1024;

export function encodeFinished(operationId: string, row?: unknown): string {
  if (row === undefined) return operationId;
  const json = JSON.stringify(row);
  return json.length <= FINISHED_ROW_MAX_BYTES ? `${operationId}\n${json}` : operationId;
}

export function decodeFinished(message: string): { operationId: string; rowJson?: string } {
  const nl = message.indexOf("\n");
  return nl < 0 ? { operationId: message } : { operationId: message.slice(0, nl), rowJson: message.slice(nl + 1) };
}

/** Presence TTL; dispatchers refresh it at a third of this. */
export const RUNNER_PRESENCE_TTL_SECONDS = 30;

import type { IncomingMessage } from "node:http";
import { type Logger, budgetHolder, clientAddressResolver } from "@runbridge/common";
import { countRunnerHandshake, setUnauthenticatedRunnerConnections } from "./metrics";

/** At most one log line about connections closed to make room, however many there are. */
const CLOSED_LOG_EVERY_MS = 60_000;

/**
 * Runner connections that have not (yet) been let in, per client address (per /64 for IPv6, as the bound on
 * unknown tokens), on this process. Until its token is accepted a connection is anyone's, and may send
 * messages as big as a result: each address may hold only so many (RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS),
 * and each only so long (RUNNER_HANDSHAKE_TIMEOUT_MS, from its upgrade request; a runner sends its handshake
 * as soon as the connection opens). One more closes the address's oldest to make room, and is let in: a
 * runner's handshake takes a round trip and a token lookup, so the one that has waited longest is the idlest,
 * and whoever shares an address (a NAT, a /64, every client behind a proxy that forwards no address) cannot
 * keep the others out by holding connections open. A connection whose token is being checked is not closed
 * for room (it has sent its handshake: it is not idle, and it may be a runner about to be let in, whose
 * lookup would be wasted — a fleet behind one NAT reconnecting at once after a dispatcher restart has many
 * such); the address then holds more for the moment. A connection stops counting once its token is
 * accepted, or when it closes (whatever closes it); one whose token was refused is closable again.
 *
 * Across addresses this process holds at most RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX of them (many addresses
 * are cheap to have: an IPv6 /48 holds 65,536 /64s), closing the oldest of all the same way — and, when all
 * of them are being checked, the oldest of those: sockets and what they buffer stay bounded whoever
 * connects, and a runner still gets in at once.
 *
 * engine.io asks only about requests that open a connection (allowRequest): one naming an existing
 * connection (its `sid`, which that connection's first packet tells) would go uncounted, with no deadline.
 * A runner never sends one (the WebSocket is its only transport, nothing is upgraded), so every such request
 * is refused (refuseSessionRequests).
 */
export class UnauthenticatedConnections {
  /** Per address, its connections oldest first (a Set iterates in insertion order). */
  private readonly open = new Map<string, Set<IncomingMessage>>();
  /** Every counted connection, oldest first, with its address. */
  private readonly all = new Map<IncomingMessage, string>();
  private readonly releases = new WeakMap<IncomingMessage, () => void>();
  /** Connections whose token is being checked (between checking() and refused() or authenticated()). */
  private readonly inCheck = new WeakSet<IncomingMessage>();
  private total = 0;
  private readonly clientAddress: (req: IncomingMessage) => string;
  private closedSinceLog = 0;
  private lastLogAt = -Infinity;

  constructor(
    private readonly perAddress: number,
    private readonly max: number,
    private readonly timeoutMs: number,
    trustProxy: string,
    private readonly logger: Logger,
  ) {
    // The address the handshake's token guard counts by (TRUST_PROXY).
    this.clientAddress = clientAddressResolver(trustProxy);
  }

  /** engine.io's allowRequest: runs on the upgrade request of every new connection (websocket is the only transport). */
  readonly allowRequest = (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
    const admitted = this.admit(req);
    callback(admitted ? null : "connection closed", admitted);
  };

  /**
   * engine.io middleware (engine.use): runs before anything else on every request to the runner path, upgrades
   * included, and refuses each that names a connection (`sid`), before engine.io or ws hold anything for it.
   * engine.io answers a refused upgrade with a 400 and destroys its socket at once.
   */
  readonly refuseSessionRequests = (req: IncomingMessage, _res: unknown, next: (err?: Error) => void): void => {
    // Any `sid` at all, however written: engine.io reads the same query (new URL, the last of several wins).
    const namesSession = new URL(req.url ?? "/", "http://localhost").searchParams.has("sid");
    if (namesSession) countRunnerHandshake("names_session");
    next(namesSession ? new Error("runner connections never name an existing one") : undefined);
  };

  /**
   * Counts the connection of `req` for its address, closing the address's oldest first when it already holds
   * its share; false only when `req`'s own connection is gone already.
   */
  admit(req: IncomingMessage): boolean {
    // Gone already: its close has been and will not come again to release it.
    if (req.socket.destroyed) return false;
    const address = this.clientAddress(req);
    const holder = budgetHolder(address);
    const held = this.open.get(holder) ?? new Set<IncomingMessage>();
    for (const oldest of held) {
      if (held.size < this.perAddress) break;
      if (!this.inCheck.has(oldest)) this.closeForRoom(oldest, address, "address");
    }
    // Across addresses the bound holds whatever is being checked: idle ones first, then the oldest of the
    // rest (many addresses can each keep lookups of unknown tokens queued behind PostgreSQL's pool).
    for (const spareChecks of [true, false]) {
      for (const [oldest, itsAddress] of this.all) {
        if (this.total < this.max) break;
        if (!spareChecks || !this.inCheck.has(oldest)) this.closeForRoom(oldest, itsAddress, "all");
      }
    }
    // (Set again: releasing the last one took the address out.)
    this.open.set(holder, held.add(req));
    this.all.set(req, address);
    this.changed(1);
    // Destroyed, not closed: a WebSocket close waits up to 30 s for the peer's answer, still reading what it sends.
    // (socket.io's own connectTimeout, set as well, closes that way, and counts from the engine.io handshake.)
    // Also a connection whose handshake was refused, if its client leaves it open.
    const deadline = setTimeout(() => {
      countRunnerHandshake("timed_out");
      req.socket.destroy();
    }, this.timeoutMs);
    deadline.unref();
    // The TCP connection, not the engine.io one: it closes whatever happens next (an upgrade ws refuses, the
    // deadline, the runner going away), and a WebSocket has one of its own, also through a proxy.
    const release = () => {
      clearTimeout(deadline);
      req.socket.off("close", release);
      this.releases.delete(req);
      this.all.delete(req);
      const set = this.open.get(holder);
      if (!set?.delete(req)) return;
      if (set.size === 0) this.open.delete(holder);
      this.changed(-1);
    };
    req.socket.once("close", release);
    this.releases.set(req, release);
    return true;
  }

  /** The connection's handshake arrived and its token is being checked: not closed to make room meanwhile. */
  checking(req: IncomingMessage): void {
    this.inCheck.add(req);
  }

  /** The connection's token was refused: closable to make room again, until it closes or its deadline. */
  refused(req: IncomingMessage): void {
    this.inCheck.delete(req);
  }

  /** The connection's token was accepted: no longer counted (a no-op the second time, or after it closed). */
  authenticated(req: IncomingMessage): void {
    this.inCheck.delete(req);
    this.releases.get(req)?.();
  }

  private changed(by: number): void {
    this.total += by;
    setUnauthenticatedRunnerConnections(this.total);
  }

  /** Released now, not on its 'close' (a moment later): the new one fits at once. */
  private closeForRoom(req: IncomingMessage, address: string, bound: "address" | "all"): void {
    this.releases.get(req)?.();
    req.socket.destroy();
    this.closedToMakeRoom(address, bound);
  }

  /** Counted every time, logged at most once a minute (a flood of them must not flood the logs). */
  private closedToMakeRoom(address: string, bound: "address" | "all"): void {
    countRunnerHandshake("too_many_unauthenticated");
    this.closedSinceLog++;
    const now = performance.now();
    if (now - this.lastLogAt < CLOSED_LOG_EVERY_MS) return;
    this.logger.warn("closed runner connections: too many not yet authenticated from one address, or from all, the oldest made room (logged at most once a minute)", {
      clientIp: address,
      bound,
      closed: this.closedSinceLog,
      limit: this.perAddress,
      limitOfAll: this.max,
    });
    this.lastLogAt = now;
    this.closedSinceLog = 0;
  }
}

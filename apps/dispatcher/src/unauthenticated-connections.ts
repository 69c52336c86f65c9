import type { IncomingMessage } from "node:http";
import { type Logger, budgetHolder, clientAddressResolver } from "@runbridge/common";
import { countRunnerHandshake, setUnauthenticatedRunnerConnections } from "./metrics";

/** The body of the 400 a refused upgrade gets (the runner only sees that the WebSocket upgrade failed, and retries). */
const TOO_MANY_UNAUTHENTICATED = "too many runner connections not yet authenticated from this address, retry later";
/** At most one log line about refused upgrades per this, however many there are. */
const REFUSAL_LOG_EVERY_MS = 60_000;

/**
 * Runner connections that have not (yet) been let in, per client address (per /64 for IPv6, as the bound on
 * unknown tokens), on this process. Until its token is accepted a connection is anyone's, and may send
 * messages as big as a result: each address may hold only so many (RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS),
 * and each only so long (RUNNER_HANDSHAKE_TIMEOUT_MS, from its upgrade request; a runner sends its handshake
 * as soon as the connection opens). One more is refused at the WebSocket upgrade, before engine.io or
 * socket.io hold anything for it, and the runner retries with backoff. A connection stops counting once its
 * token is accepted, or when it closes (whatever closes it).
 */
export class UnauthenticatedConnections {
  private readonly open = new Map<string, number>();
  private readonly releases = new WeakMap<IncomingMessage, () => void>();
  private total = 0;
  private readonly clientAddress: (req: IncomingMessage) => string;
  private refusedSinceLog = 0;
  private lastLogAt = -Infinity;

  constructor(
    private readonly perAddress: number,
    private readonly timeoutMs: number,
    trustProxy: string,
    private readonly logger: Logger,
  ) {
    // The address the handshake's token guard counts by (TRUST_PROXY).
    this.clientAddress = clientAddressResolver(trustProxy);
  }

  /** engine.io's allowRequest: runs on the upgrade request of every new connection (websocket is the only transport). */
  readonly allowRequest = (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
    callback(TOO_MANY_UNAUTHENTICATED, this.admit(req));
  };

  /** Counts the connection of `req` for its address, or refuses it: false when the address already holds its share. */
  admit(req: IncomingMessage): boolean {
    // Gone already: its close has been and will not come again to release it.
    if (req.socket.destroyed) return false;
    const address = this.clientAddress(req);
    const holder = budgetHolder(address);
    const held = this.open.get(holder) ?? 0;
    if (held >= this.perAddress) {
      this.refused(address);
      return false;
    }
    this.open.set(holder, held + 1);
    this.changed(1);
    // Destroyed, not closed: a WebSocket close waits up to 30 s for the peer's answer, still reading what it sends.
    // (socket.io's own connectTimeout, set as well, closes that way, and counts from the engine.io handshake.)
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
      const left = (this.open.get(holder) ?? 1) - 1;
      if (left > 0) this.open.set(holder, left);
      else this.open.delete(holder);
      this.changed(-1);
    };
    req.socket.once("close", release);
    this.releases.set(req, release);
    return true;
  }

  /** The connection's token was accepted: no longer counted (a no-op the second time, or after it closed). */
  authenticated(req: IncomingMessage): void {
    this.releases.get(req)?.();
  }

  private changed(by: number): void {
    this.total += by;
    setUnauthenticatedRunnerConnections(this.total);
  }

  /** Counted every time, logged at most once a minute (a flood of them must not flood the logs). */
  private refused(address: string): void {
    countRunnerHandshake("too_many_unauthenticated");
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastLogAt < REFUSAL_LOG_EVERY_MS) return;
    this.logger.warn("refused runner connections: too many not yet authenticated from one address (logged at most once a minute)", {
      clientIp: address,
      refused: this.refusedSinceLog,
      limit: this.perAddress,
    });
    this.lastLogAt = now;
    this.refusedSinceLog = 0;
  }
}

import type { Redis } from "ioredis";
import { createSubscriber, revokedTokenDigest, signForRunner } from "@runbridge/common";
import { ResultsNamespace, decodeTokenRevoked } from "@runbridge/contracts";
import type { DispatcherContext, RunnerSocket } from "./context";
import { clientIpOf } from "./runner-audit";
import { localSignatureTarget, tokenHashOf } from "./connection-keys";

/**
 * How long a revoked token is remembered here: far longer than a
 * handshake's token lookup can take (see isRevoked).
 */
const REMEMBER_MS = 10 * 60_000;
/** Servers looked up per query when connections are checked against PostgreSQL. */
const RECHECK_BATCH = 1000;
const RECHECK_RETRY_MS = 10_000;

/**
 * Drops runner connections whose token was rotated away. The gateway announces
 * each rotation on one pub/sub channel every dispatcher subscribes to; each
 * dispatcher closes its own connections made with the old token (told first,
 * so the runner does not reconnect with it).
 *
 * A message published while this dispatcher's subscription was down is lost:
 * so whenever the subscription is (re)established, every connection held here
 * is checked against the servers' current token hashes in PostgreSQL instead.
 * So is one the gateway could not publish at all (it had lost Redis when the
 * rotation or server deletion committed): for that, the same check also runs
 * every RUNNER_TOKEN_RECHECK_SECONDS.
 */
export class TokenRevocations {
  /** Recently revoked tokens (revokedTokenDigest) → until when they are remembered. Rotations are rare: this stays tiny. */
  private readonly recent = new Map<string, number>();
  private sub: Redis | null = null;
  private recheckTimer: NodeJS.Timeout | null = null;
  private periodic: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly ctx: DispatcherContext) {}

  /**
   * Whether a token was revoked moments ago. A handshake that looked its token
   * up just before the rotation committed would otherwise be let in after the
   * revocation swept this dispatcher's connections.
   */
  isRevoked(tokenHash: string): boolean {
    return (this.recent.get(revokedTokenDigest(tokenHash)) ?? 0) > Date.now();
  }

  start(): void {
    const { ctx } = this;
    const channel = ctx.keys.runnerTokenRevoked;
    // Named, so an operator (or a test) can tell this connection apart in CLIENT LIST.
    const sub = createSubscriber(ctx.config.REDIS_URL, { connectionName: `${ctx.config.REDIS_PREFIX}:token-revocations` });
    this.sub = sub;
    sub.on("error", (err: Error) => ctx.logger.warn("token revocation listener redis error", { error: err.message }));
    sub.on("message", (ch: string, message: string) => {
      if (ch !== channel) return;
      const revoked = decodeTokenRevoked(message, revokedTokenDigest);
      if (!revoked) return ctx.logger.warn("ignored a malformed runner token revocation");
      this.remember(revoked.tokenDigest);
      for (const socket of this.localSockets()) {
        const hash = tokenHashOf(socket);
        if (hash !== undefined && revokedTokenDigest(hash) === revoked.tokenDigest) this.drop(socket, "its server's runner token was rotated, or the server deleted");
      }
    });
    this.periodic = setInterval(() => void this.recheck(), ctx.config.RUNNER_TOKEN_RECHECK_SECONDS * 1000);
    this.periodic.unref();
    // On every connection (the first one too: handshakes may have been let in before it), once subscribed.
    sub.on("ready", () => {
      sub
        .subscribe(channel)
        .then(() => this.recheck())
        .catch((err: unknown) => ctx.logger.error("could not subscribe to runner token revocations", { error: String(err) }));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    if (this.periodic) clearInterval(this.periodic);
    this.sub?.disconnect();
  }

  private remember(tokenDigest: string): void {
    const now = Date.now();
    for (const [digest, until] of this.recent) if (until <= now) this.recent.delete(digest);
    this.recent.set(tokenDigest, now + REMEMBER_MS);
  }

  /** Runner connections here, a replaced runner's results connection too (it was made with the same token). */
  private localSockets(): RunnerSocket[] {
    return [...this.ctx.io.of("/").sockets.values(), ...this.ctx.io.of(ResultsNamespace).sockets.values()];
  }

  /** Told first (a runner told its token was revoked does not reconnect with it), then closed. */
  private drop(socket: RunnerSocket, why: string): void {
    const { serverId } = socket.data;
    this.ctx.logger.warn(`runner connection closed: ${why}`, { serverId, socketId: socket.id, address: clientIpOf(socket) });
    socket.emit("runner:token-revoked", signForRunner(localSignatureTarget(socket), "runner:token-revoked", {}));
    socket.disconnect(true);
  }

  /** Every connection held here whose token is no longer its server's (rotated while messages could be lost) is dropped. */
  private async recheck(): Promise<void> {
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.recheckTimer = null;
    const sockets = this.localSockets();
    try {
      for (let i = 0; i < sockets.length; i += RECHECK_BATCH) {
        const batch = sockets.slice(i, i + RECHECK_BATCH);
        const ids = [...new Set(batch.map((s) => s.data.serverId))];
        const rows = await this.ctx.prisma.server.findMany({ where: { id: { in: ids } }, select: { id: true, runnerTokenHash: true } });
        const current = new Map(rows.map((r) => [r.id, r.runnerTokenHash]));
        for (const s of batch) {
          if (s.connected && current.get(s.data.serverId) !== tokenHashOf(s)) this.drop(s, "its token is no longer its server's (rotated, or the server deleted, while this dispatcher could not hear it)");
        }
      }
    } catch (err) {
      // Until it succeeds, a connection with a rotated token could stay: try again soon.
      this.ctx.logger.warn("could not check runner connections against their servers' tokens; retrying", { error: String(err), retryInMs: RECHECK_RETRY_MS });
      if (!this.closed) this.recheckTimer = setTimeout(() => void this.recheck(), RECHECK_RETRY_MS);
    }
  }
}

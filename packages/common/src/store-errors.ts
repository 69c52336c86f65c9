/**
 * Recognises errors meaning PostgreSQL or Redis is unreachable, or too slow or busy to answer now (as
 * opposed to a bug or a bad request), so the API answers 503 and the client retries.
 */
const TRANSIENT_CODES = new Set([
  // Network and connection (node, PostgreSQL class 08, Prisma's P1xxx and pool timeout P2024).
  ...["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "08000", "08001", "08003", "08006", "P1001", "P1002", "P1017", "P2024"],
  // The server going away or not taking connections: shutdown, crash recovery, too many connections.
  ...["57P01", "57P02", "57P03", "53300"],
  // Too slow or busy now: statement timeout, lock timeout, a deadlock or serialization failure (rolled
  // back, safe to retry), a transaction that outlived Prisma's timeout (P2028).
  ...["57014", "55P03", "40P01", "40001", "P2028"],
  // A write that reached a standby: a failover is under way.
  "25006",
]);

const TRANSIENT_MESSAGE =
  /Stream isn't writeable|enableOfflineQueue|Connection is closed|Reached the max retries per request|connect ECONNREFUSED|Connection terminated|timeout exceeded when trying to connect|Can't reach database server|DatabaseNotReachable|Command timed out|Query read timeout|not queryable|Server has closed the connection/i;

export function isInfrastructureDown(err: unknown): boolean {
  // Prisma wraps a driver error of a raw query (P2010) in meta.driverAdapterError, whose cause carries PostgreSQL's code.
  const pending: unknown[] = [err];
  for (let seen = 0; pending.length > 0 && seen < 10; seen++) {
    const x = pending.shift() as { code?: unknown; originalCode?: unknown; name?: string; message?: string; cause?: unknown; meta?: { driverAdapterError?: unknown } } | null;
    if (!x || typeof x !== "object") continue;
    for (const code of [x.code, x.originalCode]) if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
    const msg = typeof x.message === "string" ? x.message : "";
    if (TRANSIENT_MESSAGE.test(msg)) return true;
    if (x.name === "DriverAdapterError" && /ECONNREFUSED|terminat|timeout/i.test(msg)) return true;
    pending.push(x.cause, x.meta?.driverAdapterError);
  }
  return false;
}

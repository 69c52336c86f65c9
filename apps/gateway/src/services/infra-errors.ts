/**
 * Recognises errors meaning PostgreSQL or Redis is unreachable (as opposed to a
 * bug), so the API can answer 503 and the client can retry.
 */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "57P01", "57P03", "53300", "08000", "08001", "08003", "08006", "P1001", "P1002", "P1017", "P2024"]);

export function isInfrastructureDown(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const x = e as { code?: unknown; name?: string; message?: string; cause?: unknown };
    if (typeof x.code === "string" && NETWORK_CODES.has(x.code)) return true;
    const msg = typeof x.message === "string" ? x.message : "";
    if (
      /Stream isn't writeable|enableOfflineQueue|Connection is closed|Reached the max retries per request|connect ECONNREFUSED|Connection terminated|timeout exceeded when trying to connect|Can't reach database server|DatabaseNotReachable|Command timed out|Query read timeout/i.test(
        msg,
      )
    )
      return true;
    if (x.name === "DriverAdapterError" && /ECONNREFUSED|terminat|timeout/i.test(msg)) return true;
    e = x.cause;
  }
  return false;
}

import type { Redis } from "ioredis";
import type { Logger } from "./logger";
import { withTimeout } from "./timeout";

const CHECK_TIMEOUT_MS = 3000;

export interface Readiness {
  ok: boolean;
  /** The readiness route's answer: which store is down, never why. */
  body: { status: "ok" | "unavailable"; checks: Record<string, "ok" | "error">; detail?: string };
}

/**
 * Runs the named probes (e.g. a PostgreSQL `SELECT 1` and a Redis PING) at
 * once, each bounded by a timeout, so a hung store reads as down instead of
 * holding the probe. The readiness route is unauthenticated: why a check
 * failed (host names, ports) goes to the log only.
 */
export async function checkReadiness(probes: Record<string, () => Promise<unknown>>, logger: Logger): Promise<Readiness> {
  const results = await Promise.all(Object.entries(probes).map(async ([name, probe]) => [name, await bounded(name, probe, logger)] as const));
  const checks = Object.fromEntries(results);
  const ok = results.every(([, r]) => r === "ok");
  return { ok, body: { status: ok ? "ok" : "unavailable", checks, ...(ok ? {} : { detail: "not ready" }) } };
}

async function bounded(name: string, probe: () => Promise<unknown>, logger: Logger): Promise<"ok" | "error"> {
  try {
    await withTimeout(probe(), CHECK_TIMEOUT_MS);
    return "ok";
  } catch (e) {
    logger.warn("readiness check failed", { check: name, error: e instanceof Error ? e.message : String(e) });
    return "error";
  }
}

/** Fail-fast clients seen connected, and the first connection awaited for the ones not yet. */
const firstConnection = new WeakMap<Redis, Promise<void>>();

/**
 * A PING for a readiness check. A fail-fast client (no offline queue) refuses
 * every command until its first connection is up, which right after the
 * process started is not Redis being down: until the client has been ready
 * once, the check waits for it (within the check's bound). Once it has, a
 * dropped connection fails the check at once, as before.
 */
export async function pingRedis(client: Redis): Promise<unknown> {
  let connected = firstConnection.get(client);
  if (!connected) {
    connected = client.status === "ready" ? Promise.resolve() : new Promise<void>((resolve) => client.once("ready", () => resolve()));
    firstConnection.set(client, connected);
  }
  await connected;
  return client.ping();
}

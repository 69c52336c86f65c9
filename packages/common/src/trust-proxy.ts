import type { IncomingMessage } from "node:http";
import type Joi from "joi";
import proxyaddr, { compile } from "proxy-addr";

/** TRUST_PROXY as Express's `trust proxy` value: a hop count, a list of addresses/subnets, or off. */
export function trustProxySetting(raw: string): number | string[] | false {
  const v = raw.trim();
  if (!v || v === "false") return false;
  if (/^\d+$/.test(v)) return Number(v);
  return v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The boot check of TRUST_PROXY. Express compiles its `trust proxy` setting
 * with proxy-addr once the app is built, after the database and Redis are
 * reached, and throws on an entry it cannot parse; compiling it here with the
 * same library accepts exactly what Express (and the dispatcher) will.
 */
export function compilableTrustProxy(raw: string, h: Joi.CustomHelpers): string | Joi.ErrorReport {
  const setting = trustProxySetting(raw);
  if (!Array.isArray(setting)) return raw;
  try {
    compile(setting);
    return raw;
  } catch (err) {
    return h.message(
      { custom: "{#label} must be a hop count (e.g. 1) or comma-separated proxy addresses, subnets or names (loopback, linklocal, uniquelocal): {#reason}" },
      { reason: err instanceof Error ? err.message : String(err) },
    );
  }
}

/**
 * The client address of a request under TRUST_PROXY, as Express's `req.ip`
 * gives it: the socket's address, or with trusted proxies in front the
 * X-Forwarded-For entry they vouch for (a hop count trusts that many).
 */
export function clientAddressResolver(raw: string): (req: IncomingMessage) => string {
  const setting = trustProxySetting(raw);
  const trust = setting === false ? () => false : typeof setting === "number" ? (_addr: string, i: number) => i < setting : compile(setting);
  return (req) => proxyaddr(req, trust);
}

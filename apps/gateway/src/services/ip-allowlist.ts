import ipaddr from "ipaddr.js";

/**
 * IP allowlists of automation keys.
 *
 * Every range and every client address is compared in IPv6 space, with IPv4
 * written as its IPv4-mapped form (a.b.c.d -> ::ffff:a.b.c.d, a.b.c.d/n ->
 * ::ffff:a.b.c.d/(96+n)). That one rule makes an IPv4 client seen on a
 * dual-stack socket as ::ffff:a.b.c.d match its IPv4 range, and an entry
 * written as ::ffff:10.0.0.0/104 match plain IPv4 clients, with no special cases.
 */

type Address = ipaddr.IPv4 | ipaddr.IPv6;

export interface AllowRange {
  net: ipaddr.IPv6;
  bits: number;
}

function toV6(addr: Address): ipaddr.IPv6 {
  return addr instanceof ipaddr.IPv4 ? addr.toIPv4MappedAddress() : addr;
}

/**
 * Strict parser for what a person types into an allowlist: dotted-quad IPv4
 * ("1.2.3.4", not the legacy "1.2.3" or "0x7f.1" forms), IPv6 without a zone,
 * optionally "/prefix". Null if it is none of these.
 */
function parseEntry(entry: string): { addr: Address; bits: number } | null {
  const s = entry.trim();
  const slash = s.indexOf("/");
  const host = slash === -1 ? s : s.slice(0, slash);
  const prefix = slash === -1 ? null : s.slice(slash + 1);
  let addr: Address;
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) addr = ipaddr.IPv4.parse(host);
  else if (!host.includes("%") && host.includes(":") && ipaddr.IPv6.isValid(host)) addr = ipaddr.IPv6.parse(host);
  else return null;
  const max = addr.kind() === "ipv4" ? 32 : 128;
  if (prefix === null) return { addr, bits: max };
  if (!/^\d{1,3}$/.test(prefix)) return null;
  const bits = Number(prefix);
  return bits <= max ? { addr, bits } : null;
}

/** The range an entry denotes, in IPv6 space; null if the entry is not an address or CIDR. */
export function parseAllowlistEntry(entry: string): AllowRange | null {
  const parsed = parseEntry(entry);
  if (!parsed) return null;
  return { net: toV6(parsed.addr), bits: parsed.addr.kind() === "ipv4" ? parsed.bits + 96 : parsed.bits };
}

/**
 * Normalised text of an entry, as stored and shown: the network address and
 * prefix ("10.1.2.3/8" -> "10.0.0.0/8", "1.2.3.4" -> "1.2.3.4/32"), IPv6 in
 * RFC 5952 form, and IPv4-mapped ranges written as IPv4 ("::ffff:10.0.0.0/104"
 * -> "10.0.0.0/8"). Null if invalid.
 */
export function normaliseAllowlistEntry(entry: string): string | null {
  const range = parseAllowlistEntry(entry);
  if (!range) return null;
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${range.net.toNormalizedString()}/${range.bits}`);
  if (range.bits >= 96 && network.isIPv4MappedAddress()) return `${network.toIPv4Address().toString()}/${range.bits - 96}`;
  return `${network.toRFC5952String()}/${range.bits}`;
}

/** Parses a client address (as Express reports it) into IPv6 space; null if unparseable. */
function parseClientIp(ip: string): ipaddr.IPv6 | null {
  try {
    return toV6(ipaddr.parse(ip));
  } catch {
    return null;
  }
}

/**
 * How a client address is shown and recorded: IPv4-mapped IPv6 as plain IPv4
 * ("::ffff:1.2.3.4" -> "1.2.3.4"). Something unparseable (only possible with a
 * misconfigured TRUST_PROXY passing on a client's X-Forwarded-For) is kept,
 * bounded, so it still shows up in the audit trail and the 403.
 */
export function normaliseClientIp(ip: string): string {
  try {
    return ipaddr.process(ip).toString();
  } catch {
    return ip.slice(0, 64);
  }
}

export type IpMatcher = (ip: string) => boolean;

/**
 * Compiles an allowlist once (keys are cached, so this runs per key load, not
 * per request). Empty list = allow all; a non-empty list whose entries are all
 * unreadable allows nothing (fail closed).
 */
export function compileAllowlist(entries: readonly string[]): IpMatcher {
  if (entries.length === 0) return () => true;
  const ranges = entries.map(parseAllowlistEntry).filter((r): r is AllowRange => r !== null);
  return (ip) => {
    const addr = parseClientIp(ip);
    return addr !== null && ranges.some((r) => addr.match(r.net, r.bits));
  };
}

/** One-off form of `compileAllowlist`. */
export function ipAllowed(ip: string, allowlist: readonly string[]): boolean {
  return compileAllowlist(allowlist)(ip);
}

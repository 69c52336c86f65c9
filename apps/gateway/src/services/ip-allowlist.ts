import ipaddr from "ipaddr.js";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses "1.2.3.4", "10.0.0.0/8", "2001:db8::/32" (a bare address is a /32 or /128). Null if invalid. */
export function parseAllowlistEntry(entry: string): Range | null {
  const s = entry.trim();
  try {
    if (s.includes("/")) return ipaddr.parseCIDR(s);
    const addr = ipaddr.parse(s);
    return [addr, addr.kind() === "ipv4" ? 32 : 128];
  } catch {
    return null;
  }
}

/** Normalised text of an entry, as stored: "10.0.0.0/8", "2001:db8::/32". */
export function normaliseAllowlistEntry(entry: string): string | null {
  const r = parseAllowlistEntry(entry);
  return r ? `${r[0].toString()}/${r[1]}` : null;
}

/**
 * Whether `ip` is inside any entry. IPv4-mapped IPv6 addresses (::ffff:1.2.3.4,
 * as Node reports IPv4 clients on a dual-stack socket) match IPv4 ranges.
 * Empty list = allow all.
 */
export function ipAllowed(ip: string, allowlist: readonly string[]): boolean {
  if (allowlist.length === 0) return true;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return false;
  }
  for (const entry of allowlist) {
    const range = parseAllowlistEntry(entry);
    if (!range) continue;
    const [net, bits] = range;
    const candidate = net.kind() === "ipv6" && net instanceof ipaddr.IPv6 && net.isIPv4MappedAddress() ? ([net.toIPv4Address(), bits - 96] as Range) : range;
    if (addr.kind() === candidate[0].kind() && addr.match(candidate)) return true;
  }
  return false;
}

import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { compileAllowlist, ipAllowed, normaliseAllowlistEntry, normaliseClientIp, parseAllowlistEntry } from "../../apps/gateway/src/services/ip-allowlist";

describe("IP allowlist matcher", () => {
  it("allows everything when the list is empty", () => {
    expect(ipAllowed("203.0.113.9", [])).toBe(true);
    expect(ipAllowed("2001:db8::1", [])).toBe(true);
  });

  it("matches IPv4 CIDR ranges at their boundaries", () => {
    const list = ["10.0.0.0/8", "192.168.1.0/24"];
    expect(ipAllowed("10.0.0.0", list)).toBe(true);
    expect(ipAllowed("10.255.255.255", list)).toBe(true);
    expect(ipAllowed("11.0.0.0", list)).toBe(false);
    expect(ipAllowed("9.255.255.255", list)).toBe(false);
    expect(ipAllowed("192.168.1.255", list)).toBe(true);
    expect(ipAllowed("192.168.2.0", list)).toBe(false);
  });

  it("treats a bare address as a single host (/32, /128)", () => {
    expect(ipAllowed("198.51.100.7", ["198.51.100.7"])).toBe(true);
    expect(ipAllowed("198.51.100.8", ["198.51.100.7"])).toBe(false);
    expect(ipAllowed("2001:db8::7", ["2001:db8::7"])).toBe(true);
    expect(ipAllowed("2001:db8::8", ["2001:db8::7"])).toBe(false);
  });

  it("matches IPv6 CIDR ranges at their boundaries", () => {
    const list = ["2001:db8::/32"];
    expect(ipAllowed("2001:db8::", list)).toBe(true);
    expect(ipAllowed("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", list)).toBe(true);
    expect(ipAllowed("2001:db9::", list)).toBe(false);
    expect(ipAllowed("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", list)).toBe(false);
  });

  it("matches an IPv4-mapped IPv6 client against IPv4 ranges, and a mapped range against IPv4 clients", () => {
    expect(ipAllowed("::ffff:10.1.2.3", ["10.0.0.0/8"])).toBe(true);
    expect(ipAllowed("::ffff:11.1.2.3", ["10.0.0.0/8"])).toBe(false);
    expect(ipAllowed("10.1.2.3", ["::ffff:10.0.0.0/104"])).toBe(true);
    expect(ipAllowed("11.1.2.3", ["::ffff:10.0.0.0/104"])).toBe(false);
  });

  it("never lets a plain IPv6 client into an IPv4 range (or the reverse)", () => {
    expect(ipAllowed("::a01:203", ["10.0.0.0/8"])).toBe(false); // IPv4-compatible, not mapped
    expect(ipAllowed("2001:db8::1", ["0.0.0.0/0"])).toBe(false);
    expect(ipAllowed("10.1.2.3", ["2001:db8::/32"])).toBe(false);
    expect(ipAllowed("10.1.2.3", ["::/0"])).toBe(true); // ::/0 is every address, mapped IPv4 included
  });

  it("refuses unparseable client addresses when a list is set", () => {
    expect(ipAllowed("", ["0.0.0.0/0"])).toBe(false);
    expect(ipAllowed("not-an-ip", ["0.0.0.0/0"])).toBe(false);
  });

  it("normalises entries to network/prefix, RFC 5952 IPv6 and mapped ranges as IPv4", () => {
    expect(normaliseAllowlistEntry("10.1.2.3/8")).toBe("10.0.0.0/8");
    expect(normaliseAllowlistEntry(" 1.2.3.4 ")).toBe("1.2.3.4/32");
    expect(normaliseAllowlistEntry("2001:0DB8:0000::1/32")).toBe("2001:db8::/32");
    expect(normaliseAllowlistEntry("::ffff:10.9.8.7/104")).toBe("10.0.0.0/8");
    expect(normaliseAllowlistEntry("::1")).toBe("::1/128");
    expect(normaliseAllowlistEntry("0.0.0.0/0")).toBe("0.0.0.0/0");
  });

  it.each(["", "hello", "1.2.3", "0x7f.0.0.1", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/", "fe80::1%eth0", "1.2.3.4/8/9", "10.0.0.0/08x"])(
    "rejects the entry %j",
    (entry) => {
      expect(parseAllowlistEntry(entry)).toBeNull();
      expect(normaliseAllowlistEntry(entry)).toBeNull();
    },
  );

  it("shows IPv4-mapped client addresses as IPv4", () => {
    expect(normaliseClientIp("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(normaliseClientIp("::1")).toBe("::1");
    expect(normaliseClientIp("192.0.2.1")).toBe("192.0.2.1");
    expect(normaliseClientIp("x".repeat(500))).toBe("x".repeat(64));
  });
});

/**
 * The reference semantics, written directly with ipaddr.js's own parsing and
 * matching: the client is ipaddr.process()ed (mapped -> IPv4); an IPv4
 * client matches an IPv4 range natively and an IPv6 range through its mapped
 * form; an IPv6 client only matches IPv6 ranges.
 */
function oracle(ip: string, entries: string[]): boolean {
  if (entries.length === 0) return true;
  const client = ipaddr.process(ip);
  return entries.some((entry) => {
    const [net, bits] = ipaddr.parseCIDR(entry.includes("/") ? entry : `${entry}/${ipaddr.parse(entry).kind() === "ipv4" ? 32 : 128}`);
    if (client.kind() === net.kind()) return client.match(net, bits);
    if (client instanceof ipaddr.IPv4 && net instanceof ipaddr.IPv6) return client.toIPv4MappedAddress().match(net, bits);
    return false;
  });
}

describe("IP allowlist matcher (property-based, against ipaddr.js semantics)", () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((p) => new ipaddr.IPv6(p).toString());
  const mapped = v4.map((a) => `::ffff:${a}`);
  const address = fc.oneof(v4, v6, mapped);

  /** A range derived from `base` (so matches happen often), or an unrelated one. */
  const entryNear = (base: string) =>
    fc.oneof(
      fc.nat(32).map((bits) => (ipaddr.parse(base).kind() === "ipv4" ? `${base}/${bits}` : `${base}/${Math.min(128, bits * 4)}`)),
      fc.nat(128).map((bits) => `${ipaddr.parse(base).kind() === "ipv4" ? ipaddr.IPv4.parse(base).toIPv4MappedAddress().toString() : base}/${bits}`),
      fc.constant(base),
      address.chain((other) => fc.nat(ipaddr.parse(other).kind() === "ipv4" ? 32 : 128).map((bits) => `${other}/${bits}`)),
    );

  it("agrees with the reference on random clients and allowlists", () => {
    fc.assert(
      fc.property(
        address,
        address.chain((seed) => fc.array(entryNear(seed), { maxLength: 5 })),
        (client, entries) => {
          // Entries as the API stores them (normalised); the oracle reads the same text.
          const stored = entries.map((e) => normaliseAllowlistEntry(e)).filter((e): e is string => e !== null);
          expect(stored).toHaveLength(entries.length);
          expect(compileAllowlist(stored)(client)).toBe(oracle(client, stored));
          // Normalising never changes what an entry matches.
          expect(compileAllowlist(stored)(client)).toBe(oracle(client, entries));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("agrees when the client is derived from the allowlist (many hits)", () => {
    fc.assert(
      fc.property(address, fc.array(fc.nat(128), { minLength: 1, maxLength: 3 }), (client, prefixes) => {
        const kind = ipaddr.process(client).kind();
        const entries = prefixes.map((p) => `${ipaddr.process(client).toString()}/${kind === "ipv4" ? p % 33 : p}`);
        expect(compileAllowlist(entries.map((e) => normaliseAllowlistEntry(e) ?? ""))(client)).toBe(true);
        expect(compileAllowlist(entries)(client)).toBe(true);
        expect(oracle(client, entries)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

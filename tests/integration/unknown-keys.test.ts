import { TokenKind, budgetHolder, createLogger, generateToken } from "@runbridge/common";
import type { AutomationKey } from "@runbridge/db";
import { KeyCache } from "../../apps/gateway/src/services/key-cache";
import { UnknownKeyGuard } from "../../apps/gateway/src/services/unknown-key-guard";
import { createFixture } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/** A logger that prints nothing and keeps every entry that passes its level. */
function keptLogger(): { logger: ReturnType<typeof createLogger>; entries: Record<string, unknown>[] } {
  const logger = createLogger("test", "warn");
  for (const t of logger.transports) t.silent = true;
  const entries: Record<string, unknown>[] = [];
  logger.on("data", (info: Record<string, unknown>) => entries.push(info));
  return { logger, entries };
}

/**
 * Tokens that name no key: their checksum is public, so anyone can make
 * well-formed ones, and each new one costs a database lookup before it can be
 * refused. Those lookups are bounded per client address; keys already known
 * are never affected, and unknown tokens never push known keys out of the cache.
 */
describe("unknown automation keys", () => {
  const LOOKUPS = 5;
  const suite = useStack({ dispatchers: 0, gateway: { UNKNOWN_KEY_LOOKUPS_PER_MINUTE: String(LOOKUPS) } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
  });

  const read = (token: string) => stack.api().get("/api/automation/v1/operations").set("Authorization", `Bearer ${token}`);

  it("looks up so many new tokens from one address a minute, then answers 429 without a lookup; known keys keep working", async () => {
    expect((await read(fx.token)).status).toBe(200); // warm
    const loadsBefore = stack.gateway.keyServices.cache.loads;
    const forged = Array.from({ length: LOOKUPS + 3 }, () => generateToken(TokenKind.AutomationKey));
    const answers = [];
    for (const token of forged) answers.push(await read(token));
    expect(answers.map((r) => r.status)).toEqual([...Array(LOOKUPS).fill(401), 429, 429, 429]);
    const refused = answers[LOOKUPS];
    expect(refused?.body).toEqual({ detail: "Too many requests with unknown API keys from 127.0.0.1; retry after the Retry-After header's seconds" });
    expect(Number(refused?.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(refused?.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect(stack.gateway.keyServices.cache.loads - loadsBefore).toBe(LOOKUPS);
    // A token already found missing is answered from the cache: 401, as before.
    expect((await read(forged[0] as string)).status).toBe(401);
    // The known key, from the same address, is unaffected.
    const ok = await read(fx.token);
    expect(ok.status).toBe(200);
  });
});

describe("the key cache", () => {
  it("never lets hashes that name no key push known keys out", async () => {
    const row = { id: "k", keyHash: "known", ipAllowlist: [] } as unknown as AutomationKey;
    const loaded: string[] = [];
    const cache = new KeyCache(
      async (hash) => {
        loaded.push(hash);
        return hash === "known" ? row : null;
      },
      { max: 3 },
    );
    cache.setLive(true);
    expect((await cache.get("known"))?.key).toBe(row);
    for (let i = 0; i < 50; i++) expect(await cache.get(`forged-${i}`)).toBeNull();
    expect((await cache.get("known"))?.key).toBe(row);
    expect(loaded.filter((h) => h === "known")).toHaveLength(1);
  });

  it("bounds lookups of unknown tokens from one address even when they all arrive at once, and says so once a minute per address", async () => {
    let loads = 0;
    const cache = new KeyCache(async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 50));
      return null;
    });
    cache.setLive(true);
    const { logger, entries } = keptLogger();
    const guard = new UnknownKeyGuard(5, logger);
    const answers = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => cache.get(`forged-${i}`, async () => void (await guard.admit("198.51.100.7", `forged-${i}`)))));
    expect(loads).toBe(5);
    expect(answers.filter((a) => a.status === "rejected")).toHaveLength(15);
    // Per /64 for IPv6: another address of the prefix is refused, another prefix is not.
    for (let i = 0; i < 5; i++) expect(await guard.admit(`2001:db8:7:7::${i + 1}`, `h${i}`)).toBe(true);
    await expect(guard.admit("2001:db8:7:7:abcd::1", "h5")).rejects.toThrow(/Too many requests with unknown API keys/);
    expect(await guard.admit("2001:db8:7:8::1", "h6")).toBe(true);
    // A lookup that could not be made gives its point back.
    await guard.failed("2001:db8:7:7::1", true);
    expect(await guard.admit("2001:db8:7:7::1", "h7")).toBe(true);
    expect([budgetHolder("2001:db8:7:7:abcd::1"), budgetHolder("::ffff:198.51.100.7"), budgetHolder("198.51.100.7")]).toEqual(["2001:db8:7:7::/64", "198.51.100.7", "198.51.100.7"]);
    // Fifteen refusals from one address and one from a /64: a line for each, not one per refusal.
    expect(entries.map((e) => [e.level, e.clientIp, e.limit])).toEqual([
      ["warn", "198.51.100.7", 5],
      ["warn", "2001:db8:7:7::/64", 5],
    ]);
    expect(String(entries[0]?.message)).toMatch(/without a lookup until its minute ends.*UNKNOWN_KEY_LOOKUPS_PER_MINUTE/);
  });

  it("never refuses, nor counts, a token it has found a key for, long after the key left the cache", async () => {
    const guard = new UnknownKeyGuard(2, keptLogger().logger);
    expect(await guard.admit("198.51.100.8", "valid")).toBe(true);
    await guard.found("198.51.100.8", "valid", true); // its point given back
    expect(await guard.admit("198.51.100.8", "forged-1")).toBe(true);
    expect(await guard.admit("198.51.100.8", "forged-2")).toBe(true);
    await expect(guard.admit("198.51.100.8", "forged-3")).rejects.toThrow(/Too many requests/);
    // The address has used up its minute, but the key found before is let through to its lookup, uncounted.
    expect(await guard.admit("198.51.100.8", "valid")).toBe(false);
  });

  it("asks before a lookup only, and a refusal stops it", async () => {
    let loads = 0;
    const cache = new KeyCache(async () => {
      loads++;
      return null;
    });
    cache.setLive(true);
    let asked = 0;
    const ask = async () => {
      asked++;
    };
    await cache.get("a", ask);
    await cache.get("a", ask); // from the cache: not asked
    expect([asked, loads]).toEqual([1, 1]);
    await expect(
      cache.get("b", async () => {
        throw new Error("refused");
      }),
    ).rejects.toThrow("refused");
    expect(loads).toBe(1);
  });
});

/** General API keys (rbk_, the management API and dashboard sign-in) are looked up by the same bound. */
describe("unknown general API keys", () => {
  const LOOKUPS = 3;
  const suite = useStack({ dispatchers: 0, gateway: { UNKNOWN_KEY_LOOKUPS_PER_MINUTE: String(LOOKUPS) } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
  });

  it("looks up so many unknown rbk_ tokens from one address a minute, then answers 429 without a lookup; known keys keep working", async () => {
    const servers = (token: string) => stack.api().get("/api/v1/servers").set("Authorization", `Bearer ${token}`);
    expect((await servers(fx.apiKey)).status).toBe(200);
    const answers = [];
    for (let i = 0; i < LOOKUPS + 1; i++) answers.push((await servers(generateToken(TokenKind.ApiKey))).status);
    expect(answers).toEqual([...Array(LOOKUPS).fill(401), 429]);
    const signIn = await stack.api().post("/dashboard/session").set("X-Requested-With", "fetch").send({ api_key: generateToken(TokenKind.ApiKey) });
    expect(signIn.status).toBe(429);
    expect(signIn.body.detail).toMatch(/Too many requests with unknown API keys from 127\.0\.0\.1/);
    expect((await servers(fx.apiKey)).status).toBe(200);
  });
});

import request from "supertest";
import { TokenKind, generateToken } from "@runbridge/common";
import type { AutomationKey, Server } from "@runbridge/db";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createOperation, createServer } from "../helpers/factories";
import { type Proc, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/**
 * What an automation key allows, enforced on the real stack: the in-process
 * gateway (socket address only, no TRUST_PROXY) and a second gateway process
 * (dual-stack listener, TRUST_PROXY=loopback) sharing Redis and PostgreSQL.
 */
describe("automation key enforcement", () => {
  let g2: Proc;
  // Declared before useStack, so it runs first: the second gateway stops before the stack does.
  afterAll(() => g2?.stop());
  const suite = useStack();
  let stack: TestStack;
  let g2Port = 0;
  let fx: Fixture;
  let idle: Server; // tenant A, no runner
  let other: Fixture; // tenant B
  let opA: string;
  let opB: string;

  const bearer = (token: string) => `Bearer ${token}`;
  const g2v4 = () => request(`http://127.0.0.1:${g2Port}`);
  const g2v6 = () => request(`http://[::1]:${g2Port}`);
  /** A cheap authenticated call: reading an operation of the key's tenant. */
  const poll = (api: ReturnType<typeof request>, token: string, opId = opA) =>
    api.get(`/api/automation/v1/operations/${opId}`).set("Authorization", bearer(token));

  async function makeOperation(tenantId: string, serverId: string): Promise<string> {
    const op = await createOperation(tenantId, serverId, { status: "completed", exitCode: 0 });
    return op.id;
  }

  async function key(scopes: Parameters<typeof createAutomationKey>[1] = {}): Promise<{ key: AutomationKey; token: string }> {
    return createAutomationKey(fx.tenant.id, scopes);
  }

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    idle = (await createServer(fx.tenant.id, "idle")).server;
    other = await createFixture();
    opA = await makeOperation(fx.tenant.id, fx.server.id);
    opB = await makeOperation(other.tenant.id, other.server.id);
    const [second] = await Promise.all([stack.startGatewayProcess({ HOST: "::", TRUST_PROXY: "loopback" }), stack.startRunner(fx.runnerToken, fx.server.id)]);
    ({ proc: g2, port: g2Port } = second);
  });

  describe("401: the key itself", () => {
    it("refuses a missing, malformed, unknown, revoked or expired key with 401 and {detail}", async () => {
      const api = stack.api();
      const missing = await api.get(`/api/automation/v1/operations/${opA}`);
      expect(missing.status).toBe(401);
      expect(missing.body.detail).toMatch(/Authorization header/);
      expect((await poll(stack.api(), "rca_short")).status).toBe(401);
      // Right shape, wrong checksum.
      const forged = `${fx.token.slice(0, -1)}${fx.token.endsWith("A") ? "B" : "A"}`;
      expect((await poll(stack.api(), forged)).body).toEqual({ detail: "Invalid API key" });
      // Well-formed and checksummed, but never issued.
      expect((await poll(stack.api(), generateToken(TokenKind.AutomationKey))).body).toEqual({ detail: "Invalid API key" });
      const revoked = await key({ revokedAt: new Date() });
      const r = await poll(stack.api(), revoked.token);
      expect(r.status).toBe(401);
      expect(r.body.detail).toMatch(/revoked/);
      const expired = await key({ expiresAt: new Date(Date.now() - 1000) });
      const e = await poll(stack.api(), expired.token);
      expect(e.status).toBe(401);
      expect(e.body.detail).toMatch(/expired/);
      // A general API key is not an automation key.
      const general = await poll(stack.api(), fx.apiKey);
      expect(general.status).toBe(401);
      expect(general.body.detail).toMatch(/automation key/);
    });

    it("lets a key work until its expiry and refuses it after, even while it is cached", async () => {
      const { token } = await key({ expiresAt: new Date(Date.now() + 1500) });
      expect((await poll(stack.api(), token)).status).toBe(200);
      expect((await poll(g2v4(), token)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1600));
      const after = await poll(stack.api(), token);
      expect(after.status).toBe(401);
      expect(after.body.detail).toMatch(/expired at/);
      expect((await poll(g2v4(), token)).status).toBe(401);
    });
  });

  describe("operation scope", () => {
    const bodies = (): Record<string, { path: string; body: Record<string, unknown> }> => ({
      exec: { path: "/exec", body: { server_id: idle.id, command: "true" } },
      deploy: { path: "/deploy", body: { application_id: appId } },
      restart: { path: "/restart", body: { server_id: idle.id, container_name: "web" } },
      reboot: { path: "/reboot", body: { server_id: idle.id } },
      registry_login: { path: "/registry-auth/login", body: { server_id: idle.id, credential_id: credId } },
      registry_logout: { path: "/registry-auth/logout", body: { server_id: idle.id, registry_url: "ghcr.io" } },
    });
    let appId = "";
    let credId = "";
    beforeAll(async () => {
      appId = (
        await testPrisma().application.create({
          data: { tenantId: fx.tenant.id, serverId: idle.id, name: "app", workingDirectory: "/srv/app", deployCommand: "true" },
        })
      ).id;
      credId = (
        await testPrisma().registryCredential.create({
          data: { tenantId: fx.tenant.id, name: "ghcr", registryUrl: "ghcr.io", registryType: "ghcr", username: "u", passwordCiphertext: "v1.x.y.z.w" },
        })
      ).id;
    });

    it.each(["exec", "deploy", "restart", "reboot", "registry_login", "registry_logout"])("%s: allowed by a key that lists it, refused (403) by one that does not", async (op) => {
      const target = bodies()[op];
      if (!target) throw new Error(`no request for ${op}`);
      const allowed = await key({ allowedOperations: [op] });
      const others = ["exec", "deploy", "restart", "reboot", "registry_login", "registry_logout"].filter((o) => o !== op);
      const refused = await key({ allowedOperations: others });
      const ok = await stack.api().post(`/api/automation/v1${target.path}`).set("Authorization", bearer(allowed.token)).send(target.body);
      // Past every scope check; stopped only because the idle server has no runner (a logout: recorded as not run).
      if (op === "registry_logout") expect({ status: ok.status, body: ok.body }).toMatchObject({ status: 200, body: { status: "completed", exit_code: 125 } });
      else expect({ status: ok.status, detail: ok.body.detail }).toEqual({ status: 409, detail: expect.stringMatching(/no connected runner/) });
      const no = await stack.api().post(`/api/automation/v1${target.path}`).set("Authorization", bearer(refused.token)).send(target.body);
      expect(no.status).toBe(403);
      expect(no.body.detail).toBe(`Operation "${op}" is not allowed for this API key`);
    });

    it("an empty operation list allows everything; the allowed operation really runs", async () => {
      const { token } = await key({ allowedOperations: ["exec"] });
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", bearer(token)).send({ server_id: fx.server.id, command: "echo scoped" });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "completed", stdout: "scoped\n" });
      const all = await stack.api().post("/api/automation/v1/restart").set("Authorization", bearer(fx.token)).send({ server_id: idle.id, container_name: "web" });
      expect(all.status).toBe(409);
    });

    it("checks the operation scope before validating the body", async () => {
      const { token } = await key({ allowedOperations: ["exec"] });
      const res = await stack.api().post("/api/automation/v1/restart").set("Authorization", bearer(token)).send({ nonsense: true });
      expect(res.status).toBe(403);
    });

    it("checks it before parsing the body or reading the Idempotency-Key: 403, never 400 or 422", async () => {
      const { token } = await key({ allowedOperations: ["exec"] });
      const deploy = () => stack.api().post("/api/automation/v1/deploy").set("Authorization", bearer(token)).set("Content-Type", "application/json");
      const refused = { detail: 'Operation "deploy" is not allowed for this API key' };
      const malformed = await deploy().send('{"application_id":');
      expect([malformed.status, malformed.body]).toEqual([403, refused]);
      const oversized = await deploy().send(JSON.stringify({ application_id: "x", pad: "y".repeat(600 * 1024) }));
      expect([oversized.status, oversized.body]).toEqual([403, refused]);
      const badKey = await deploy().set("Idempotency-Key", "a b").send({});
      expect([badKey.status, badKey.body]).toEqual([403, refused]);
      // As Express matches the route: any case, a trailing slash.
      const upper = await stack.api().post("/api/automation/v1/DEPLOY/").set("Authorization", bearer(token)).send("{");
      expect([upper.status, upper.body]).toEqual([403, refused]);
      // The allowed operation still gets its own 400 for a malformed body.
      const own = await stack.api().post("/api/automation/v1/exec").set("Authorization", bearer(token)).set("Content-Type", "application/json").send("{");
      expect(own.status).toBe(400);
    });

    it("reading, following or cancelling an operation takes the right to start one of its kind", async () => {
      const restartOnly = await key({ allowedOperations: ["restart"] });
      const refused = { detail: 'Operation "exec" is not allowed for this API key' };
      const read = await poll(stack.api(), restartOnly.token);
      expect([read.status, read.body]).toEqual([403, refused]);
      const logs = await stack.api().get(`/api/automation/v1/operations/${opA}/logs`).set("Authorization", bearer(restartOnly.token));
      expect([logs.status, logs.body]).toEqual([403, refused]);
      const cancel = await stack.api().post(`/api/automation/v1/operations/${opA}/cancel`).set("Authorization", bearer(restartOnly.token));
      expect([cancel.status, cancel.body]).toEqual([403, refused]);
      const execKey = await key({ allowedOperations: ["exec"] });
      expect((await poll(stack.api(), execKey.token)).status).toBe(200);
    });
  });

  describe("server and credential scope, tenant isolation", () => {
    it("allows the listed server and refuses another server of the tenant with 403 naming it", async () => {
      const { token } = await key({ allowedServerIds: [fx.server.id] });
      const ok = await stack.api().post("/api/automation/v1/exec").set("Authorization", bearer(token)).send({ server_id: fx.server.id, command: "echo in-scope" });
      expect(ok.status).toBe(200);
      expect(ok.body.stdout).toBe("in-scope\n");
      const no = await stack.api().post("/api/automation/v1/exec").set("Authorization", bearer(token)).send({ server_id: idle.id, command: "true" });
      expect(no.status).toBe(403);
      expect(no.body.detail).toBe(`Server ${idle.id} is not in this API key's allowed servers`);
    });

    it("answers 404, never 403, for another tenant's server, operation, application and credential", async () => {
      const scoped = await key({ allowedServerIds: [fx.server.id] });
      for (const token of [fx.token, scoped.token]) {
        const srv = await stack.api().post("/api/automation/v1/exec").set("Authorization", bearer(token)).send({ server_id: other.server.id, command: "true" });
        expect(srv.status).toBe(404);
        expect(srv.body.detail).toBe(`Server ${other.server.id} not found`);
      }
      const op = await poll(stack.api(), fx.token, opB);
      expect(op.status).toBe(404);
      const app = await testPrisma().application.create({
        data: { tenantId: other.tenant.id, serverId: other.server.id, name: "theirs", workingDirectory: "/srv", deployCommand: "true" },
      });
      const dep = await stack.api().post("/api/automation/v1/deploy").set("Authorization", bearer(scoped.token)).send({ application_id: app.id });
      expect(dep.status).toBe(404);
      const cred = await testPrisma().registryCredential.create({
        data: { tenantId: other.tenant.id, name: "theirs", registryUrl: "ghcr.io", registryType: "ghcr", username: "u", passwordCiphertext: "v1.x.y.z.w" },
      });
      const login = await stack.api().post("/api/automation/v1/registry-auth/login").set("Authorization", bearer(fx.token)).send({ server_id: idle.id, credential_id: cred.id });
      expect(login.status).toBe(404);
    });

    it("allows a listed registry credential and refuses an unlisted one of the tenant with 403 naming it", async () => {
      const mk = (name: string) =>
        testPrisma().registryCredential.create({
          data: { tenantId: fx.tenant.id, name, registryUrl: "ghcr.io", registryType: "ghcr", username: "u", passwordCiphertext: "v1.x.y.z.w" },
        });
      const [listed, unlisted] = [await mk("listed"), await mk("unlisted")];
      const { token } = await key({ allowedCredentialIds: [listed.id] });
      const login = (credential_id: string) =>
        stack.api().post("/api/automation/v1/registry-auth/login").set("Authorization", bearer(token)).send({ server_id: idle.id, credential_id });
      const ok = await login(listed.id);
      expect(ok.status).toBe(409); // past the scope; the idle server has no runner
      const no = await login(unlisted.id);
      expect(no.status).toBe(403);
      expect(no.body.detail).toBe(`Registry credential ${unlisted.id} is not in this API key's allowed credentials`);
      // Empty list = every credential of the tenant.
      const any = await stack.api().post("/api/automation/v1/registry-auth/login").set("Authorization", bearer(fx.token)).send({ server_id: idle.id, credential_id: unlisted.id });
      expect(any.status).toBe(409);
    });
  });

  describe("IP allowlist and client address", () => {
    it("allows a client inside the allowlist and refuses one outside with 403 naming its IP", async () => {
      const inside = await key({ ipAllowlist: ["127.0.0.0/8"] });
      expect((await poll(stack.api(), inside.token)).status).toBe(200);
      const outside = await key({ ipAllowlist: ["10.0.0.0/8", "2001:db8::/32"] });
      const res = await poll(stack.api(), outside.token);
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ detail: "Client IP 127.0.0.1 is not in this API key's IP allowlist" });
    });

    it("ignores a spoofed X-Forwarded-For when TRUST_PROXY is not set", async () => {
      const { token } = await key({ ipAllowlist: ["203.0.113.0/24"] });
      const res = await poll(stack.api(), token).set("X-Forwarded-For", "203.0.113.5");
      expect(res.status).toBe(403);
      expect(res.body.detail).toContain("Client IP 127.0.0.1 ");
    });

    it("honours X-Forwarded-For from a trusted proxy (TRUST_PROXY), IPv4, IPv6 and IPv4-mapped", async () => {
      const v4 = await key({ ipAllowlist: ["203.0.113.0/24"] });
      expect((await poll(g2v4(), v4.token).set("X-Forwarded-For", "203.0.113.5")).status).toBe(200);
      expect((await poll(g2v4(), v4.token).set("X-Forwarded-For", "::ffff:203.0.113.9")).status).toBe(200);
      const outside = await poll(g2v4(), v4.token).set("X-Forwarded-For", "198.51.100.1");
      expect(outside.status).toBe(403);
      expect(outside.body.detail).toContain("Client IP 198.51.100.1 ");
      // The client prepends a forged hop; the proxy appends the address it really saw: that one counts.
      const forged = await poll(g2v4(), v4.token).set("X-Forwarded-For", "203.0.113.5, 198.51.100.1");
      expect(forged.status).toBe(403);
      expect(forged.body.detail).toContain("Client IP 198.51.100.1 ");
      const v6 = await key({ ipAllowlist: ["2001:db8::/32"] });
      expect((await poll(g2v4(), v6.token).set("X-Forwarded-For", "2001:db8::5")).status).toBe(200);
      expect((await poll(g2v4(), v6.token).set("X-Forwarded-For", "2001:db9::5")).status).toBe(403);
    });

    it("matches IPv4 clients seen as IPv4-mapped IPv6 on a dual-stack socket, and real IPv6 clients", async () => {
      const v4 = await key({ ipAllowlist: ["127.0.0.1/32"] });
      // g2 listens on "::": an IPv4 client's socket address is ::ffff:127.0.0.1.
      expect((await poll(g2v4(), v4.token)).status).toBe(200);
      const viaV6 = await poll(g2v6(), v4.token);
      expect(viaV6.status).toBe(403);
      expect(viaV6.body.detail).toContain("Client IP ::1 ");
      const v6 = await key({ ipAllowlist: ["::1/128"] });
      expect((await poll(g2v6(), v6.token)).status).toBe(200);
      expect((await poll(g2v4(), v6.token)).status).toBe(403);
    });
  });

  it("records the management API's client as plain IPv4 in the audit trail on a dual-stack socket, as the Automation API's", async () => {
    // g2 listens on "::": this client's socket address is ::ffff:127.0.0.1.
    const created = await g2v4().post("/api/v1/automation-keys").set("Authorization", bearer(fx.apiKey)).send({ name: "dual-stack" });
    expect(created.status).toBe(201);
    const event = await testPrisma().auditEvent.findFirstOrThrow({ where: { type: "key.created", automationKeyId: created.body.id as string } });
    expect(event.clientIp).toBe("127.0.0.1");
  });

  describe("rate limit", () => {
    it("allows exactly N requests in a window, with rate-limit headers, then 429 with Retry-After", async () => {
      const { token } = await key({ rateLimit: 3 });
      for (let i = 0; i < 3; i++) {
        const res = await poll(stack.api(), token);
        expect(res.status).toBe(200);
        expect(res.headers["ratelimit-limit"]).toBe("3");
        expect(res.headers["ratelimit-remaining"]).toBe(String(2 - i));
        expect(res.headers["x-ratelimit-limit"]).toBe("3");
        expect(res.headers["x-ratelimit-remaining"]).toBe(String(2 - i));
        const reset = Number(res.headers["ratelimit-reset"]);
        expect(reset).toBeGreaterThanOrEqual(1);
        expect(reset).toBeLessThanOrEqual(60);
        const epochReset = Number(res.headers["x-ratelimit-reset"]);
        expect(epochReset).toBeGreaterThan(Date.now() / 1000);
        expect(epochReset).toBeLessThanOrEqual(Date.now() / 1000 + 61);
      }
      const limited = await poll(stack.api(), token);
      expect(limited.status).toBe(429);
      expect(limited.body).toEqual({ detail: expect.stringMatching(/Rate limit of 3 requests per minute exceeded/) });
      expect(limited.headers["retry-after"]).toMatch(/^\d+$/);
      const retryAfter = Number(limited.headers["retry-after"]);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers["ratelimit-remaining"]).toBe("0");
    });

    it("holds across two gateway processes sharing Redis", async () => {
      const { token } = await key({ rateLimit: 3 });
      expect((await poll(stack.api(), token)).status).toBe(200);
      expect((await poll(g2v4(), token)).status).toBe(200);
      expect((await poll(stack.api(), token)).status).toBe(200);
      const a = await poll(g2v4(), token);
      expect(a.status).toBe(429);
      expect(Number(a.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect((await poll(stack.api(), token)).status).toBe(429);
    });

    it("answers further 429s for the rest of the window from memory, without asking Redis", async () => {
      const { key: k, token } = await key({ rateLimit: 2 });
      for (let i = 0; i < 2; i++) expect((await poll(stack.api(), token)).status).toBe(200);
      expect((await poll(stack.api(), token)).status).toBe(429);
      // Forget the window in Redis: only a gateway that still asks Redis would let the key through now.
      expect(await stack.redis.del(`${stack.prefix}:ratelimit:${k.id}`)).toBe(1);
      const again = await poll(stack.api(), token);
      expect(again.status).toBe(429);
      expect(Number(again.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect((await poll(g2v4(), token)).status).toBe(200);
    });

    it("applies a changed limit at once and keeps what the window already used", async () => {
      const { key: k, token } = await key({ rateLimit: 5 });
      for (let i = 0; i < 3; i++) expect((await poll(stack.api(), token)).status).toBe(200);
      const lower = await stack.api().patch(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey)).send({ rate_limit: 3 });
      expect(lower.status).toBe(200);
      const refused = await poll(g2v4(), token);
      expect(refused.status).toBe(429);
      expect(refused.body.detail).toMatch(/Rate limit of 3 requests per minute/);
      await stack.api().patch(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey)).send({ rate_limit: 10 });
      const again = await poll(g2v4(), token);
      expect(again.status).toBe(200);
      expect(again.headers["ratelimit-limit"]).toBe("10");
      // 3 allowed + 1 refused + this one: the refused request counted too.
      expect(again.headers["ratelimit-remaining"]).toBe("5");
    });

    it("checks 401 before the IP, the IP before the rate limit, and the rate limit before the route", async () => {
      const revokedOutside = await key({ revokedAt: new Date(), ipAllowlist: ["10.0.0.0/8"] });
      expect((await poll(stack.api(), revokedOutside.token)).status).toBe(401);
      const { token } = await key({ rateLimit: 1, ipAllowlist: ["203.0.113.0/24"] });
      expect((await poll(g2v4(), token).set("X-Forwarded-For", "203.0.113.1")).status).toBe(200);
      expect((await poll(g2v4(), token).set("X-Forwarded-For", "203.0.113.1")).status).toBe(429);
      expect((await poll(g2v4(), token).set("X-Forwarded-For", "198.51.100.1")).status).toBe(403);
      // An exhausted key gets 429 even for a request the route would refuse (422 / 404).
      const bad = await g2v4().post("/api/automation/v1/exec").set("Authorization", bearer(token)).set("X-Forwarded-For", "203.0.113.1").send({ command: 5 });
      expect(bad.status).toBe(429);
    });

    it("writes one audit event per key per window however many requests are refused", async () => {
      const { key: k, token } = await key({ rateLimit: 1 });
      expect((await poll(stack.api(), token)).status).toBe(200);
      const refused = await Promise.all(Array.from({ length: 8 }, (_, i) => poll(i % 2 ? g2v4() : stack.api(), token)));
      expect(refused.map((r) => r.status)).toEqual(Array(8).fill(429));
      const events = await testPrisma().auditEvent.findMany({ where: { automationKeyId: k.id, type: "rate_limited" } });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ tenantId: fx.tenant.id, clientIp: "127.0.0.1", data: { limit: 1, window_seconds: 60, method: "GET" } });
    });
  });

  describe("hot path and propagation of changes", () => {
    it("authenticates a warm key without a PostgreSQL lookup", async () => {
      const { key: k, token } = await key();
      expect((await poll(stack.api(), token)).status).toBe(200);
      const loadsBefore = stack.gateway.keyServices.cache.loads;
      for (let i = 0; i < 5; i++) expect((await poll(stack.api(), token)).status).toBe(200);
      expect(stack.gateway.keyServices.cache.loads).toBe(loadsBefore);
      // Proof that the row is not re-read: a change written straight to the database, without
      // the API's invalidation, is not seen while the entry is cached...
      await testPrisma().automationKey.update({ where: { id: k.id }, data: { revokedAt: new Date() } });
      expect((await poll(stack.api(), token)).status).toBe(200);
      // ...and is seen as soon as the key-change message arrives.
      await stack.redis.publish(stack.keys.keyChanged, k.keyHash);
      await waitFor(async () => (await poll(stack.api(), token)).status === 401, 1000, "invalidation");
    });

    it("empties the cache when the key-change subscriber reconnects (messages may have been missed)", async () => {
      const { key: k, token } = await key();
      expect((await poll(stack.api(), token)).status).toBe(200);
      // Revoked behind the cache's back: no message is published.
      await testPrisma().automationKey.update({ where: { id: k.id }, data: { revokedAt: new Date() } });
      expect((await poll(stack.api(), token)).status).toBe(200);
      const cache = stack.gateway.keyServices.cache;
      stack.gateway.keyServices.subscriber.disconnect(true);
      await waitFor(async () => !cache.isLive, 2000, "the cache to stop being trusted");
      // While the subscription is down, every request reads PostgreSQL.
      expect((await poll(stack.api(), token)).status).toBe(401);
      await waitFor(async () => cache.isLive, 5000, "the subscription to come back");
      expect((await poll(stack.api(), token)).status).toBe(401);
    });

    it("the gateway that revokes a key refuses it on the very next request, before its own message comes back", async () => {
      const { key: k, token } = await key();
      expect((await poll(stack.api(), token)).status).toBe(200);
      const { subscriber, cache } = stack.gateway.keyServices;
      // Deaf to the channel while still trusting the cache: only the local drop can refuse the key now.
      await subscriber.unsubscribe(stack.keys.keyChanged);
      try {
        expect(cache.isLive).toBe(true);
        const del = await stack.api().delete(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey));
        expect(del.status).toBe(200);
        const r = await poll(stack.api(), token);
        expect(r.status).toBe(401);
        expect(r.body.detail).toMatch(/revoked/);
      } finally {
        await subscriber.subscribe(stack.keys.keyChanged);
      }
    });

    it("a key revoked through one gateway is refused by another gateway process within a second", async () => {
      const { key: k, token } = await key();
      // Warm both gateways' caches.
      expect((await poll(g2v4(), token)).status).toBe(200);
      expect((await poll(g2v4(), token)).status).toBe(200);
      const del = await stack.api().delete(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey));
      expect(del.status).toBe(200);
      const revokedAt = Date.now();
      const seen = await waitFor(
        async () => {
          const r = await poll(g2v4(), token);
          return r.status === 401 ? r : null;
        },
        1000,
        "the other gateway to refuse the revoked key",
      );
      expect(seen.body.detail).toMatch(/revoked/);
      expect(Date.now() - revokedAt).toBeLessThan(1000);
    });

    it("a PATCH through one gateway takes effect on another gateway process within a second", async () => {
      const { key: k, token } = await key();
      expect((await poll(g2v4(), token)).status).toBe(200);
      const patch = await stack.api().patch(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey)).send({ ip_allowlist: ["10.0.0.0/8"] });
      expect(patch.status).toBe(200);
      const changedAt = Date.now();
      await waitFor(async () => (await poll(g2v4(), token)).status === 403, 1000, "the other gateway to apply the new allowlist");
      expect(Date.now() - changedAt).toBeLessThan(1000);
    });

    it("records last_used_at and last_used_ip behind the request, without touching updated_at", async () => {
      const { key: k, token } = await key();
      expect(k.lastUsedAt).toBeNull();
      expect((await poll(stack.api(), token)).status).toBe(200);
      const used = await waitFor(async () => {
        const row = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: k.id } });
        return row.lastUsedAt ? row : null;
      }, 10_000);
      expect(used.lastUsedIp).toBe("127.0.0.1");
      expect(used.updatedAt.getTime()).toBe(k.updatedAt.getTime());
      const view = await stack.api().get(`/api/v1/automation-keys/${k.id}`).set("Authorization", bearer(fx.apiKey));
      expect(view.body).toMatchObject({ last_used_at: used.lastUsedAt?.toISOString(), last_used_ip: "127.0.0.1" });
    });
  });
});

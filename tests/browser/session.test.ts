import { createHash } from "node:crypto";
import request from "supertest";
import { createApp } from "../../apps/gateway/src/app";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/** The dashboard's session cookie as an alternative to Bearer keys on the management API, and its CSRF guard. */
describe("dashboard sessions", () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.start();
  });
  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
  });

  const signIn = (apiKey: string) => stack.api().post("/dashboard/session").set("X-Requested-With", "runbridge-dashboard").send({ api_key: apiKey });

  async function session() {
    const t = await createTenant();
    const res = await signIn(t.apiKey);
    expect(res.status).toBe(201);
    const setCookie = ([] as string[]).concat(res.headers["set-cookie"] ?? []);
    const raw = setCookie.find((c) => c.startsWith("rb_session="));
    if (!raw) throw new Error("no session cookie");
    const id = raw.slice("rb_session=".length).split(";")[0] ?? "";
    return { ...t, raw, id, cookie: `rb_session=${id}`, csrf: res.body.csrf_token as string, body: res.body };
  }

  it("refuses sign-in without the X-Requested-With header (no login CSRF from a cross-site form)", async () => {
    const t = await createTenant();
    const res = await stack.api().post("/dashboard/session").send({ api_key: t.apiKey });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/X-Requested-With/);
    expect(res.headers["set-cookie"]).toBeUndefined();
  });

  it("names the missing field and refuses automation keys and unknown keys with {detail}", async () => {
    const missing = await stack.api().post("/dashboard/session").set("X-Requested-With", "x").send({});
    expect(missing.status).toBe(422);
    expect(missing.body.detail).toMatch(/"api_key" is required/);
    const t = await createTenant();
    const { token } = await createAutomationKey(t.tenant.id);
    const automation = await signIn(token);
    expect(automation.status).toBe(401);
    expect(automation.body.detail).toMatch(/general API key/);
    const wrong = await signIn("rbk_definitely_not_valid");
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ detail: "Invalid API key" });
  });

  it("sets an HttpOnly SameSite=Strict cookie (Secure only over TLS) and stores the session hashed, without the key", async () => {
    const s = await session();
    expect(s.raw).toMatch(/HttpOnly/i);
    expect(s.raw).toMatch(/SameSite=Strict/i);
    expect(s.raw).toMatch(/Path=\//);
    expect(s.raw).not.toMatch(/Secure/i);
    expect(s.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(s.body)).not.toContain(s.apiKey);
    expect(s.body).toMatchObject({ tenant_id: s.tenant.id, tenant_name: s.tenant.name, csrf_token: expect.any(String) });

    const keys = await stack.redis.keys(`${stack.prefix}:dashboard-session:*`);
    const hashed = `${stack.prefix}:dashboard-session:${createHash("sha256").update(s.id).digest("hex")}`;
    expect(keys).toContain(hashed);
    expect(keys.join()).not.toContain(s.id);
    const stored = (await stack.redis.get(hashed)) ?? "";
    expect(stored).not.toContain(s.apiKey);
    expect(await stack.redis.ttl(hashed)).toBeGreaterThan(3600);

    // Behind a TLS-terminating proxy the gateway trusts, the cookie is Secure.
    const behindProxy = createApp({ ...stack.gateway, config: { ...stack.gateway.config, TRUST_PROXY: "1" } });
    const tls = await request(behindProxy).post("/dashboard/session").set("X-Forwarded-Proto", "https").set("X-Requested-With", "x").send({ api_key: s.apiKey });
    expect(tls.status).toBe(201);
    expect(([] as string[]).concat(tls.headers["set-cookie"] ?? []).join()).toMatch(/;\s*Secure/i);
  });

  it("names the cookie __Host-rb_session over TLS, and there takes no plain rb_session, which a sibling subdomain could plant", async () => {
    const s = await session();
    const behindProxy = createApp({ ...stack.gateway, config: { ...stack.gateway.config, TRUST_PROXY: "1" } });
    const overTls = (r: request.Test) => r.set("X-Forwarded-Proto", "https");
    const signedIn = await overTls(request(behindProxy).post("/dashboard/session")).set("X-Requested-With", "x").send({ api_key: s.apiKey });
    expect(signedIn.status).toBe(201);
    const raw = ([] as string[]).concat(signedIn.headers["set-cookie"] ?? []).find((c) => c.startsWith("__Host-rb_session=")) ?? "";
    // What browsers require of the prefix: Secure, Path=/, no Domain.
    expect(raw).toMatch(/;\s*Secure/i);
    expect(raw).toMatch(/;\s*Path=\/(;|$)/);
    expect(raw).not.toMatch(/Domain=/i);
    const id = raw.slice("__Host-rb_session=".length).split(";")[0] ?? "";
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const servers = (cookie: string) => overTls(request(behindProxy).get("/api/v1/servers")).set("Cookie", cookie);
    expect((await servers(`__Host-rb_session=${id}`)).status).toBe(200);
    // A plain cookie over TLS is no session, even a valid one (an attacker's own, planted for this host)...
    const planted = await servers(`rb_session=${s.id}`);
    expect(planted.status).toBe(401);
    expect(planted.body.detail).toMatch(/Authorization/);
    // ...and one planted beside the real cookie changes nothing: neither signs the user out nor takes over.
    expect((await servers(`rb_session=broken; __Host-rb_session=${id}`)).status).toBe(200);
    const other = await session();
    const both = await servers(`rb_session=${other.id}; __Host-rb_session=${id}`);
    expect(both.status).toBe(200);
    const mine = await request(behindProxy).get("/dashboard/session").set("X-Forwarded-Proto", "https").set("Cookie", `rb_session=${other.id}; __Host-rb_session=${id}`);
    expect(mine.body.tenant_id).toBe(s.tenant.id);

    const out = await overTls(request(behindProxy).delete("/dashboard/session")).set("Cookie", `__Host-rb_session=${id}`).set("X-CSRF-Token", signedIn.body.csrf_token as string);
    expect(out.status).toBe(204);
    expect(([] as string[]).concat(out.headers["set-cookie"] ?? []).join()).toMatch(/__Host-rb_session=;.*Secure/i);
    expect((await servers(`__Host-rb_session=${id}`)).status).toBe(401);
  });

  it("marks every API answer as not to be rendered, framed, sniffed or cached, and HSTS over TLS only", async () => {
    const s = await session();
    const expectApiHeaders = (res: { headers: Record<string, string | undefined> }, what: string) => {
      expect([what, res.headers["x-content-type-options"], res.headers["cache-control"]]).toEqual([what, "nosniff", "no-store"]);
    };
    const servers = await stack.api().get("/api/v1/servers").set("Cookie", s.cookie);
    expect(servers.status).toBe(200);
    expectApiHeaders(servers, "management read");
    expect(servers.headers["content-security-policy"]).toBe("default-src 'none';frame-ancestors 'none'");
    expect(servers.headers["x-frame-options"]).toBe("DENY");
    expect(servers.headers["strict-transport-security"]).toBeUndefined();
    expectApiHeaders(await stack.api().get("/api/v1/nope").set("Cookie", s.cookie), "unknown route");
    // Refused before Express (the front door) and by Express's error middleware.
    const refused = await stack.api().get(`/api/automation/v1/operations/${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}`).set("Authorization", "Bearer rca_nope");
    expect(refused.status).toBe(401);
    expectApiHeaders(refused, "front door refusal");
    expectApiHeaders(await stack.api().get("/api/v1/servers"), "management 401");
    expectApiHeaders(await stack.api().get("/dashboard/session"), "dashboard session 401");

    const behindProxy = createApp({ ...stack.gateway, config: { ...stack.gateway.config, TRUST_PROXY: "1" } });
    const tls = await request(behindProxy).get("/api/v1/servers").set("X-Forwarded-Proto", "https").set("Cookie", s.cookie);
    expect(tls.headers["strict-transport-security"]).toBe("max-age=31536000");
    // The dashboard's pages keep their own policy.
    const index = await stack.api().get("/dashboard/");
    expect(index.headers["content-security-policy"]).toMatch(/script-src 'self'/);
  });

  it("parses a body on /dashboard only for sign-in, and only a small one", async () => {
    // Elsewhere under /dashboard nothing is parsed: broken JSON is not even read (a 404, not a 400).
    const elsewhere = await stack.api().post("/dashboard/nope").set("Content-Type", "application/json").send("{");
    expect(elsewhere.status).toBe(404);
    const big = await stack.api().post("/dashboard/session").set("X-Requested-With", "x").send({ api_key: "rbk_x", pad: "x".repeat(8000) });
    expect(big.status).toBe(422);
    expect(big.body.detail).toMatch(/too large \(a sign-in takes an API key only\)/);
    expect((await stack.api().post("/dashboard/session").set("X-Requested-With", "x").set("Content-Type", "application/json").send("{")).status).toBe(400);
  });

  it("authenticates the management API by cookie, scoped to the session's tenant", async () => {
    const s = await session();
    const other = await createTenant();
    const mine = await createServer(s.tenant.id, "mine");
    await createServer(other.tenant.id, "theirs");
    const res = await stack.api().get("/api/v1/servers").set("Cookie", s.cookie);
    expect(res.status).toBe(200);
    expect(res.body.data.map((x: { id: string }) => x.id)).toEqual([mine.server.id]);
    // Use through the dashboard counts as use of the key.
    await waitFor(async () => (await testPrisma().apiKey.findFirst({ where: { tenantId: s.tenant.id } }))?.lastUsedAt, 5000, "last_used_at");
    const again = await stack.api().get("/dashboard/session").set("Cookie", s.cookie);
    expect(again.status).toBe(200);
    expect(again.body.csrf_token).toBe(s.csrf);
  });

  it("requires the session's CSRF token for cookie-authenticated changes", async () => {
    const s = await session();
    const none = await stack.api().post("/api/v1/servers").set("Cookie", s.cookie).send({ name: "no-csrf" });
    expect(none.status).toBe(403);
    expect(none.body.detail).toMatch(/X-CSRF-Token/);
    const wrong = await stack.api().post("/api/v1/servers").set("Cookie", s.cookie).set("X-CSRF-Token", `${s.csrf.slice(0, -2)}xx`).send({ name: "bad-csrf" });
    expect(wrong.status).toBe(403);
    const other = await session();
    const foreign = await stack.api().post("/api/v1/servers").set("Cookie", s.cookie).set("X-CSRF-Token", other.csrf).send({ name: "foreign-csrf" });
    expect(foreign.status).toBe(403);
    expect(await testPrisma().server.count({ where: { tenantId: s.tenant.id } })).toBe(0);

    const ok = await stack.api().post("/api/v1/servers").set("Cookie", s.cookie).set("X-CSRF-Token", s.csrf).send({ name: "with-csrf" });
    expect(ok.status).toBe(201);
    expect(ok.body.runner_token).toMatch(/^rbr_/);
  });

  it("lets an Authorization header take precedence over a cookie", async () => {
    const s = await session();
    const bad = await stack.api().get("/api/v1/servers").set("Cookie", s.cookie).set("Authorization", "Bearer rbk_wrong");
    expect(bad.status).toBe(401);
    const bearer = await stack.api().post("/api/v1/servers").set("Authorization", `Bearer ${s.apiKey}`).send({ name: "bearer-needs-no-csrf" });
    expect(bearer.status).toBe(201);
  });

  it("ends every session of a general API key when that key is revoked", async () => {
    const s = await session();
    await testPrisma().apiKey.updateMany({ where: { tenantId: s.tenant.id }, data: { revokedAt: new Date() } });
    const res = await stack.api().get("/api/v1/servers").set("Cookie", s.cookie);
    expect(res.status).toBe(401);
    expect(res.body.detail).toMatch(/revoked/);
    expect((await stack.api().get("/dashboard/session").set("Cookie", s.cookie)).status).toBe(401);
  });

  it("signs out only with the CSRF token, and the cookie then stops working", async () => {
    const s = await session();
    expect((await stack.api().delete("/dashboard/session").set("Cookie", s.cookie)).status).toBe(403);
    const out = await stack.api().delete("/dashboard/session").set("Cookie", s.cookie).set("X-CSRF-Token", s.csrf);
    expect(out.status).toBe(204);
    expect(([] as string[]).concat(out.headers["set-cookie"] ?? []).join()).toMatch(/rb_session=;.*Expires=Thu, 01 Jan 1970/);
    const after = await stack.api().get("/api/v1/servers").set("Cookie", s.cookie);
    expect(after.status).toBe(401);
    expect(after.body.detail).toMatch(/sign in again/);
  });

  it("serves the app with a strict CSP, falls back to index.html for client routes, and 404s unknown assets as {detail}", async () => {
    const bare = await stack.api().get("/dashboard");
    expect(bare.status).toBe(301);
    expect(bare.headers.location).toBe("/dashboard/");
    const index = await stack.api().get("/dashboard/");
    expect(index.status).toBe(200);
    expect(index.text).toContain('<div id="root"></div>');
    expect(index.headers["content-security-policy"]).toMatch(/script-src 'self'/);
    expect(index.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
    expect(index.headers["x-frame-options"]).toBe("DENY");
    const deep = await stack.api().get("/dashboard/logs?automation_key_id=x");
    expect(deep.status).toBe(200);
    expect(deep.text).toBe(index.text);
    const asset = index.text.match(/\/dashboard\/assets\/[^"]+\.js/)?.[0];
    expect(asset).toBeDefined();
    const js = await stack.api().get(asset ?? "");
    expect(js.status).toBe(200);
    expect(js.headers["cache-control"]).toMatch(/immutable/);
    const missing = await stack.api().get("/dashboard/assets/nope-123.js");
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toEqual(expect.any(String));
  });

  it("answers an unknown /dashboard/api path with a JSON 404, never the app's index.html", async () => {
    const s = await session();
    for (const p of ["/dashboard/api/nope", "/dashboard/api", "/dashboard/api/", "/dashboard/api/operations/00000000-0000-4000-8000-000000000000/nope"]) {
      for (const auth of [{}, { Cookie: s.cookie }]) {
        const res = await stack.api().get(p).set(auth);
        expect({ p, status: res.status, type: res.headers["content-type"] }).toEqual({ p, status: 404, type: expect.stringMatching(/^application\/json/) });
        expect(res.body).toEqual({ detail: expect.stringContaining(p) });
      }
    }
    const post = await stack.api().post("/dashboard/api/nope").set("Cookie", s.cookie).set("X-CSRF-Token", s.csrf).send({});
    expect(post.status).toBe(404);
    expect(post.body.detail).toEqual(expect.any(String));
    // A client route still loads the app.
    expect((await stack.api().get("/dashboard/apis")).text).toContain('<div id="root"></div>');
  });

  it("answers an unknown path below /dashboard/session with a JSON 404, and keeps the session routes and client routes", async () => {
    const s = await session();
    for (const p of ["/dashboard/session/nope", "/dashboard/session/nope/deeper", "/dashboard/session/csrf"]) {
      for (const auth of [{}, { Cookie: s.cookie }]) {
        const res = await stack.api().get(p).set(auth);
        expect({ p, status: res.status, type: res.headers["content-type"] }).toEqual({ p, status: 404, type: expect.stringMatching(/^application\/json/) });
        expect(res.body).toEqual({ detail: expect.stringContaining(p) });
      }
    }
    const del = await stack.api().delete("/dashboard/session/nope").set("Cookie", s.cookie).set("X-CSRF-Token", s.csrf);
    expect(del.status).toBe(404);
    expect(del.body.detail).toEqual(expect.any(String));
    // The session itself answers as before (with or without a trailing slash), and was not ended by the DELETE above.
    for (const p of ["/dashboard/session", "/dashboard/session/"]) {
      const res = await stack.api().get(p).set("Cookie", s.cookie);
      expect({ p, status: res.status }).toEqual({ p, status: 200 });
      expect(res.body.csrf_token).toBe(s.csrf);
    }
    expect((await stack.api().get("/dashboard/session")).status).toBe(401);
    // Client routes that only start like it still load the app.
    expect((await stack.api().get("/dashboard/sessions")).text).toContain('<div id="root"></div>');
  });

  it("reads one operation and its live output only within the session's tenant", async () => {
    const s = await session();
    const other = await createTenant();
    const { server } = await createServer(other.tenant.id);
    const op = await createOperation(other.tenant.id, server.id, { timeoutSeconds: 5 });
    const res = await stack.api().get(`/dashboard/api/operations/${op.id}`).set("Cookie", s.cookie);
    expect(res.status).toBe(404);
    expect((await stack.api().get(`/dashboard/api/operations/${op.id}/output`).set("Cookie", s.cookie)).status).toBe(404);
    expect((await stack.api().get("/dashboard/api/operations/not-a-uuid").set("Cookie", s.cookie)).status).toBe(404);
    const bad = await stack.api().get(`/dashboard/api/operations/${op.id}/output?after=zzz`).set("Cookie", s.cookie);
    expect(bad.status).toBe(422);
    expect(bad.body.detail).toMatch(/"after"/);
    const theirs = await stack.api().get(`/dashboard/api/operations/${op.id}`).set("Authorization", `Bearer ${other.apiKey}`);
    expect(theirs.status).toBe(200);
    expect(theirs.body).toMatchObject({ operation_id: op.id, status: "running", result: null });
    const noAuth = await stack.api().get(`/dashboard/api/operations/${op.id}`);
    expect(noAuth.status).toBe(401);
  });

  it("reads operations by id (the Logs list's refresh of older rows) only within the session's tenant, at most 100 at once", async () => {
    const s = await session();
    const mine = await createServer(s.tenant.id);
    const running = await createOperation(s.tenant.id, mine.server.id, { command: "echo mine-running" });
    const done = await createOperation(s.tenant.id, mine.server.id, { command: "echo mine-done", status: "completed", exitCode: 0, completedAt: new Date() });
    const other = await createTenant();
    const theirs = await createOperation(other.tenant.id, (await createServer(other.tenant.id)).server.id);
    const byIds = (ids: string[]) => stack.api().get(`/dashboard/api/operations?ids=${ids.join(",")}`).set("Cookie", s.cookie);

    const res = await byIds([running.id, done.id, theirs.id, "00000000-0000-4000-8000-000000000000"]);
    expect(res.status).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    // The same shape as the management list's items without output (the Logs list shows statuses only);
    // another tenant's operation is left out like an unknown one.
    const list = await stack.api().get(`/api/v1/operations?server_id=${mine.server.id}&output=false`).set("Cookie", s.cookie);
    expect(res.body).toEqual({ data: list.body.data });
    expect(res.body.data.map((o: { operation_id: string; status: string }) => [o.operation_id, o.status])).toEqual([
      [done.id, "completed"],
      [running.id, "running"],
    ]);

    const hundredOne = Array.from({ length: 101 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`);
    expect((await byIds(hundredOne.slice(0, 100))).status).toBe(200);
    const tooMany = await byIds(hundredOne);
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.detail).toMatch(/"ids" must contain less than or equal to 100 items/);
    expect((await byIds(["not-a-uuid"])).status).toBe(422);
    expect((await stack.api().get("/dashboard/api/operations").set("Cookie", s.cookie)).status).toBe(422);
    expect((await stack.api().get(`/dashboard/api/operations?ids=${running.id}`)).status).toBe(401);
  });
});

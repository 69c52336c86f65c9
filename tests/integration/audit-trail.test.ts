import { hashToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createOperation, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/**
 * What the audit trail says after an incident: who changed what (the general key, through the API
 * or a dashboard session), and what a known automation key was refused — the traces of a leaked key —
 * with nothing lost when the event cannot be written at the first try.
 */
describe("audit trail", () => {
  const suite = useStack();
  let stack: TestStack;
  let fx: Fixture;
  let generalKeyId: string;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    generalKeyId = (await testPrisma().apiKey.findUniqueOrThrow({ where: { keyHash: hashToken(fx.apiKey) } })).id;
  });

  /** Makes inserts of audit events of `type` for the fixture's tenant fail, until the returned function is called. */
  async function failAuditInserts(type: string): Promise<() => Promise<void>> {
    const name = `rb_test_fail_${type.replace(/\W/g, "_")}_${fx.tenant.id.slice(0, 8)}`;
    const db = testPrisma();
    await db.$executeRawUnsafe(
      `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         IF NEW.tenant_id = '${fx.tenant.id}' AND NEW.type = '${type}' THEN RAISE EXCEPTION 'audit insert refused by the test'; END IF;
         RETURN NEW; END $$`,
    );
    await db.$executeRawUnsafe(`CREATE TRIGGER ${name} BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION ${name}()`);
    return async () => {
      await db.$executeRawUnsafe(`DROP TRIGGER ${name} ON audit_events`);
      await db.$executeRawUnsafe(`DROP FUNCTION ${name}()`);
    };
  }

  const signIn = () => stack.api().post("/dashboard/session").set("X-Requested-With", "test").send({ api_key: fx.apiKey });
  const sessionOf = (res: { headers: Record<string, unknown>; body: { csrf_token: string } }) => ({
    cookie: String((res.headers["set-cookie"] as string[])[0]).split(";")[0] as string,
    csrf: res.body.csrf_token,
  });
  const events = (where: Record<string, unknown>) => testPrisma().auditEvent.findMany({ where: { tenantId: fx.tenant.id, ...where }, orderBy: { createdAt: "asc" } });

  describe("management changes name who made them", () => {
    it("through the API with a general key, and through a dashboard session signed in with it", async () => {
      const viaApi = await stack.api().post("/api/v1/automation-keys").set("Authorization", `Bearer ${fx.apiKey}`).send({ name: "actor-api", ip_allowlist: ["10.0.0.0/8"] });
      expect(viaApi.status).toBe(201);
      const session = sessionOf(await signIn());
      const viaDashboard = await stack.api().patch(`/api/v1/automation-keys/${viaApi.body.id}`).set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf).send({ ip_allowlist: [] });
      expect(viaDashboard.status).toBe(200);
      const revoked = await stack.api().delete(`/api/v1/automation-keys/${viaApi.body.id}`).set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf);
      expect(revoked.status).toBe(200);
      const server = await stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: "hetzner", provider_server_id: "42", provider_token: "t0ken" });
      expect(server.status).toBe(200);
      const relinked = await stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf).send({ provider: "hetzner", provider_server_id: "43", provider_token: "an0ther" });
      expect(relinked.status).toBe(200);

      const keyEvents = await events({ automationKeyId: viaApi.body.id });
      expect(keyEvents.map((e) => [e.type, e.data])).toEqual([
        ["key.created", expect.objectContaining({ by_api_key_id: generalKeyId, via: "api" })],
        ["key.updated", expect.objectContaining({ by_api_key_id: generalKeyId, via: "dashboard", changes: { ip_allowlist: { from: ["10.0.0.0/8"], to: [] } } })],
        ["key.revoked", { by_api_key_id: generalKeyId, via: "dashboard" }],
      ]);
      const links = await events({ type: "server.provider_linked", serverId: fx.server.id });
      expect(links.map((e) => e.data)).toEqual([
        { provider: "hetzner", provider_server_id: "42", previous_provider: null, previous_provider_server_id: null, provider_token: "set", by_api_key_id: generalKeyId, via: "api" },
        { provider: "hetzner", provider_server_id: "43", previous_provider: "hetzner", previous_provider_server_id: "42", provider_token: "replaced", by_api_key_id: generalKeyId, via: "dashboard" },
      ]);
      expect(JSON.stringify(links)).not.toMatch(/t0ken|an0ther/);
    });

    it("records what two concurrent provider links each replaced, as they were applied one after the other", async () => {
      const { server } = await createServer(fx.tenant.id);
      const patch = (body: Record<string, unknown>) => stack.api().patch(`/api/v1/servers/${server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send(body);
      const db = testPrisma();
      // The row held while both requests arrive: each has read it, unlinked, before either can change it.
      let both: Promise<Awaited<ReturnType<typeof patch>>[]> | undefined;
      await db.$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT id FROM servers WHERE id = ${server.id}::uuid FOR UPDATE`;
          const [holder] = await tx.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
          both = Promise.all([patch({ provider: "hetzner", provider_server_id: "1", provider_token: "tok-one" }), patch({ provider: "hetzner", provider_server_id: "2", provider_token: "tok-two" })]);
          await waitFor(
            // Behind the holder, or behind the other request (which waits first): PostgreSQL queues row lock waiters.
            async () =>
              (
                await db.$queryRaw<{ n: number }[]>`
                  WITH RECURSIVE behind(pid) AS (
                    SELECT ${holder?.pid ?? 0}::int
                    UNION SELECT a.pid FROM pg_stat_activity a JOIN behind b ON b.pid = ANY(pg_blocking_pids(a.pid)))
                  SELECT (count(*) - 1)::int AS n FROM behind`
              )[0]?.n === 2,
            10_000,
            "both links to wait for the row",
          );
        },
        { timeout: 20_000 },
      );
      const answers = await both;
      expect(answers?.map((a) => a.status)).toEqual([200, 200]);
      const links = (await events({ type: "server.provider_linked", serverId: server.id })).map((e) => e.data as Record<string, unknown>);
      expect(links.map((l) => l.provider_token)).toEqual(["set", "replaced"]);
      expect(links[1]?.previous_provider_server_id).toBe(links[0]?.provider_server_id);
    });

    it("refuses a dashboard sign-in whose audit event cannot be written, and records sign-outs", async () => {
      const allow = await failAuditInserts("dashboard.signed_in");
      try {
        const refused = await signIn();
        expect(refused.status).toBeGreaterThanOrEqual(500);
        expect(refused.headers["set-cookie"]).toBeUndefined();
      } finally {
        await allow();
      }
      const before = (await events({ type: "dashboard.signed_in" })).length;
      const signedIn = await signIn();
      expect(signedIn.status).toBe(201);
      expect(await events({ type: "dashboard.signed_in" })).toHaveLength(before + 1);
      const session = sessionOf(signedIn);
      expect((await stack.api().delete("/dashboard/session").set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf)).status).toBe(204);
      const out = await events({ type: "dashboard.signed_out" });
      expect(out.at(-1)).toMatchObject({ clientIp: expect.stringMatching(/127\.0\.0\.1/), data: { api_key_id: generalKeyId } });
    });
  });

  describe("refusals of a known automation key", () => {
    const poll = (token: string, opId: string) => stack.api().get(`/api/automation/v1/operations/${opId}`).set("Authorization", `Bearer ${token}`);
    const exec = (token: string, serverId = fx.server.id) => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send({ server_id: serverId, command: "true" });

    it("are recorded once per key and reason a minute: revoked, expired, outside the allowlist, outside the scope", async () => {
      const op = await createOperation(fx.tenant.id, fx.server.id, { status: "completed", exitCode: 0 });
      const { server: elsewhere } = await createServer(fx.tenant.id);
      const cases = [
        { reason: "revoked", scopes: { revokedAt: new Date() }, send: (t: string) => poll(t, op.id), status: 401 },
        { reason: "expired", scopes: { expiresAt: new Date(Date.now() - 1000) }, send: (t: string) => poll(t, op.id), status: 401 },
        { reason: "ip_not_allowed", scopes: { ipAllowlist: ["10.0.0.0/8"] }, send: (t: string) => poll(t, op.id), status: 403 },
        { reason: "operation_not_allowed", scopes: { allowedOperations: ["restart"] }, send: (t: string) => exec(t), status: 403 },
        { reason: "server_not_allowed", scopes: { allowedServerIds: [elsewhere.id] }, send: (t: string) => exec(t), status: 403 },
      ];
      for (const c of cases) {
        const { key, token } = await createAutomationKey(fx.tenant.id, c.scopes);
        for (let i = 0; i < 3; i++) expect([c.reason, (await c.send(token)).status]).toEqual([c.reason, c.status]);
        const recorded = await events({ automationKeyId: key.id });
        expect([c.reason, recorded.map((e) => [e.type, e.clientIp, e.data])]).toEqual([
          c.reason,
          [["request.refused", "127.0.0.1", { reason: c.reason, status: c.status, detail: expect.any(String), method: expect.stringMatching(/^(GET|POST)$/), path: expect.stringMatching(/^\/api\/automation\/v1\//) }]],
        ]);
      }
    });

    it("writes a window's rate_limited event on a later refusal when the first could not be written", async () => {
      const { key, token } = await createAutomationKey(fx.tenant.id, { rateLimit: 1 });
      const op = await createOperation(fx.tenant.id, fx.server.id, { status: "completed", exitCode: 0 });
      expect((await poll(token, op.id)).status).toBe(200);
      const allow = await failAuditInserts("rate_limited");
      try {
        expect((await poll(token, op.id)).status).toBe(429);
      } finally {
        await allow();
      }
      expect(await events({ automationKeyId: key.id, type: "rate_limited" })).toHaveLength(0);
      // Tried again by a refusal a few seconds later (not by every one of a flood against a failing database).
      const written = async () => {
        expect((await poll(token, op.id)).status).toBe(429);
        return (await events({ automationKeyId: key.id, type: "rate_limited" })).length > 0 || null;
      };
      await waitFor(written, 20_000, "the window's rate_limited event");
      for (let i = 0; i < 2; i++) expect((await poll(token, op.id)).status).toBe(429);
      expect(await events({ automationKeyId: key.id, type: "rate_limited" })).toHaveLength(1);
    });
  });
});

import path from "node:path";
import request from "supertest";
import { TokenKind, generateToken, hashToken } from "@runbridge/common";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { ROOT, waitFor } from "../helpers/processes";
import { useStack } from "../helpers/suite";

/**
 * Every time of an operation and of the audit trail is PostgreSQL's, whichever process writes it: the
 * trail is ordered by created_at, and an operation's times are read against each other. A gateway ten
 * minutes behind used to stamp what it wrote by its own clock — created_at through Prisma's
 * @default(now()), which Prisma fills in from the writing process's clock, and a cancel's completed_at —
 * so a cancelled operation ended ten minutes before it was created.
 */
describe("a gateway whose clock is off", () => {
  const suite = useStack();
  const SKEW_MS = -600_000;

  const gatewayOff = () => suite.stack.startGatewayProcess({ NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: String(SKEW_MS) });

  /** How far `at` is from PostgreSQL's now(), in ms. */
  const fromPostgresNow = async (at: Date | null): Promise<number> => {
    const [row] = await testPrisma().$queryRaw<{ now: Date }[]>`SELECT now() AS now`;
    return Math.abs((at?.getTime() ?? NaN) - (row?.now.getTime() ?? NaN));
  };

  it("stamps the cancel of an operation and its audit events by PostgreSQL's clock", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const gateway = await gatewayOff();
    // No runner: it waits undelivered, so the cancel ends it at the gateway.
    const op = await createOperation(fx.tenant.id, fx.server.id, { redisPrefix: stack.prefix });
    const res = await request(gateway.url).post(`/api/automation/v1/operations/${op.id}/cancel`).set("Authorization", `Bearer ${fx.token}`).send({});
    expect(res.body).toMatchObject({ status: "cancelled", cancel_requested: true });
    const ended = await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } });
    expect(ended.completedAt?.getTime()).toBeGreaterThanOrEqual(ended.createdAt.getTime());
    expect(await fromPostgresNow(ended.completedAt)).toBeLessThan(30_000);
    const events = await testPrisma().auditEvent.findMany({ where: { operationId: op.id }, orderBy: { createdAt: "asc" } });
    expect(events.map((e) => e.type)).toEqual(["operation.cancel_requested", "operation.finished"]);
    for (const e of events) expect(await fromPostgresNow(e.createdAt)).toBeLessThan(30_000);
  });

  it("stamps what it creates (a server, its audit event) by PostgreSQL's clock", async () => {
    const fx = await createFixture();
    const gateway = await gatewayOff();
    const res = await request(gateway.url).post("/api/v1/servers").set("Authorization", `Bearer ${fx.apiKey}`).send({ name: "clock-off" });
    expect(res.status).toBe(201);
    expect(await fromPostgresNow(new Date(res.body.created_at))).toBeLessThan(30_000);
    const event = await testPrisma().auditEvent.findFirstOrThrow({ where: { tenantId: fx.tenant.id, type: "server.created" } });
    expect(await fromPostgresNow(event.createdAt)).toBeLessThan(30_000);
  });

  it("revokes keys by PostgreSQL's clock, and once: two revocations at the same moment are one audit event", async () => {
    const fx = await createFixture();
    const gateway = await gatewayOff();
    const apiKey = await testPrisma().apiKey.create({ data: { tenantId: fx.tenant.id, name: "second", keyHash: hashToken(generateToken(TokenKind.ApiKey)), prefix: "rbk_x" } });
    const revoke = (path: string) => request(gateway.url).delete(path).set("Authorization", `Bearer ${fx.apiKey}`);
    const [a, b] = await Promise.all([revoke(`/api/v1/automation-keys/${fx.key.id}`), revoke(`/api/v1/automation-keys/${fx.key.id}`)]);
    const [c, d] = await Promise.all([revoke(`/api/v1/api-keys/${apiKey.id}`), revoke(`/api/v1/api-keys/${apiKey.id}`)]);
    for (const res of [a, b, c, d]) expect(res.body).toMatchObject({ status: "revoked" });
    expect(await fromPostgresNow(new Date(a.body.revoked_at))).toBeLessThan(30_000);
    expect(await fromPostgresNow(new Date(c.body.revoked_at))).toBeLessThan(30_000);
    expect(await testPrisma().auditEvent.count({ where: { tenantId: fx.tenant.id, type: { in: ["key.revoked", "api_key.revoked"] } } })).toBe(2);
  });

  it("holds a synchronous exec no longer than EXEC_MAX_WAIT_SECONDS when its clock is set back meanwhile", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id);
    const gateway = await suite.stack.startGatewayProcess({
      NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`,
      TEST_CLOCK_STEP_MS: String(SKEW_MS),
      EXEC_MAX_WAIT_SECONDS: "2",
    });
    const sentAt = performance.now();
    const answer = request(gateway.url).post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "sleep 8" });
    const answered = answer.then((r) => r);
    // Ten minutes back while it waits (its job enqueued, so its wait begun): by the wall clock, the wait's end
    // would be ten minutes away.
    await waitFor(async () => (await testPrisma().operation.findFirst({ where: { serverId: fx.server.id, dispatchedAt: { not: null } } })) ?? null, 10_000, "the exec to be handed over");
    gateway.proc.child.kill("SIGUSR2");
    const res = await answered;
    expect(performance.now() - sentAt).toBeLessThan(6_000);
    expect(res.body).toMatchObject({ status: "running" });
  });
});

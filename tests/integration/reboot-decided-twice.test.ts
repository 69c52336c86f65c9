import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Client } from "pg";
import { JobCatalog, JobName } from "@runbridge/contracts";
import { rebootViaProvider } from "../../apps/dispatcher/src/reboot-path";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";
import { createFixture, createOperation } from "../helpers/factories";
import { type FakeProvider, providerCallContext, useStackWithProvider } from "../helpers/fake-provider";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";

/**
 * Two deliveries of one reboot at once (one stalled past its BullMQ job lock, and the one that took the job over)
 * that decide differently, because a cloud provider was linked between their reads of the server. The first
 * decision recorded (or provider call claimed) wins: the server is never rebooted by both the provider and the
 * runner, and a reboot the runner does is never failed as outcome unknown.
 */
describe("a reboot decided by two deliveries at once", () => {
  const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-reboot-twice-")), "reboots.log");
  const runnerReboots = () => (existsSync(marker) ? readFileSync(marker, "utf8").trim().split("\n").length : 0);
  const suite = useStackWithProvider();
  let stack: TestStack;
  let provider: FakeProvider;

  beforeAll(() => {
    ({ stack, provider } = suite);
  });

  /** The PostgreSQL sessions waiting for a lock on audit_events, with what they run. */
  const waitingOnAuditEvents = () =>
    testPrisma().$queryRaw<{ pid: number; query: string }[]>`
      SELECT a.pid, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.relation = 'audit_events'::regclass AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

  it("the stalled delivery chose the runner, the provider linked since takes the reboot: the runner never reboots the server too", async () => {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_REBOOT_COMMAND: `echo reboot >> ${marker}` } });
    const op = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: "reboot", automationKeyId: fx.key.id, redisPrefix: stack.prefix, params: {} });
    const dispatcherA = stack.dispatchers[0];
    if (!dispatcherA) throw new Error("no dispatcher");

    // Delivery 1 is held just before it records the runner path (a real stall: the one write that follows its read
    // of the server, a statement that also inserts the path's audit event, waits for this session's lock on that table).
    const locker = new Client({ connectionString: testDatabaseUrl() });
    await locker.connect();
    let stopped = false;
    const releaseProvider = provider.hold();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_events IN SHARE MODE");
      const entry = JobCatalog[JobName.DeliverOperation];
      await stack.gateway.queue.add(JobName.DeliverOperation, { operationId: op.id, serverId: fx.server.id, type: "reboot" }, { ...entry.options, jobId: op.id });
      const [first] = await waitFor(
        async () => {
          const rows = (await waitingOnAuditEvents()).filter((r) => r.query.includes("UPDATE operations SET params = params ||"));
          return rows.length > 0 ? rows : null;
        },
        15_000,
        "delivery 1 to record the runner path",
      );
      if (!first) throw new Error("no waiting delivery");

      // Meanwhile the server is linked to its cloud provider (in SQL: the API's audit event would wait behind the lock too).
      await testPrisma().$executeRaw`UPDATE servers SET provider = 'hetzner', provider_server_id = '7001', provider_token_ciphertext = ${stack.gateway.sealer.seal("hc-token", fx.server.id)} WHERE id = ${fx.server.id}::uuid`;
      // Its dispatcher stalls past the job lock: another dispatcher takes the job over and calls the provider (held).
      dispatcherA.child.kill("SIGSTOP");
      stopped = true;
      await stack.startDispatcher();
      await waitFor(async () => provider.requests.length > 0, 20_000, "delivery 2 to call the provider");

      // Delivery 1's write goes through, then its dispatcher goes on while the provider's answer is still on its way.
      await locker.query("COMMIT");
      await waitFor(
        async () => {
          const [row] = await testPrisma().$queryRaw<{ state: string | null }[]>`SELECT state FROM pg_stat_activity WHERE pid = ${first.pid}::int`;
          return row?.state !== "active";
        },
        10_000,
        "delivery 1's write to end",
      );
      dispatcherA.child.kill("SIGCONT");
      stopped = false;
      // Time for delivery 1 to hand the reboot to the runner, had it recorded the runner path.
      await new Promise((r) => setTimeout(r, 3000));
      releaseProvider();
    } finally {
      if (stopped) dispatcherA.child.kill("SIGCONT");
      releaseProvider();
      await locker.end().catch(() => undefined);
    }

    const row = await waitUntilEnded(op.id, 20_000, "the reboot to end");
    // Time for a start that slipped through to run the runner's reboot command.
    await new Promise((r) => setTimeout(r, 2000));
    expect({ providerCalls: provider.requests.length, runnerReboots: runnerReboots() }).toEqual({ providerCalls: 1, runnerReboots: 0 });
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null, stdout: "reboot requested through the Hetzner Cloud API (server 7001, action 4242)\n" });
    expect(row.params).toMatchObject({ reboot_path: "provider", reboot_provider: "hetzner" });
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: op.id } });
    expect(audit.map((a) => a.type).sort()).toEqual(["operation.finished", "operation.reboot_path"]);
    // The race as staged: delivery 1 reached its write, and found delivery 2's claim.
    expect(dispatcherA.output).toContain("reboot path not recorded: another delivery of it decided first");
  });

  it("a delivery that read the reboot claimed for a call whose outcome was then recorded (the runner path) does not fail it", async () => {
    const fx = await createFixture();
    const created = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: "reboot", params: {}, dispatchedAt: new Date() });
    // As delivery 2 read it: claimed for a provider call, no path recorded.
    const stale = await stack.gateway.operations.findById(created.id);
    if (!stale) throw new Error("no operation");
    // Since then the delivery holding the claim had the call refused, recorded the runner path (releasing the claim),
    // and handed the reboot to the runner (marked dispatched again).
    await testPrisma().$executeRaw`UPDATE operations SET params = params || ${JSON.stringify({ reboot_path: "runner", reboot_reason: "the Hetzner Cloud API call failed (HTTP 403); fell back to the runner" })}::jsonb, dispatched_at = now() WHERE id = ${created.id}::uuid`;
    const ctx = providerCallContext(stack, provider);
    // It takes the recorded path (the runner's ledger answers a second start "already started") instead of failing it.
    const route = await rebootViaProvider(ctx, stale);
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: created.id } });
    expect({ route, status: row.status, error: row.error }).toEqual({ route: "runner", status: "running", error: null });
  });
});

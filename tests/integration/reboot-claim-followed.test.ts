import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Client } from "pg";
import { JobCatalog, JobName } from "@runbridge/contracts";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";
import { createFixture, createOperation } from "../helpers/factories";
import { type FakeProvider, useStackWithProvider } from "../helpers/fake-provider";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";

/**
 * Two deliveries of one reboot at once (one stalled past its BullMQ job lock, and the one that took the job over):
 * the one that took the job over finds the provider call claimed by the stalled one, with no outcome recorded yet.
 * Ending its job there left the reboot to a delivery that no longer held the job: the call refused, that one
 * recorded the runner path, and its hand-off refused for now (a draining runner) was retried by no one — the
 * reboot never sent, until the overdue sweep ended it as result lost. (Here the stalled one makes no call at all,
 * its claim having come back later than the other reckons with, and falls back to the runner the same way.)
 */
describe("a reboot whose provider call another delivery claimed", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "rb-reboot-followed-"));
  const marker = path.join(dir, "reboots.log");
  const suite = useStackWithProvider();
  let stack: TestStack;
  let provider: FakeProvider;

  beforeAll(() => {
    ({ stack, provider } = suite);
  });

  /** The PostgreSQL sessions of this database waiting to claim a reboot's provider call. */
  const waitingToClaim = async () =>
    (
      await testPrisma().$queryRaw<{ pid: number }[]>`
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE operations SET dispatched_at = now() WHERE id = $1%'`
    ).length;

  it("the stalled delivery makes no call (its claim came back too late) and its hand-off to the runner is refused for now: the runner still reboots the server, once", async () => {
    const fx = await createFixture();
    const linked = await stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: "hetzner", provider_server_id: "7101", provider_token: "hc-token" });
    expect(linked.status).toBe(200);
    // Were the provider called, a definite refusal: the fallback would be the runner all the same.
    provider.respondWith(422);
    const dispatcherA = stack.dispatchers[0];
    if (!dispatcherA) throw new Error("no dispatcher");
    const stateDir = mkdtempSync(path.join(tmpdir(), "rb-runner-"));
    const runnerEnv = { RUNBRIDGE_REBOOT_COMMAND: `echo reboot >> ${marker}` };
    const draining = await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir, env: runnerEnv });

    // A command that keeps the runner draining once it is asked to stop, until the test lets it end.
    const done = path.join(dir, "done");
    const entry = JobCatalog[JobName.DeliverOperation];
    const holder = await createOperation(fx.tenant.id, fx.server.id, { command: `while [ ! -f ${done} ]; do sleep 0.1; done`, redisPrefix: stack.prefix });
    await stack.gateway.queue.add(JobName.DeliverOperation, { operationId: holder.id, serverId: fx.server.id, type: "exec" }, { ...entry.options, jobId: holder.id });
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: holder.id } })).startedAt, 15_000, "the holding command to start");
    draining.child.kill("SIGTERM");
    await waitFor(async () => draining.output.includes("shutting down"), 10_000, "the runner to drain");

    const op = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: "reboot", automationKeyId: fx.key.id, redisPrefix: stack.prefix, params: {} });
    // Both deliveries read the reboot unclaimed and wait to claim the call (a real stall: this session locks its row);
    // the first in line, dispatcher A's, gets it.
    const locker = new Client({ connectionString: testDatabaseUrl() });
    await locker.connect();
    let stopped = false;
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM operations WHERE id = $1 FOR UPDATE", [op.id]);
      await stack.gateway.queue.add(JobName.DeliverOperation, { operationId: op.id, serverId: fx.server.id, type: "reboot" }, { ...entry.options, jobId: op.id });
      await waitFor(async () => (await waitingToClaim()) === 1, 15_000, "delivery 1 to claim the call");
      const claimSent = Date.now();
      // Its dispatcher stalls past the job lock (the runner's connection to it outlasts the stall): another takes the job over.
      dispatcherA.child.kill("SIGSTOP");
      stopped = true;
      await stack.startDispatcher();
      await waitFor(async () => (await waitingToClaim()) === 2, 10_000, "delivery 2 to claim the call");
      await locker.query("COMMIT");
      // Delivery 2 is refused the claim and leaves the job (to come round, or, before the fix, as done), while
      // delivery 1, its claim taken, is still stalled: no call yet.
      // (A completed job is removed: its state is then "unknown".)
      await waitFor(async () => ["delayed", "unknown"].includes(await stack.gateway.queue.getJobState(op.id)), 10_000, "delivery 2 to leave the job");
      expect(provider.requests).toHaveLength(0);
      // Stalled past the 5 s in which a claimed call must set out (delivery 2 reckons with no more): delivery 1 then
      // does not call the provider at all, and falls back to the runner (as it would after a refused call).
      await new Promise((r) => setTimeout(r, Math.max(0, claimSent + 5_500 - Date.now())));
      dispatcherA.child.kill("SIGCONT");
      stopped = false;
    } finally {
      if (stopped) dispatcherA.child.kill("SIGCONT");
      await locker.end().catch(() => undefined);
    }

    // Delivery 1 records the runner path and hands the reboot to the draining runner, which asks for it later.
    const refused = () => draining.output.split("\n").some((line) => line.includes("refused a start while shutting down") && line.includes(op.id));
    await waitFor(async () => refused(), 15_000, "the first hand-off to be refused");
    expect(provider.requests).toHaveLength(0);
    writeFileSync(done, "");
    await draining.exited;
    await stack.startRunner(fx.runnerToken, fx.server.id, { stateDir, env: runnerEnv });

    const row = await waitUntilEnded(op.id, 20_000, "the reboot to end");
    // Time for a second start that slipped through to run the runner's reboot command again.
    await new Promise((r) => setTimeout(r, 2000));
    expect({ providerCalls: provider.requests.length, runnerReboots: readFileSync(marker, "utf8") }).toEqual({ providerCalls: 0, runnerReboots: "reboot\n" });
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null });
    expect(row.params).toMatchObject({ reboot_path: "runner", reboot_provider: "hetzner", reboot_reason: expect.stringMatching(/Hetzner Cloud API call could not be made within 5 s of its claim/) });
  });
});

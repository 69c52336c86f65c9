import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FailureReason, JobCatalog, JobName } from "@runbridge/contracts";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createOperation } from "../helpers/factories";
import { FakeProvider } from "../helpers/fake-provider";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * A reboot through the cloud provider whose outcome could not be stored at once: the
 * redelivered job must never reboot the server again through the runner. Faults are real
 * PostgreSQL errors (a trigger on audit_events), or the row an older dispatcher left behind.
 */
describe("reboot through the provider, redelivered", () => {
  let provider: FakeProvider;
  const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-reboot-redelivery-")), "reboots.log");
  const runnerReboots = () => (existsSync(marker) ? readFileSync(marker, "utf8").trim().split("\n").length : 0);
  const faults: Fault[] = [];
  // Declared before useStackWithRunner, so it runs first: the faults go before the stack stops and the Prisma client closes.
  afterAll(async () => {
    for (const f of faults) await f.remove().catch(() => undefined);
  });
  const suite = useStackWithRunner(
    async () => {
      provider = await FakeProvider.start();
      return { dispatcher: { HCLOUD_API_URL: `${provider.url}/hcloud/v1`, DIGITALOCEAN_API_URL: `${provider.url}/do/v2` } };
    },
    { env: { RUNBRIDGE_REBOOT_COMMAND: `echo rebooting-now; echo reboot >> ${marker}` } },
  );
  afterAll(() => provider?.stop());
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const link = (providerServerId: string) =>
    stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: "hetzner", provider_server_id: providerServerId, provider_token: "hc-token" });
  const reboot = async (): Promise<string> => {
    const res = await stack.api().post("/api/automation/v1/reboot").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id });
    expect(res.status).toBe(202);
    return res.body.operation_id as string;
  };
  const callsFor = (providerServerId: string) => provider.requests.filter((r) => r.path === `/hcloud/v1/servers/${providerServerId}/actions/reboot`).length;
  const auditTypes = async (id: string) => (await testPrisma().auditEvent.findMany({ where: { operationId: id } })).map((a) => a.type).sort();
  /** Whether one line of the dispatcher's (JSON) log holds every part. */
  const dispatcherLogged = (...parts: string[]) => (stack.dispatchers[0]?.output ?? "").split("\n").some((line) => parts.every((p) => line.includes(p)));
  /** Time for a start that slipped through to run the runner's reboot command. */
  const settle = () => new Promise((r) => setTimeout(r, 2000));

  it("recording the provider's answer fails once: finished through the provider, the runner never reboots", async () => {
    await link("801");
    faults.push(await Fault.onRebootPath(fx.server.id, 1));
    const before = runnerReboots();
    const id = await reboot();
    const row = await waitUntilEnded(id, 20_000, "the reboot to end");
    await settle();
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null, stdout: "reboot requested through the Hetzner Cloud API (server 801, action 4242)\n" });
    expect(row.params).toMatchObject({ reboot_path: "provider", reboot_provider: "hetzner" });
    expect(callsFor("801")).toBe(1);
    expect(runnerReboots()).toBe(before);
    expect(await auditTypes(id)).toEqual(["operation.created", "operation.finished", "operation.reboot_path"]);
    expect(dispatcherLogged("injected failure 1")).toBe(true);
  });

  it("recording the answer fails until the delivery gives up: the retry fails it as unknown instead of rebooting through the runner", async () => {
    await link("802");
    const fault = await Fault.onRebootPath(fx.server.id);
    faults.push(fault);
    const before = runnerReboots();
    const id = await reboot();
    // The delivery attempt that called the provider gives up on storing the answer; only then may PostgreSQL recover.
    await waitFor(async () => dispatcherLogged("delivery attempt failed", "injected failure", id), 30_000, "the delivery attempt to fail");
    await fault.release();
    // The retry follows the claim until the call and the recording of its answer are surely over (30 s after the claim).
    const row = await waitUntilEnded(id, 40_000, "the reboot to end");
    await settle();
    expect(row).toMatchObject({ status: "failed", exitCode: null, error: FailureReason.RebootOutcomeUnknown });
    expect(row.params).toMatchObject({ reboot_path: "provider", reboot_provider: "hetzner", reboot_reason: expect.stringMatching(/Hetzner Cloud API.*no answer was recorded/) });
    expect(callsFor("802")).toBe(1);
    expect(runnerReboots()).toBe(before);
    expect(await auditTypes(id)).toEqual(["operation.created", "operation.finished", "operation.reboot_path"]);
    // Two waits of 30 s and 40 s: past jest's default, whose time-out would not say which one ran out.
  }, 120_000);

  it("a row an older dispatcher left with the provider path recorded but not finished: finished, neither the provider nor the runner asked again", async () => {
    const detail = "reboot requested through the Hetzner Cloud API (server 803, action 77)";
    const op = await createOperation(fx.tenant.id, fx.server.id, {
      type: "reboot",
      command: "reboot",
      automationKeyId: fx.key.id,
      redisPrefix: stack.prefix,
      dispatchedAt: new Date(),
      params: { provider: "hetzner", reboot_path: "provider", reboot_reason: "server is linked to hetzner", reboot_provider: "hetzner", reboot_detail: detail },
    });
    const before = { calls: provider.requests.length, runner: runnerReboots() };
    // Its job delivered again, as BullMQ does after the attempt that recorded the path failed.
    const entry = JobCatalog[JobName.DeliverOperation];
    await stack.gateway.queue.add(JobName.DeliverOperation, { operationId: op.id, serverId: fx.server.id, type: "reboot" }, { ...entry.options, jobId: op.id });
    const row = await waitUntilEnded(op.id, 20_000, "the reboot to end");
    await settle();
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null, stdout: `${detail}\n` });
    expect(provider.requests.length).toBe(before.calls);
    expect(runnerReboots()).toBe(before.runner);
    // The path's audit event that the older dispatcher may not have written is added with the finish, once.
    expect(await auditTypes(op.id)).toEqual(["operation.finished", "operation.reboot_path"]);
  });
});

/**
 * A real PostgreSQL error on inserting a server's `operation.reboot_path` audit events: the
 * first `times` inserts fail (a sequence counts them, since it is not rolled back with the
 * failing statement), or every one until `release`.
 */
class Fault {
  private constructor(private readonly name: string) {}

  static async onRebootPath(serverId: string, times = 1_000_000): Promise<Fault> {
    const name = `rb_test_fault_${serverId.replace(/-/g, "").slice(0, 16)}_${times}`;
    const db = testPrisma();
    await db.$executeRawUnsafe(`CREATE SEQUENCE IF NOT EXISTS ${name}`);
    await db.$executeRawUnsafe(`CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger AS $$
      DECLARE n bigint;
      BEGIN
        IF NEW.type = 'operation.reboot_path' AND NEW.server_id = '${serverId}' THEN
          n := nextval('${name}');
          IF n <= ${times} THEN RAISE EXCEPTION 'injected failure %', n; END IF;
        END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await db.$executeRawUnsafe(`CREATE OR REPLACE TRIGGER ${name} BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION ${name}()`);
    return new Fault(name);
  }

  /** PostgreSQL recovers: no further insert fails. */
  async release(): Promise<void> {
    await testPrisma().$executeRawUnsafe(`SELECT setval('${this.name}', 2000000000)`);
  }

  async remove(): Promise<void> {
    const db = testPrisma();
    await db.$executeRawUnsafe(`DROP TRIGGER IF EXISTS ${this.name} ON audit_events`);
    await db.$executeRawUnsafe(`DROP FUNCTION IF EXISTS ${this.name}()`);
    await db.$executeRawUnsafe(`DROP SEQUENCE IF EXISTS ${this.name}`);
  }
}

import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createServer } from "../helpers/factories";
import { FakeProvider } from "../helpers/fake-provider";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * A cancel of a reboot done through the cloud provider API: the dispatcher claims the operation
 * (marks it dispatched) before it calls the provider, so a cancel either comes first and the
 * provider is never called, or comes after and is not answered as `cancelled` for a reboot that
 * was requested from the provider.
 */
describe("cancel of a reboot through the provider API", () => {
  let provider: FakeProvider;
  const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-reboot-cancel-")), "rebooted");
  const suite = useStackWithRunner(
    async () => {
      provider = await FakeProvider.start();
      return {
        // One delivery at a time: a reboot held in the provider call keeps the next one queued, unclaimed.
        dispatcher: { HCLOUD_API_URL: `${provider.url}/hcloud/v1`, DIGITALOCEAN_API_URL: `${provider.url}/do/v2`, PROVIDER_API_TIMEOUT_MS: "10000", WORKER_CONCURRENCY: "1" },
      };
    },
    { env: { RUNBRIDGE_REBOOT_COMMAND: `echo rebooting-now; touch ${marker}` } },
  );
  afterAll(() => provider?.stop());
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });
  beforeEach(() => {
    provider.respondWith(201);
    provider.delayAnswers(2000);
  });

  const auth = () => ({ Authorization: `Bearer ${fx.token}` });
  const link = (serverId: string, providerServerId: string) =>
    stack.api().patch(`/api/v1/servers/${serverId}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: "hetzner", provider_server_id: providerServerId, provider_token: "hc-token-cancel" });
  const reboot = async (serverId: string): Promise<string> => {
    const res = await stack.api().post("/api/automation/v1/reboot").set(auth()).send({ server_id: serverId });
    expect(res.status).toBe(202);
    return res.body.operation_id as string;
  };
  const callsFor = (providerServerId: string) => provider.requests.filter((r) => r.path === `/hcloud/v1/servers/${providerServerId}/actions/reboot`).length;
  const cancel = (id: string) => stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set(auth()).send({ reason: "not now" });
  const ended = (id: string) =>
    waitFor(async () => {
      const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
      return r.status !== "running" ? r : null;
    }, 20_000, `operation ${id} to end`);

  it("cancelled before the claim: ends cancelled and the provider is never called", async () => {
    const { server: busy } = await createServer(fx.tenant.id);
    const { server: target } = await createServer(fx.tenant.id);
    await link(busy.id, "101");
    await link(target.id, "102");
    const first = await reboot(busy.id);
    // The only delivery slot is now inside the provider call; the second reboot waits in the queue.
    await waitFor(async () => callsFor("101") === 1, 10_000, "first reboot to reach the provider");
    const id = await reboot(target.id);
    const c = await cancel(id);
    expect(c.status).toBe(202);
    expect(c.body).toEqual({ operation_id: id, status: "cancelled", cancel_requested: true });
    expect((await ended(first)).status).toBe("completed");
    // Its job is delivered once the slot is free; give it the time a provider call would take.
    await new Promise((r) => setTimeout(r, 3000));
    expect(callsFor("102")).toBe(0);
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "cancelled", error: "cancelled on request: not now", dispatchedAt: null });
    expect((row.params as Record<string, unknown>).reboot_path).toBeUndefined();
  });

  it("cancelled after the claim: the provider reboots once and the API does not answer cancelled", async () => {
    const { server } = await createServer(fx.tenant.id);
    await link(server.id, "103");
    const id = await reboot(server.id);
    await waitFor(async () => callsFor("103") === 1, 10_000, "reboot to reach the provider");
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).dispatchedAt).not.toBeNull();
    const c = await cancel(id);
    expect(c.status).toBe(202);
    // Only passed on (the runner does not have it); the gateway's confirmation wait outlasts the provider call.
    expect(c.body).toEqual({ operation_id: id, status: "completed", cancel_requested: true });
    const row = await ended(id);
    expect(row).toMatchObject({ status: "completed", exitCode: 0, error: null, stdout: "reboot requested through the Hetzner Cloud API (server 103, action 4242)\n" });
    expect(row.params).toMatchObject({ reboot_path: "provider", reboot_provider: "hetzner" });
    const op = await stack.api().get(`/api/automation/v1/operations/${id}`).set(auth());
    expect(op.body.status).toBe("completed");
    expect(callsFor("103")).toBe(1);
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: id }, orderBy: { createdAt: "asc" } });
    expect(audit.find((a) => a.type === "operation.cancel_requested")?.data).toMatchObject({ dispatched: true });
    expect(audit.filter((a) => a.type === "operation.finished").map((a) => (a.data as { status: string }).status)).toEqual(["completed"]);
  });

  it("cancelled during a provider call that fails: ends cancelled and the runner's reboot command never runs", async () => {
    await link(fx.server.id, "104");
    provider.respondWith(503);
    try {
      const id = await reboot(fx.server.id);
      await waitFor(async () => callsFor("104") === 1, 10_000, "reboot to reach the provider");
      const c = await cancel(id);
      expect(c.status).toBe(202);
      expect(c.body).toEqual({ operation_id: id, status: "cancelled", cancel_requested: true });
      const row = await ended(id);
      expect(row).toMatchObject({ status: "cancelled", error: "cancelled on request: not now" });
      expect(row.params).toMatchObject({ reboot_path: "runner", reboot_provider: "hetzner" });
      expect((row.params as { reboot_reason: string }).reboot_reason).toMatch(/HTTP 503/);
      // Give a start that slipped through the time to run the command.
      await new Promise((r) => setTimeout(r, 2000));
      expect(existsSync(marker)).toBe(false);
      expect(callsFor("104")).toBe(1);
    } finally {
      await stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: null });
    }
  });
});

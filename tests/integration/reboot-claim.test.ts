import { Client } from "pg";
import { rebootViaProvider } from "../../apps/dispatcher/src/reboot-path";
import { testPrisma } from "../helpers/db";
import { testDatabaseUrl } from "../helpers/env";
import { createFixture, createOperation } from "../helpers/factories";
import { FakeProvider, providerCallContext } from "../helpers/fake-provider";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * "A server is never rebooted twice for one operation": two deliveries of one reboot at once (a delivery
 * that stalled past its job lock, and the one that took the job over) both read it unclaimed; only one may
 * call the cloud provider. The claim kept the first dispatched mark (COALESCE) and let both through.
 */
describe("the claim of a reboot's cloud provider call", () => {
  let provider: FakeProvider;
  const suite = useStack({ dispatchers: 0 });
  let stack: TestStack;
  beforeAll(async () => {
    ({ stack } = suite);
    provider = await FakeProvider.start();
  });
  afterAll(() => provider.stop());

  /** A reboot of a fresh server linked to the (fake) Hetzner API, as its deliveries read it before their claims. */
  const linkedReboot = async (providerServerId: string) => {
    const fx = await createFixture();
    const linked = await stack
      .api()
      .patch(`/api/v1/servers/${fx.server.id}`)
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ provider: "hetzner", provider_server_id: providerServerId, provider_token: "hcloud-test-token" });
    expect(linked.status).toBe(200);
    const created = await createOperation(fx.tenant.id, fx.server.id, { type: "reboot", command: null, params: {} });
    const op = await stack.gateway.operations.findById(created.id);
    if (!op) throw new Error("no operation");
    return op;
  };

  it("lets one of two deliveries that read the reboot unclaimed call the provider; the other leaves it", async () => {
    // The same snapshot for both, as each delivery reads the row before its claim.
    const op = await linkedReboot("123456");
    const ctx = providerCallContext(stack, provider);
    provider.delayAnswers(300);
    const before = provider.requests.length;
    const routes = await Promise.all([rebootViaProvider(ctx, op), rebootViaProvider(ctx, op)]);
    expect(provider.requests.length - before).toBe(1);
    // The other found the call claimed and follows its outcome (its job comes round), rather than end its job.
    expect(routes.sort()).toEqual(["later", "provider"]);
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } });
    expect([row.status, (row.params as { reboot_path?: string }).reboot_path]).toEqual(["completed", "provider"]);
  });

  it("does not call the provider when its claim came back later than another delivery reckons with (it falls back to the runner)", async () => {
    const op = await linkedReboot("123457");
    // The claim statement waits 6 s for this session's lock on the row: a delivery that stalls between its claim
    // and the call, as far as the 5 s margin another delivery gives it goes.
    const locker = new Client({ connectionString: testDatabaseUrl() });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM operations WHERE id = $1 FOR UPDATE", [op.id]);
      const before = provider.requests.length;
      const route = rebootViaProvider(providerCallContext(stack, provider), op);
      await new Promise((r) => setTimeout(r, 6_000));
      await locker.query("COMMIT");
      expect(await route).toBe("runner");
      expect(provider.requests.length - before).toBe(0);
    } finally {
      await locker.end();
    }
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: op.id } });
    expect({ status: row.status, dispatched: row.dispatchedAt, params: row.params }).toMatchObject({
      status: "running",
      dispatched: null,
      params: { reboot_path: "runner", reboot_reason: expect.stringMatching(/could not be made within 5 s of its claim/) },
    });
  });
});

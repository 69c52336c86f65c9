import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createServer } from "../helpers/factories";
import { FakeProvider } from "../helpers/fake-provider";
import { findLeaks } from "../helpers/leak-scan";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * POST /reboot: the cloud provider path (against a fake provider API on
 * loopback), its failure, and the runner fallback (a harmless reboot command).
 */
describe("POST /api/automation/v1/reboot", () => {
  let provider: FakeProvider;
  const markerDir = mkdtempSync(path.join(tmpdir(), "rb-reboot-"));
  const marker = path.join(markerDir, "reboots.log");
  const runnerReboots = () => (existsSync(marker) ? readFileSync(marker, "utf8").trim().split("\n").length : 0);
  const suite = useStackWithRunner(
    async () => {
      provider = await FakeProvider.start();
      return {
        // Short delivery deadline for the "provider failed and the runner is offline" case.
        gateway: { RUNNER_DELIVERY_TIMEOUT_SECONDS: "3" },
        dispatcher: { HCLOUD_API_URL: `${provider.url}/hcloud/v1`, DIGITALOCEAN_API_URL: `${provider.url}/do/v2`, PROVIDER_API_TIMEOUT_MS: "3000" },
      };
    },
    { env: { RUNBRIDGE_REBOOT_COMMAND: `echo rebooting-now; echo reboot >> ${marker}` } },
  );
  afterAll(() => provider.stop());
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });
  beforeEach(() => provider.respondWith(201));

  const reboot = (serverId: string, token = fx.token, extra: Record<string, unknown> = {}) =>
    stack.api().post("/api/automation/v1/reboot").set("Authorization", `Bearer ${token}`).send({ server_id: serverId, ...extra });
  /** 202 at once; then the finished operation as GET /operations/{id} shows it. */
  const rebootAndWait = async (serverId: string) => {
    const res = await reboot(serverId);
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    const id = res.body.operation_id as string;
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status !== "running", 20_000, `reboot ${id} to end`);
    const op = await stack.api().get(`/api/automation/v1/operations/${id}`).set("Authorization", `Bearer ${fx.token}`);
    expect(op.status).toBe(200);
    return op.body;
  };
  const link = (serverId: string, body: Record<string, unknown>) => stack.api().patch(`/api/v1/servers/${serverId}`).set("Authorization", `Bearer ${fx.apiKey}`).send(body);

  it("without a provider, runs the runner's reboot command and says so", async () => {
    const before = runnerReboots();
    const res = await reboot(fx.server.id, fx.token, { run_id: "ci-reboot-1" });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } })).status !== "running", 20_000);
    const op = await stack.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${fx.token}`);
    expect(op.body).toMatchObject({ operation_type: "reboot", status: "completed", run_id: "ci-reboot-1", result: { exit_code: 0, stdout: "rebooting-now\n" }, params: { reboot_path: "runner" } });
    expect(op.body.params.reboot_reason).toMatch(/no cloud provider is linked/);
    expect(runnerReboots()).toBe(before + 1);
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: res.body.operation_id } });
    expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished", "operation.reboot_path"]);
  });

  it("links a server to Hetzner Cloud with its token sealed, never returned", async () => {
    const token = `hcloud-${Date.now()}-canaryProviderToken`;
    const { server } = await createServer(fx.tenant.id);
    const res = await link(server.id, { provider: "hetzner", provider_server_id: "123456", provider_token: token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: server.id, provider: "hetzner", provider_server_id: "123456", provider_token_set: true });
    expect(JSON.stringify(res.body)).not.toContain(token);
    const got = await stack.api().get(`/api/v1/servers/${server.id}`).set("Authorization", `Bearer ${fx.apiKey}`);
    expect(JSON.stringify(got.body)).not.toContain(token);
    const row = await testPrisma().server.findUniqueOrThrow({ where: { id: server.id } });
    expect(row.providerTokenCiphertext).toMatch(/^v1\.[0-9a-f]{8}\./);
    expect(await findLeaks(stack, token)).toEqual([]);
  });

  it.each([
    [{ provider: "aws", provider_server_id: "1", provider_token: "t" }, /"provider" must be one of/],
    [{ provider: "hetzner", provider_token: "t" }, /"provider_server_id" is required/],
    [{ provider: "hetzner", provider_server_id: "1" }, /"provider_token" is required/],
    [{ provider: "hetzner", provider_server_id: "../1", provider_token: "t" }, /"provider_server_id" must be the numeric/],
    [{ provider: null, provider_token: "t" }, /"provider_token" is not allowed/],
    [{}, /"provider" is required/],
  ])("refuses a bad provider link with 422 (%#)", async (body, detail) => {
    const res = await link(fx.server.id, body);
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(detail);
  });

  it("reboots a Hetzner server through the provider API, even with its runner offline", async () => {
    const token = `hcloud-${Date.now()}-tokenForReboot`;
    const { server } = await createServer(fx.tenant.id);
    await link(server.id, { provider: "hetzner", provider_server_id: "42", provider_token: token });
    const before = { calls: provider.requests.length, runner: runnerReboots() };
    const op = await rebootAndWait(server.id);
    expect(op).toMatchObject({ status: "completed", result: { exit_code: 0 }, params: { reboot_path: "provider", reboot_provider: "hetzner" } });
    expect(op.result.stdout).toBe("reboot requested through the Hetzner Cloud API (server 42, action 4242)\n");
    expect(provider.requests.slice(before.calls)).toEqual([{ method: "POST", path: "/hcloud/v1/servers/42/actions/reboot", authorization: `Bearer ${token}`, body: "" }]);
    expect(runnerReboots()).toBe(before.runner);
    expect(stack.allLogs()).not.toContain(token);
  });

  it("reboots a DigitalOcean droplet through its actions API", async () => {
    await link(fx.server.id, { provider: "digitalocean", provider_server_id: "9001", provider_token: "dop_v1_faketoken" });
    try {
      const before = { calls: provider.requests.length, runner: runnerReboots() };
      const op = await rebootAndWait(fx.server.id);
      expect(op).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: expect.stringMatching(/DigitalOcean API \(server 9001/) }, params: { reboot_path: "provider" } });
      const [call] = provider.requests.slice(before.calls);
      expect(call).toMatchObject({ method: "POST", path: "/do/v2/droplets/9001/actions", authorization: "Bearer dop_v1_faketoken" });
      expect(JSON.parse(call?.body ?? "")).toEqual({ type: "reboot" });
      expect(runnerReboots()).toBe(before.runner);
    } finally {
      await link(fx.server.id, { provider: null });
    }
  });

  it("falls back to the runner when the provider call fails, and says why", async () => {
    await link(fx.server.id, { provider: "hetzner", provider_server_id: "77", provider_token: "hc-token-fallback" });
    // The provider refused it (here, the token): it surely did nothing.
    provider.respondWith(403);
    try {
      const before = { calls: provider.requests.length, runner: runnerReboots() };
      const op = await rebootAndWait(fx.server.id);
      expect(op).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "rebooting-now\n" }, params: { reboot_path: "runner" } });
      expect(op.params.reboot_reason).toMatch(/Hetzner Cloud API call failed \(HTTP 403.*\); fell back to the runner/);
      expect(provider.requests.length).toBe(before.calls + 1);
      expect(runnerReboots()).toBe(before.runner + 1);
    } finally {
      await link(fx.server.id, { provider: null });
    }
  });

  it("takes a 2xx answer as the provider's acceptance whatever its body, and does not reboot through the runner as well", async () => {
    await link(fx.server.id, { provider: "hetzner", provider_server_id: "78", provider_token: "hc-token-html" });
    provider.respondWith(202, "<html>Accepted</html>");
    try {
      const before = { calls: provider.requests.length, runner: runnerReboots() };
      const op = await rebootAndWait(fx.server.id);
      expect(op).toMatchObject({ status: "completed", result: { exit_code: 0 }, params: { reboot_path: "provider", reboot_provider: "hetzner" } });
      expect(provider.requests.length).toBe(before.calls + 1);
      expect(runnerReboots()).toBe(before.runner);
    } finally {
      await link(fx.server.id, { provider: null });
    }
  });

  it("falls back to the runner when the provider cannot be reached (the connection refused: nothing was sent)", async () => {
    await link(fx.server.id, { provider: "digitalocean", provider_server_id: "31337", provider_token: "dop_v1_refused" });
    await provider.refuse();
    try {
      const before = runnerReboots();
      const op = await rebootAndWait(fx.server.id);
      expect(op).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "rebooting-now\n" }, params: { reboot_path: "runner" } });
      expect(op.params.reboot_reason).toMatch(/DigitalOcean API call failed \(request failed: .*ECONNREFUSED.*\); fell back to the runner/);
      expect(runnerReboots()).toBe(before + 1);
    } finally {
      await provider.listen();
      await link(fx.server.id, { provider: null });
    }
  });

  // The provider may have received these and be rebooting the server: a fallback could reboot it twice.
  it.each([
    ["the connection is cut once the request was sent", "drop" as const, 0, /request failed: /],
    ["no answer comes within PROVIDER_API_TIMEOUT_MS", 201, 4000, /no answer within 3000 ms/],
    ["a gateway in front answers 504", 504, 0, /HTTP 504/],
    ["the API answers 500 (it may have failed after acting)", 500, 0, /HTTP 500/],
  ])("fails as outcome unknown, without the runner, when %s", async (_, answer, delayMs, why) => {
    await link(fx.server.id, { provider: "hetzner", provider_server_id: "79", provider_token: "hc-token-unanswered" });
    provider.respondWith(answer);
    provider.delayAnswers(delayMs);
    try {
      const before = { calls: provider.requests.length, runner: runnerReboots() };
      const op = await rebootAndWait(fx.server.id);
      expect(op).toMatchObject({
        status: "failed",
        error: expect.stringMatching(/^reboot outcome unknown: the cloud provider's reboot API gave no definite answer/),
        params: { reboot_path: "provider", reboot_provider: "hetzner" },
      });
      expect(op.params.reboot_reason).toMatch(/Hetzner Cloud API call got no definite answer/);
      expect(op.params.reboot_reason).toMatch(why);
      expect(provider.requests.length).toBe(before.calls + 1);
      // Time for a runner start that slipped through to run the reboot command.
      await new Promise((r) => setTimeout(r, 1500));
      expect(runnerReboots()).toBe(before.runner);
    } finally {
      provider.delayAnswers(0);
      await link(fx.server.id, { provider: null });
    }
  });

  it("falls back when the provider answers 503, and fails as runner offline when the runner is gone too", async () => {
    const { server } = await createServer(fx.tenant.id);
    await link(server.id, { provider: "hetzner", provider_server_id: "5", provider_token: "hc-token-x" });
    provider.respondWith(503);
    const op = await rebootAndWait(server.id);
    expect(op).toMatchObject({ status: "failed", error: expect.stringMatching(/runner offline/), params: { reboot_path: "runner", reboot_provider: "hetzner" } });
    expect(op.params.reboot_reason).toMatch(/HTTP 503/);
  });

  it("is 409 for a server with neither a provider nor a runner, 404 for an unknown one, 403 out of scope, 422 for bad bodies", async () => {
    const { server: bare } = await createServer(fx.tenant.id);
    const offline = await reboot(bare.id);
    expect(offline.status).toBe(409);
    expect(offline.body.detail).toMatch(/no connected runner/);
    expect((await reboot("00000000-0000-4000-8000-000000000000")).status).toBe(404);
    const execOnly = await createAutomationKey(fx.tenant.id, { allowedOperations: ["exec", "restart"] });
    const noOp = await reboot(fx.server.id, execOnly.token);
    expect(noOp.status).toBe(403);
    expect(noOp.body.detail).toMatch(/"reboot" is not allowed/);
    const otherServer = await createAutomationKey(fx.tenant.id, { allowedServerIds: [bare.id] });
    expect((await reboot(fx.server.id, otherServer.token)).status).toBe(403);
    for (const [extra, detail] of [
      [{ server_id: "nope" }, /"server_id"/],
      [{ run_id: "r".repeat(256) }, /"run_id"/],
      [{ timeout_seconds: 10 }, /"timeout_seconds" is not allowed/],
      [{ force: true }, /"force" is not allowed/],
    ] as const) {
      const res = await reboot(fx.server.id, fx.token, extra);
      expect(res.status).toBe(422);
      expect(res.body.detail).toMatch(detail);
    }
  });
});

import { testPrisma } from "../helpers/db";
import { createAutomationKey, createServer } from "../helpers/factories";
import { FakeDocker } from "../helpers/fake-docker";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** POST /restart through the real stack, against a fake `docker` on the runner's PATH. */
describe("POST /api/automation/v1/restart", () => {
  const docker = new FakeDocker();
  // A short wait bound, so the "still running" answer can be shown without a slow test.
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "2" } }, { env: { PATH: docker.path } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const restart = (body: Record<string, unknown>, token = fx.token) =>
    stack.api().post("/api/automation/v1/restart").set("Authorization", `Bearer ${token}`).send({ server_id: fx.server.id, ...body });

  it("runs docker restart with the name as one argument and returns the result", async () => {
    const before = docker.calls().length;
    const res = await restart({ container_name: "my-app_1.web", run_id: "ci-9" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ operation_id: expect.any(String), status: "completed", exit_code: 0, stdout: "my-app_1.web\n", stderr: "", duration_ms: expect.any(Number) });
    expect(docker.calls().slice(before).map((c) => c.argv)).toEqual([["restart", "my-app_1.web"]]);
    const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
    expect(op).toMatchObject({ type: "restart", command: "docker restart my-app_1.web", runId: "ci-9" });
    expect(op.params).toEqual({ container_name: "my-app_1.web" });
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: op.id } });
    expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished"]);
  });

  it("reports docker's failure as a completed operation with its exit code", async () => {
    docker.failWith("restart", 1);
    try {
      const res = await restart({ container_name: "missing" });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "completed", exit_code: 1, stderr: expect.stringMatching(/fake failure/) });
    } finally {
      docker.succeed("restart");
    }
  });

  it("answers `running` when the restart outlasts the wait bound; the result is then polled", async () => {
    docker.delay("restart", 4);
    try {
      const res = await restart({ container_name: "slowpoke" });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
      await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } })).status !== "running", 15_000);
      const done = (await stack.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${fx.token}`)).body;
      expect(done).toMatchObject({ operation_type: "restart", result: { exit_code: 0, stdout: "slowpoke\n" } });
    } finally {
      docker.delay("restart", 0);
    }
  });

  it.each([
    [{ container_name: "bad name" }, /"container_name" must match/],
    [{ container_name: "app;rm -rf /" }, /"container_name" must match/],
    [{ container_name: "$(reboot)" }, /"container_name" must match/],
    [{ container_name: "-v" }, /"container_name" must match/],
    [{ container_name: "_leading" }, /"container_name" must match/],
    [{ container_name: "a".repeat(256) }, /"container_name"/],
    [{ container_name: "" }, /"container_name"/],
    [{}, /"container_name" is required/],
    [{ container_name: "ok", timeout_seconds: 0 }, /"timeout_seconds" must be greater than or equal to 1/],
    [{ container_name: "ok", timeout_seconds: 901 }, /"timeout_seconds" must be less than or equal to 900/],
    [{ container_name: "ok", timeout_seconds: "60" }, /"timeout_seconds" must be a number/],
    [{ container_name: "ok", run_id: "r".repeat(256) }, /"run_id"/],
    [{ container_name: "ok", server_id: "nope" }, /"server_id"/],
  ])("refuses a bad body with 422 naming the field (%#) and runs nothing", async (body, detail) => {
    const before = docker.calls().length;
    const res = await restart(body);
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(detail);
    expect(docker.calls().length).toBe(before);
  });

  it("accepts the limits themselves: a 255-character name and timeouts of 1 and 900", async () => {
    const long = `a${"b".repeat(254)}`;
    expect((await restart({ container_name: long, timeout_seconds: 1 })).body).toMatchObject({ status: "completed", stdout: `${long}\n` });
    expect((await restart({ container_name: "x", timeout_seconds: 900 })).body).toMatchObject({ status: "completed", exit_code: 0 });
  });

  it("is 403 outside the key's operations or servers, 404 for an unknown server, 409 without a runner", async () => {
    const execOnly = await createAutomationKey(fx.tenant.id, { allowedOperations: ["exec"] });
    const noOp = await restart({ container_name: "web" }, execOnly.token);
    expect(noOp.status).toBe(403);
    expect(noOp.body.detail).toMatch(/"restart" is not allowed/);

    const { server: idle } = await createServer(fx.tenant.id);
    const otherServer = await createAutomationKey(fx.tenant.id, { allowedServerIds: [idle.id] });
    expect((await restart({ container_name: "web" }, otherServer.token)).status).toBe(403);

    const missing = await restart({ container_name: "web", server_id: "00000000-0000-4000-8000-000000000000" });
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toMatch(/not found/);

    const offline = await restart({ container_name: "web", server_id: idle.id });
    expect(offline.status).toBe(409);
    expect(offline.body.detail).toMatch(/no connected runner/);
  });
});

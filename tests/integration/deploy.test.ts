import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Response } from "supertest";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createServer, createTenant } from "../helpers/factories";
import { findLeaks } from "../helpers/leak-scan";
import { waitFor } from "../helpers/processes";
import { ReplyDropProxy } from "../helpers/reply-drop-proxy";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** Applications (management API) and POST /deploy through the real stack. */
describe("applications and POST /api/automation/v1/deploy", () => {
  // A short delivery deadline: a deploy waiting its turn must outlive it without failing as "runner offline".
  const suite = useStackWithRunner({ gateway: { RUNNER_DELIVERY_TIMEOUT_SECONDS: "2" }, dispatcher: { DEPLOY_TURN_GRACE_SECONDS: "5" } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const mgmt = (method: "get" | "post" | "patch" | "delete", p: string, apiKey = fx.apiKey) => stack.api()[method](`/api/v1${p}`).set("Authorization", `Bearer ${apiKey}`);
  const deploy = (body: Record<string, unknown>, token = fx.token) => stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${token}`).send(body);
  const createApp = async (fields: Record<string, unknown> = {}) => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-app-"));
    const res = await mgmt("post", "/applications").send({ name: "web", server_id: fx.server.id, working_directory: dir, deploy_command: "true", ...fields });
    expect(res.status).toBe(201);
    return { app: res.body as { id: string; deploy_branch: string; working_directory: string }, dir };
  };
  // Waits on the database (API polling would spend the key's rate limit), then reads the API once.
  const poll = async (id: string, timeoutMs = 20_000) => {
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status !== "running", timeoutMs, `operation ${id} to end`);
    const r = await stack.api().get(`/api/automation/v1/operations/${id}`).set("Authorization", `Bearer ${fx.token}`);
    expect(r.status).toBe(200);
    return r.body;
  };

  describe("management API", () => {
    it("creates, reads, lists, updates and deletes an application", async () => {
      const { app, dir } = await createApp({ name: "shop" });
      expect(app).toMatchObject({ id: expect.any(String), name: "shop", server_id: fx.server.id, working_directory: dir, deploy_branch: "main", deploy_command: "true" });
      expect((await mgmt("get", `/applications/${app.id}`)).body).toMatchObject({ id: app.id, name: "shop" });
      expect((await mgmt("get", "/applications")).body.data.map((a: { id: string }) => a.id)).toContain(app.id);
      const patched = await mgmt("patch", `/applications/${app.id}`).send({ deploy_branch: "release", deploy_command: "make deploy" });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ deploy_branch: "release", deploy_command: "make deploy", name: "shop" });
      expect((await mgmt("delete", `/applications/${app.id}`)).status).toBe(204);
      expect((await mgmt("get", `/applications/${app.id}`)).status).toBe(404);
    });

    it("refuses bad fields with 422, another tenant's server included, and hides applications across tenants", async () => {
      const base = { name: "x", server_id: fx.server.id, working_directory: "/srv/x", deploy_command: "true" };
      const other = await createTenant();
      const { server: foreignServer } = await createServer(other.tenant.id);
      for (const [body, detail] of [
        [{ ...base, deploy_command: undefined }, /"deploy_command" is required/],
        [{ ...base, deploy_command: "   " }, /"deploy_command" cannot be blank/],
        [{ ...base, deploy_command: "x".repeat(8193) }, /"deploy_command" is longer than 8192/],
        [{ ...base, deploy_branch: "two words" }, /"deploy_branch"/],
        [{ ...base, server_id: foreignServer.id }, /"server_id" .* is not a server of this tenant/],
        [{ ...base, colour: "red" }, /"colour" is not allowed/],
      ] as const) {
        const res = await mgmt("post", "/applications").send(body);
        expect(res.status).toBe(422);
        expect(res.body.detail).toMatch(detail);
      }
      const { app } = await createApp();
      expect((await mgmt("get", `/applications/${app.id}`, other.apiKey)).status).toBe(404);
      expect((await mgmt("patch", `/applications/${app.id}`).send({})).status).toBe(422);
    });
  });

  describe("deploy", () => {
    it("answers 202 at once and runs the deploy command in the app's directory with the platform variables and overrides", async () => {
      const secret = `override-${Date.now()}-canary`;
      const { app, dir } = await createApp({
        deploy_branch: "production",
        deploy_command:
          'pwd; echo "ref=$RUNBRIDGE_COMMIT_REF dep=$RUNBRIDGE_DEPLOYMENT_ID app=$RUNBRIDGE_APPLICATION_ID name=$RUNBRIDGE_APPLICATION_NAME op=$RUNBRIDGE_OPERATION_ID"; echo "flag=$FEATURE_FLAG token=$DEPLOY_TOKEN"',
      });
      const res = await deploy({ application_id: app.id, env_overrides: { FEATURE_FLAG: "enabled-beta", DEPLOY_TOKEN: secret }, run_id: "gh-1", run_context: { sha: "abc123" } });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ operation_id: expect.any(String), status: "running", deployment_id: expect.any(String) });
      const { operation_id: opId, deployment_id: depId } = res.body;

      const done = await poll(opId);
      expect(done).toMatchObject({ operation_type: "deploy", status: "completed", run_id: "gh-1", env_keys: ["FEATURE_FLAG", "DEPLOY_TOKEN"] });
      // Platform variables are not secrets: shown as they are. Override values are secrets: masked.
      expect(done.result.stdout).toBe(`${dir}\nref=production dep=${depId} app=${app.id} name=web op=${opId}\nflag=*** token=***\n`);

      const deployments = await mgmt("get", `/applications/${app.id}/deployments`);
      expect(deployments.body.data).toEqual([
        expect.objectContaining({ id: depId, application_id: app.id, operation_id: opId, commit_ref: "production", status: "completed", exit_code: 0 }),
      ]);
      const audit = await testPrisma().auditEvent.findMany({ where: { operationId: opId } });
      const created = audit.find((a) => a.type === "operation.created");
      expect(created?.data).toMatchObject({ operation_type: "deploy", env_keys: ["FEATURE_FLAG", "DEPLOY_TOKEN"], params: { commit_ref: "production", deployment_id: depId } });
      expect(await findLeaks(stack, secret)).toEqual([]);
    });

    it("runs with its env_overrides when the deployment's commit landed but its answer was lost (the job waits until that has settled)", async () => {
      const { app } = await createApp({ deploy_command: '[ "$FEATURE_FLAG" = on ] && echo overrides-arrived' });
      // A gateway whose path to PostgreSQL dies right after it sends the deployment's COMMIT: the row is
      // committed, the gateway hears nothing and cannot end the operation either.
      const proxy = new ReplyDropProxy(Number(new URL(stack.commonEnv().DATABASE_URL ?? "").port || 5432));
      await proxy.listen();
      try {
        const url = new URL(stack.commonEnv().DATABASE_URL ?? "");
        url.port = String(proxy.port);
        const gateway = await stack.startGatewayProcess({ DATABASE_URL: url.toString() });
        proxy.arm("COMMIT", 200);
        const res = await fetch(`${gateway.url}/api/automation/v1/deploy`, {
          method: "POST",
          headers: { Authorization: `Bearer ${fx.token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ application_id: app.id, env_overrides: { FEATURE_FLAG: "on" } }),
        });
        expect(proxy.delivered).toBe(true);
        const body = (await res.json()) as { operation_id: string };
        expect({ status: res.status, body }).toMatchObject({ status: 202, body: { status: "running" } });
        const done = await poll(body.operation_id, 30_000);
        expect(done).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "overrides-arrived\n" } });
      } finally {
        await proxy.close();
      }
    });

    it("deploys the given commit_ref instead of the deploy branch", async () => {
      const { app } = await createApp({ deploy_command: 'echo "$RUNBRIDGE_COMMIT_REF"' });
      const res = await deploy({ application_id: app.id, commit_ref: "v1.2.3" });
      expect(res.status).toBe(202);
      expect((await poll(res.body.operation_id)).result.stdout).toBe("v1.2.3\n");
      const row = await testPrisma().deployment.findUniqueOrThrow({ where: { id: res.body.deployment_id } });
      expect(row).toMatchObject({ commitRef: "v1.2.3", status: "completed", operationId: res.body.operation_id });
    });

    it("reports a failing deploy command as completed with its exit code, and a deploy that overruns as timeout", async () => {
      const { app } = await createApp({ deploy_command: "echo building; exit 3" });
      const failed = await poll((await deploy({ application_id: app.id })).body.operation_id);
      expect(failed).toMatchObject({ status: "completed", result: { exit_code: 3, stdout: "building\n" } });
      const { app: slow } = await createApp({ deploy_command: "sleep 30" });
      const res = await deploy({ application_id: slow.id, timeout_seconds: 1 });
      expect(await poll(res.body.operation_id)).toMatchObject({ status: "timeout" });
      const row = await testPrisma().deployment.findUniqueOrThrow({ where: { id: res.body.deployment_id } });
      expect(row.status).toBe("timeout");
    });

    it("never runs two deployments of one application at the same time: the next waits its turn", async () => {
      // Each deploy takes longer than the 2 s delivery deadline, so a waiting one must not fail as "runner offline".
      const { app, dir } = await createApp({ deploy_command: 'echo "start $RUNBRIDGE_COMMIT_REF" >> times.log; sleep 3; echo "end $RUNBRIDGE_COMMIT_REF" >> times.log' });
      const first = await deploy({ application_id: app.id, commit_ref: "one" });
      const second = await deploy({ application_id: app.id, commit_ref: "two" });
      const third = await deploy({ application_id: app.id, commit_ref: "three" });
      for (const r of [first, second, third]) expect(r.status).toBe(202);
      // Another application on the same server is not held up by them.
      const { app: other } = await createApp({ deploy_command: "echo other" });
      const independent = await poll((await deploy({ application_id: other.id })).body.operation_id, 8_000);
      expect(independent.status).toBe("completed");

      const results = [];
      for (const r of [first, second, third]) results.push(await poll(r.body.operation_id, 40_000));
      expect(results.map((r) => r.status)).toEqual(["completed", "completed", "completed"]);
      const log = readFileSync(path.join(dir, "times.log"), "utf8").trim().split("\n");
      expect(log).toEqual(["start one", "end one", "start two", "end two", "start three", "end three"]);
      // And the record agrees: each started after the previous one completed.
      const [a, b, c] = results.map((r) => ({ started: Date.parse(r.started_at), completed: Date.parse(r.completed_at) }));
      expect(b!.started).toBeGreaterThanOrEqual(a!.completed - 50);
      expect(c!.started).toBeGreaterThanOrEqual(b!.completed - 50);
    }, 60_000);

    it("records each changed field of an application as it was and as it is", async () => {
      const { app } = await createApp({ deploy_command: "./deploy.sh" });
      const res = await mgmt("patch", `/applications/${app.id}`).send({ deploy_command: "./deploy.sh --fast", deploy_branch: "release" });
      expect(res.status).toBe(200);
      const event = await testPrisma().auditEvent.findFirstOrThrow({ where: { type: "application.updated", data: { path: ["application_id"], equals: app.id } } });
      expect(event.data).toMatchObject({
        changes: ["deploy_command", "deploy_branch"],
        before: { deploy_command: "./deploy.sh", deploy_branch: "main" },
        after: { deploy_command: "./deploy.sh --fast", deploy_branch: "release" },
      });
    });

    it("checks env_overrides again when the deploy is delivered: one accepted before its application's allowlist was narrowed ends failed, unrun", async () => {
      const { app } = await createApp({ deploy_command: '[ -n "$B_FLAG" ] && echo b-flag-set; sleep 1.5', allowed_env_overrides: ["A_FLAG", "B_FLAG"] });
      const first = await deploy({ application_id: app.id });
      expect(first.status).toBe(202);
      // Waits its turn behind the first, accepted under the allowlist of the moment.
      const second = await deploy({ application_id: app.id, env_overrides: { B_FLAG: "on" } });
      expect(second.status).toBe(202);
      expect((await mgmt("patch", `/applications/${app.id}`).send({ allowed_env_overrides: ["A_FLAG"] })).status).toBe(200);
      expect(await poll(first.body.operation_id)).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "" } });
      const refused = await poll(second.body.operation_id);
      expect(refused).toMatchObject({ status: "failed", result: { exit_code: null, stdout: "" } });
      expect(refused.error).toMatch(/^env_overrides refused when the deploy was delivered .*"env_overrides" key B_FLAG is not in the application's allowed_env_overrides; nothing ran$/);
    });

    it("refuses (409), unrun, a deploy whose application was changed between its read and its record, and deploys it as changed on a retry", async () => {
      const { app, dir } = await createApp({ deploy_command: "echo old > ran.txt" });
      let answer: Promise<Response> | undefined;
      // The deploy reads the application, records its operation, then waits for the row lock held here,
      // under which the update commits: the moment a PATCH commits between a deploy's read and its record.
      await testPrisma().$transaction(
        async (tx) => {
          const [me] = await tx.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
          await tx.$queryRaw`SELECT id FROM applications WHERE id = ${app.id}::uuid FOR UPDATE`;
          answer = deploy({ application_id: app.id }).then((r) => r);
          // Blocked by this transaction, not by anything else on the server (other test files run meanwhile).
          await waitFor(
            async () => {
              const [row] = await testPrisma().$queryRaw<{ n: bigint }[]>`
                SELECT count(*) AS n FROM pg_stat_activity WHERE ${me?.pid ?? -1}::int = ANY(pg_blocking_pids(pid)) AND query ILIKE '%FROM applications%FOR UPDATE%'`;
              return Number(row?.n) > 0 || null;
            },
            10_000,
            "the deploy to wait for the application's lock",
          );
          await tx.$executeRaw`UPDATE applications SET deploy_command = 'echo new > ran.txt' WHERE id = ${app.id}::uuid`;
        },
        { timeout: 20_000 },
      );
      const res = await (answer as Promise<Response>);
      expect(res.status).toBe(409);
      expect(res.body.detail).toMatch(/^Application "web" \(.+\) was changed \(deploy_command\) while this deploy was being accepted; nothing was started\. Retry/);
      const [stale] = await testPrisma().operation.findMany({ where: { serverId: fx.server.id, command: "echo old > ran.txt" } });
      expect(stale).toMatchObject({ status: "failed", dispatchedAt: null, error: "not started: the application changed (deploy_command) while the deploy was accepted" });
      expect(await testPrisma().deployment.count({ where: { applicationId: app.id } })).toBe(0);
      const retry = await deploy({ application_id: app.id });
      expect(retry.status).toBe(202);
      expect(await poll(retry.body.operation_id)).toMatchObject({ status: "completed", result: { exit_code: 0 } });
      expect(readFileSync(path.join(dir, "ran.txt"), "utf8")).toBe("new\n");
    });

    it("refuses to delete an application while its deployments run or wait their turn (409), and deletes it after", async () => {
      const { app } = await createApp({ deploy_command: "sleep 2" });
      const first = await deploy({ application_id: app.id, commit_ref: "one" });
      const waiting = await deploy({ application_id: app.id, commit_ref: "two" });
      const refused = await mgmt("delete", `/applications/${app.id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.detail).toMatch(/has 2 deployments in progress or waiting/);
      for (const r of [first, waiting]) expect((await poll(r.body.operation_id, 20_000)).status).toBe("completed");
      expect((await mgmt("delete", `/applications/${app.id}`)).status).toBe(204);
      expect(await testPrisma().auditEvent.count({ where: { type: "application.deleted", data: { path: ["application_id"], equals: app.id } } })).toBe(1);
    }, 30_000);

    it("is 404 for an unknown application or another tenant's", async () => {
      const missing = await deploy({ application_id: "00000000-0000-4000-8000-000000000000" });
      expect(missing.status).toBe(404);
      expect(missing.body.detail).toMatch(/Application .* not found/);
      const other = await createFixture();
      const foreign = await stack
        .api()
        .post("/api/v1/applications")
        .set("Authorization", `Bearer ${other.apiKey}`)
        .send({ name: "theirs", server_id: other.server.id, working_directory: "/tmp", deploy_command: "true" });
      expect((await deploy({ application_id: foreign.body.id })).status).toBe(404);
    });

    it("is 403 without the deploy operation or when the app's server is outside the key's servers", async () => {
      const { app } = await createApp();
      const execOnly = await createAutomationKey(fx.tenant.id, { allowedOperations: ["exec"] });
      const noOp = await deploy({ application_id: app.id }, execOnly.token);
      expect(noOp.status).toBe(403);
      expect(noOp.body.detail).toMatch(/"deploy" is not allowed/);
      const { server: elsewhere } = await createServer(fx.tenant.id);
      const otherServerKey = await createAutomationKey(fx.tenant.id, { allowedServerIds: [elsewhere.id], allowedOperations: ["deploy"] });
      const res = await deploy({ application_id: app.id }, otherServerKey.token);
      expect(res.status).toBe(403);
      expect(res.body.detail).toMatch(/allowed servers/);
      const rightKey = await createAutomationKey(fx.tenant.id, { allowedServerIds: [fx.server.id], allowedOperations: ["deploy"] });
      expect((await deploy({ application_id: app.id }, rightKey.token)).status).toBe(202);
    });

    it("is 409 when the application's server has no connected runner", async () => {
      const { server: idle } = await createServer(fx.tenant.id);
      const { app } = await createApp({ server_id: idle.id });
      const res = await deploy({ application_id: app.id });
      expect(res.status).toBe(409);
    });

    it("refuses each limit with 422 naming the field", async () => {
      const { app } = await createApp();
      const many = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`K${i}`, "v"]));
      const big = { BIG: "x".repeat(64 * 1024) };
      for (const [body, detail] of [
        [{ timeout_seconds: 0 }, /"timeout_seconds" must be greater than or equal to 1/],
        [{ timeout_seconds: 901 }, /"timeout_seconds" must be less than or equal to 900/],
        [{ timeout_seconds: 1.5 }, /"timeout_seconds" must be an integer/],
        [{ env_overrides: many }, /"env_overrides" has more than 200 keys/],
        [{ env_overrides: big }, /"env_overrides" is \d+ bytes; the limit is 65536/],
        [{ env_overrides: { "1BAD": "x" } }, /"env_overrides.*1BAD/],
        [{ env_overrides: { N: 1 } }, /must be a string/],
        [{ env_overrides: { RUNBRIDGE_COMMIT_REF: "evil" } }, /RUNBRIDGE_COMMIT_REF is reserved/],
        [{ commit_ref: "has space" }, /"commit_ref"/],
        [{ commit_ref: "x".repeat(256) }, /"commit_ref"/],
        // Read by the deploy command's git as an option, quoted or not.
        [{ commit_ref: "--output=/home/deploy/.profile" }, /"commit_ref" must be a branch, tag or SHA without whitespace, not starting with "-"/],
        [{ commit_ref: "-f" }, /not starting with "-"/],
        [{ run_id: "r".repeat(256) }, /"run_id"/],
        [{ run_context: Object.fromEntries(["a", "b", "c", "d", "e"].map((k) => [k, "n".repeat(1900)])) }, /"run_context" is larger than 8192 bytes/],
        [{ application_id: "not-a-uuid" }, /"application_id"/],
        [{ extra: true }, /"extra" is not allowed/],
      ] as const) {
        const res = await deploy({ application_id: app.id, ...body });
        expect([res.status, res.body.detail]).toEqual([422, expect.stringMatching(detail)]);
      }
      // The limits themselves are accepted: 200 keys, and timeouts of 1 and 900.
      const exactly200 = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`K${i}`, "v"]));
      for (const body of [{ env_overrides: exactly200 }, { timeout_seconds: 1 }, { timeout_seconds: 900 }]) {
        const res = await deploy({ application_id: app.id, ...body });
        expect(res.status).toBe(202);
        await poll(res.body.operation_id);
      }
    });
  });
});

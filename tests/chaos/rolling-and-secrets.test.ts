import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { FakeDocker } from "../helpers/fake-docker";
import { findLeaks } from "../helpers/leak-scan";
import { waitFor } from "../helpers/processes";
import { TcpBalancer } from "../helpers/tcp-balancer";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";
import type { Server } from "@runbridge/db";

describe("chaos: rolling SIGTERM of every dispatcher, and secrets at rest", () => {
  const suite = useStack({ dispatchers: 3, gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
  let stack: TestStack;
  let lb: TcpBalancer;

  beforeAll(async () => {
    ({ stack } = suite);
    lb = new TcpBalancer([...stack.dispatcherPorts]);
    await lb.listen();
  });
  afterAll(() => lb.close());

  it("replaces all three dispatchers one by one under load and loses nothing", async () => {
    const { tenant } = await createTenant();
    const { token } = await createAutomationKey(tenant.id, { rateLimit: 1000 });
    const servers: Server[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await createServer(tenant.id);
      await stack.startRunner(s.runnerToken, s.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
      servers.push(s.server);
    }
    const log = new ExecutionLog();
    const ids: string[] = [];
    let submitting = true;
    let n = 0;
    const refused: number[] = [];
    // A steady stream of operations while the dispatchers are replaced.
    const load = (async () => {
      while (submitting) {
        const batch = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            stack
              .api()
              .post("/api/automation/v1/exec")
              .set("Authorization", `Bearer ${token}`)
              .send({ server_id: servers[i]?.id, command: log.command(`roll-${n++}`, 0.5), timeout_seconds: 60 }),
          ),
        );
        for (const r of batch) {
          if (r.status === 200) ids.push(r.body.operation_id);
          else refused.push(r.status);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      const old = stack.dispatchers[i];
      await stack.startDispatcher();
      lb.backends = stack.dispatcherPorts.slice(i + 1);
      await old?.stop("SIGTERM", 30_000);
      expect(old?.output).toMatch(/shutting down/);
      await new Promise((r) => setTimeout(r, 1500));
    }
    submitting = false;
    await load;
    const results = await waitAllTerminal(ids, 90_000);
    const counts = log.counts();
    const completed = [...results.values()].filter((r) => r.status === "completed").length;
    report("rolling SIGTERM of 3 dispatchers under load", {
      operations: ids.length,
      refused_at_submit: refused.length,
      sigterms: 3,
      completed,
      failed: ids.length - completed,
      duplicated: [...counts.values()].filter((c) => c > 1).length,
      duration_ms: Date.now() - started,
    });
    expect(ids.length).toBeGreaterThanOrEqual(30);
    expect(refused).toEqual([]);
    for (const r of results.values()) expect(r).toMatchObject({ status: "completed", exitCode: 0 });
    for (const [, c] of counts) expect(c).toBe(1);
  });

  it("leaves no env value, deploy override or registry password in Postgres, Redis or any log", async () => {
    const { tenant, apiKey } = await createTenant();
    const { token } = await createAutomationKey(tenant.id, { rateLimit: 1000 });
    const { server, runnerToken } = await createServer(tenant.id);
    const docker = new FakeDocker();
    await stack.startRunner(runnerToken, server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url, PATH: docker.path } });
    const canary = `canary${Date.now()}`;
    const env = `${canary}-env`;
    const override = `${canary}-override`;
    const password = `${canary}-password`;
    const auto = (p: string) => stack.api().post(`/api/automation/v1${p}`).set("Authorization", `Bearer ${token}`);
    const mgmt = (p: string) => stack.api().post(`/api/v1${p}`).set("Authorization", `Bearer ${apiKey}`);

    const ran = await auto("/exec").send({ server_id: server.id, command: 'echo "$SECRET_VALUE"', env: { SECRET_VALUE: env } });
    expect(ran.body).toMatchObject({ status: "completed", stdout: "***\n" });

    const dir = mkdtempSync(path.join(tmpdir(), "rb-app-"));
    const app = await mgmt("/applications").send({ name: "shop", server_id: server.id, working_directory: dir, deploy_command: 'echo "deploying $RUNBRIDGE_COMMIT_REF with $FLAG"' });
    expect(app.status).toBe(201);
    const deploy = await auto("/deploy").send({ application_id: app.body.id, env_overrides: { FLAG: override } });
    expect(deploy.status).toBe(202);

    const cred = await mgmt("/registry-credentials").send({ name: "ghcr", registry_url: "ghcr.io", username: "octo", password });
    expect(cred.status).toBe(201);
    const login = await auto("/registry-auth/login").send({ server_id: server.id, credential_id: cred.body.id });
    expect(login.status).toBe(202);
    await waitAllTerminal([deploy.body.operation_id, login.body.operation_id], 30_000);
    const deployed = await waitFor(async () => {
      const r = await stack.api().get(`/api/automation/v1/operations/${deploy.body.operation_id}`).set("Authorization", `Bearer ${token}`);
      return r.body.status === "completed" ? r.body : null;
    });
    expect(deployed.result.stdout).toBe("deploying main with ***\n");
    // The password reached docker on stdin only.
    const loginCall = docker.calls().find((c) => c.argv[0] === "login");
    expect(loginCall?.stdin).toBe(password);
    expect(loginCall?.argv.join(" ")).not.toContain(password);

    for (const secret of [env, override, password]) expect({ secret, leaks: await findLeaks(stack, secret) }).toEqual({ secret, leaks: [] });
    report("secrets at rest", { canaries: 3, places_checked: ["pg_dump", "every redis key and value", "dispatcher and runner logs"], occurrences: 0 });
  });
});

import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { TcpBalancer } from "../helpers/tcp-balancer";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";
import type { Server } from "@runbridge/db";

/** kill -9 one of three dispatchers with operations in flight: all finish, none twice. */
describe("chaos: a dispatcher dies with operations in flight", () => {
  const suite = useStack({ dispatchers: 3, dispatcher: { JOB_LOCK_MS: "2000", RESULT_GRACE_SECONDS: "10" }, gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
  let stack: TestStack;
  let lb: TcpBalancer;

  beforeAll(async () => {
    ({ stack } = suite);
    lb = new TcpBalancer(stack.dispatcherPorts);
    await lb.listen();
  });
  afterAll(() => lb.close());

  it("kill -9 with 60 operations in flight: every one completes exactly once", async () => {
    const { tenant } = await createTenant();
    const { token } = await createAutomationKey(tenant.id);
    const servers: Server[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await createServer(tenant.id);
      // Through the balancer: runners spread over the three dispatchers.
      await stack.startRunner(s.runnerToken, s.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
      servers.push(s.server);
    }
    const log = new ExecutionLog();
    const N = 60;
    const submitted = Promise.all(
      Array.from({ length: N }, (_, i) =>
        stack
          .api()
          .post("/api/automation/v1/exec")
          .set("Authorization", `Bearer ${token}`)
          .send({ server_id: servers[i % servers.length]?.id, command: log.command(`op-${i}`, 1 + (i % 3) * 0.5), timeout_seconds: 60 }),
      ),
    );
    await new Promise((r) => setTimeout(r, 400));
    const victim = stack.dispatchers[0];
    victim?.child.kill("SIGKILL");
    const killedAt = Date.now();
    lb.backends = stack.dispatcherPorts.slice(1);

    const responses = await submitted;
    for (const r of responses) expect([200]).toContain(r.status);
    const ids = responses.map((r) => r.body.operation_id as string);
    const results = await waitAllTerminal(ids, 90_000);
    const recoveryMs = Date.now() - killedAt;

    const counts = log.counts();
    const duplicated = [...counts.values()].filter((c) => c > 1).length;
    const statuses = [...results.values()].map((r) => r.status);
    const completed = statuses.filter((s) => s === "completed").length;
    report("kill -9 one of 3 dispatchers", { operations: N, kills: 1, completed, failed: N - completed, lost: 0, duplicated, recovery_ms: recoveryMs });

    expect(duplicated).toBe(0);
    for (const [id, r] of results) {
      expect({ id, status: r.status, error: r.error }).toEqual({ id, status: "completed", error: null });
    }
    for (let i = 0; i < N; i++) expect(counts.get(`op-${i}`)).toBe(1);
  });
});

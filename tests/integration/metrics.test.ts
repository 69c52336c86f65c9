import { randomUUID } from "node:crypto";
import request from "supertest";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { type Proc, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";
import { RUNNER_VERSION } from "../../apps/runner/src/agent";
import { sample } from "../helpers/metrics";

/**
 * /metrics on the gateway and the dispatcher after real traffic, and the ids
 * carried on log lines. The gateway runs as its own process here, so its
 * stdout (the JSON log) can be read.
 */
describe("metrics and structured logs", () => {
  let gateway: Proc;
  // Declared before useStack, so it runs first: the gateway process stops before the stack does.
  afterAll(() => gateway?.stop());
  const suite = useStack({ dispatcher: { LOG_LEVEL: "debug" } });
  let stack: TestStack;
  let gatewayUrl: string;
  let fx: Fixture;
  let dispatcherUrl: string;

  beforeAll(async () => {
    ({ stack } = suite);
    ({ proc: gateway, url: gatewayUrl } = await stack.startGatewayProcess({ LOG_LEVEL: "debug" }));
    dispatcherUrl = `http://127.0.0.1:${stack.dispatcherPorts[0]}`;
    fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id);
  });

  const exec = (command: string) =>
    request(gatewayUrl).post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command });

  it("counts gateway requests by route template and status, and accepted operations by type", async () => {
    const ok = await exec("echo metered");
    expect(ok.body).toMatchObject({ status: "completed", stdout: "metered\n" });
    const opId: string = ok.body.operation_id;
    await request(gatewayUrl).get(`/api/automation/v1/operations/${opId}`).set("Authorization", `Bearer ${fx.token}`).expect(200);
    await request(gatewayUrl).get("/no/such/route/123").expect(404);

    const res = await request(gatewayUrl).get("/metrics");
    expect(res.status).toBe(200);
    // Only the exact path: the public proxy blocks /metrics, and must not be walked round by spelling.
    for (const spelling of ["/METRICS", "/metrics/", "/Metrics"]) expect((await request(gatewayUrl).get(spelling)).status).toBe(404);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    const text = res.text;
    expect(sample(text, "runbridge_gateway_http_requests_total", { method: "POST", route: "/api/automation/v1/exec", status: "200" })).toBe(1);
    // Ids in paths never become labels: the route template does.
    expect(sample(text, "runbridge_gateway_http_requests_total", { method: "GET", route: "/api/automation/v1/operations/:operationId", status: "200" })).toBe(1);
    expect(sample(text, "runbridge_gateway_http_requests_total", { method: "GET", route: "unmatched", status: "404" })).toBe(1);
    expect(sample(text, "runbridge_gateway_http_request_duration_seconds_count", { method: "POST", route: "/api/automation/v1/exec", status: "200" })).toBe(1);
    expect(sample(text, "runbridge_gateway_operations_accepted_total", { type: "exec" })).toBe(1);
    expect(sample(text, "runbridge_gateway_process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(text).not.toContain(opId);
    expect(text).not.toContain("/no/such/route");
    expect(text).not.toContain("metered");
  });

  it("labels a route's own refusals, and every spelling of its mount point, with the route's full template", async () => {
    const key = { Authorization: `Bearer ${fx.token}` };
    // Answered by the app's error middleware, after Express has left the route's router.
    await request(gatewayUrl).post("/api/automation/v1/exec").set(key).send({}).expect(422);
    await request(gatewayUrl).get(`/api/automation/v1/operations/${randomUUID()}`).set(key).expect(404);
    // Express matches mount points case-insensitively: one series whatever the spelling.
    await request(gatewayUrl).get(`/API/Automation/V1/operations/${randomUUID()}`).set(key).expect(404);
    // Two routes whose paths under their mount points are the same.
    await request(gatewayUrl).get("/api/automation/v1/operations?status=bogus").set(key).expect(422);
    await request(gatewayUrl).get("/api/v1/operations?status=bogus").set("Authorization", `Bearer ${fx.apiKey}`).expect(422);

    const text = (await request(gatewayUrl).get("/metrics").expect(200)).text;
    const count = (method: string, route: string, status: string) => sample(text, "runbridge_gateway_http_requests_total", { method, route, status });
    expect(count("POST", "/api/automation/v1/exec", "422")).toBe(1);
    expect(count("GET", "/api/automation/v1/operations/:operationId", "404")).toBe(2);
    expect(count("GET", "/api/automation/v1/operations", "422")).toBe(1);
    expect(count("GET", "/api/v1/operations", "422")).toBe(1);
    // Every route label is a full template (or unmatched): none without its mount point, none spelled as a request spelled it.
    const routes = new Set([...text.matchAll(/^runbridge_gateway_http_requests_total\{[^}]*route="([^"]*)"/gm)].map((m) => m[1]));
    for (const route of routes) expect([route, /^(unmatched|\/api\/automation\/v1\/|\/api\/v1\/|\/(metrics|healthz|readyz)$)/.test(route ?? "")]).toEqual([route, true]);
  });

  it("reports queue depth, connected runners, finished operations and delivery latency on the dispatcher", async () => {
    const ok = await exec("echo second");
    expect(ok.body.status).toBe("completed");
    // A delivery job may still be recording its completion (or, on a loaded machine, waiting out a
    // retry that will find its operation finished) just after the answer: the queue drains to zero.
    const scrape = async () => (await request(dispatcherUrl).get("/metrics").expect(200)).text;
    const drained = (t: string) => ["waiting", "active", "delayed"].every((state) => sample(t, "runbridge_dispatcher_queue_jobs", { state }) === 0);
    const text = await waitFor(async () => {
      const t = await scrape();
      return drained(t) ? t : null;
    }, 10_000, "the queue to drain").catch(async (err: unknown) => {
      // Say which job did not drain, and what the dispatcher logged about it.
      const jobs = await stack.gateway.queue.getJobs(["waiting", "active", "delayed", "failed"]);
      const states = await Promise.all(jobs.map(async (j) => `${j.id} ${await j.getState()} attempts=${j.attemptsMade} ${j.failedReason ?? ""}`));
      const lines = jobs.flatMap((j) => (stack.dispatchers[0]?.output ?? "").split("\n").filter((l) => j.id && l.includes(j.id)));
      throw new Error(`${String(err)}\njobs:\n${states.join("\n")}\ndispatcher log:\n${lines.join("\n")}`);
    });
    expect(sample(text, "runbridge_dispatcher_connected_runners", { version: RUNNER_VERSION })).toBe(1);
    expect(sample(text, "runbridge_dispatcher_connected_runners", { version: "unknown" })).toBeUndefined();
    for (const state of ["waiting", "active", "delayed"]) expect(sample(text, "runbridge_dispatcher_queue_jobs", { state })).toBe(0);
    expect(sample(text, "runbridge_dispatcher_operations_finished_total", { status: "completed", type: "exec", reason: "none" })).toBe(2);
    expect(sample(text, "runbridge_dispatcher_delivery_latency_seconds_count", { type: "exec" })).toBe(2);
    expect(text).not.toContain(ok.body.operation_id);
    expect(text).not.toContain(fx.server.id);
  });

  it("reads the queue depth from Redis at scrape time", async () => {
    // A delayed job is counted without being run; removed again before it is due.
    const delayed = async () => sample((await request(dispatcherUrl).get("/metrics")).text, "runbridge_dispatcher_queue_jobs", { state: "delayed" });
    const before = (await delayed()) ?? 0;
    await stack.gateway.queue.add("depth-probe", { probe: true }, { delay: 120_000, jobId: "depth-probe" });
    try {
      expect(await delayed()).toBe(before + 1);
    } finally {
      await stack.gateway.queue.remove("depth-probe");
    }
    expect(await delayed()).toBe(before);
  });

  it("puts the request id on every gateway line about a request and the operation id on dispatcher lines", async () => {
    const res = await exec("echo logged").set("X-Request-Id", "req-logs-test-1");
    expect(res.headers["x-request-id"]).toBe("req-logs-test-1");
    const opId: string = res.body.operation_id;
    await waitFor(async () => stack.dispatchers[0]!.output.includes(`"operationId":"${opId}"`) && /operation finished/.test(stack.dispatchers[0]!.output), 10_000, "dispatcher log lines");

    await gateway.waitForOutput(/"requestId":"req-logs-test-1"[^\n]*"status":200|"status":200[^\n]*"requestId":"req-logs-test-1"/);
    const gatewayLines = gateway.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const accepted = gatewayLines.find((l) => l.message === "operation accepted" && l.operationId === opId);
    // "operation accepted" is logged deep in the service layer, which is never handed the request id.
    expect(accepted).toMatchObject({ requestId: "req-logs-test-1", service: "gateway", level: "info" });
    const access = gatewayLines.find((l) => l.message === "request" && l.requestId === "req-logs-test-1");
    expect(access).toMatchObject({ method: "POST", status: 200, path: "/api/automation/v1/exec" });
    for (const line of gatewayLines.filter((l) => JSON.stringify(l).includes(opId))) expect(line.requestId).toBe("req-logs-test-1");

    const dispatcherLines = stack.dispatchers[0]!.output
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes(opId))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(dispatcherLines.map((l) => l.message)).toEqual(expect.arrayContaining(["operation delivered", "operation finished"]));
    for (const line of dispatcherLines) expect(line.operationId).toBe(opId);
  });

  it("counts the operations a gateway ends itself in the dispatchers' series, so the sum over services counts each ended operation once", async () => {
    // Accepted, its job not yet taken by any dispatcher: a cancel ends it at the gateway.
    const pending = await createOperation(fx.tenant.id, fx.server.id, { type: "restart" });
    const cancelled = await request(gatewayUrl).post(`/api/automation/v1/operations/${pending.id}/cancel`).set("Authorization", `Bearer ${fx.token}`).send({});
    expect(cancelled.body).toMatchObject({ status: "cancelled" });

    /** runbridge_dispatcher_operations_finished_total of one process, by "status/type" (summed over reasons). */
    const finished = async (url: string, service: string) => {
      const text = (await request(url).get("/metrics").expect(200)).text;
      const series = new Map<string, number>();
      for (const [status, type, reason] of [...text.matchAll(/^runbridge_dispatcher_operations_finished_total\{[^}]*status="(\w+)",type="(\w+)",reason="(\w+)"/gm)].map((m): [string, string, string] => [m[1] ?? "", m[2] ?? "", m[3] ?? ""])) {
        const n = sample(text, "runbridge_dispatcher_operations_finished_total", { status, type, reason, service });
        if (n === undefined) throw new Error(`no ${service} series for ${status}/${type}/${reason}`);
        series.set(`${status}/${type}`, (series.get(`${status}/${type}`) ?? 0) + n);
      }
      return series;
    };
    const byGateway = await finished(gatewayUrl, "gateway");
    const byDispatcher = await finished(dispatcherUrl, "dispatcher");
    expect(byGateway.get("cancelled/restart")).toBe(1);
    expect(byDispatcher.get("cancelled/restart")).toBeUndefined();

    // Every operation this file ended (all under its tenant), each counted by exactly one process.
    const ended = await testPrisma().operation.groupBy({ by: ["status", "type"], where: { tenantId: fx.tenant.id, status: { not: "running" } }, _count: { _all: true } });
    const inDatabase = Object.fromEntries(ended.map((r) => [`${r.status}/${r.type}`, r._count._all]));
    const counted: Record<string, number> = {};
    for (const [k, v] of [...byGateway, ...byDispatcher]) counted[k] = (counted[k] ?? 0) + v;
    expect(counted).toEqual(inDatabase);
    expect(inDatabase).toMatchObject({ "completed/exec": 3, "cancelled/restart": 1 });
  });

  it("reports each process's PostgreSQL pool: open, idle and waiting, within its DB_POOL_SIZE", async () => {
    expect((await exec("true")).body.status).toBe("completed");
    for (const url of [gatewayUrl, dispatcherUrl]) {
      const text = (await request(url).get("/metrics").expect(200)).text;
      const service = url === gatewayUrl ? "gateway" : "dispatcher";
      const open = sample(text, `runbridge_${service}_db_pool`, { state: "open" }) ?? -1;
      const idle = sample(text, `runbridge_${service}_db_pool`, { state: "idle" }) ?? -1;
      // The exec's statements went through this pool, and it stays within the default DB_POOL_SIZE.
      expect([service, open >= 1 && open <= 10, idle >= 0 && idle <= open]).toEqual([service, true, true]);
      expect([service, sample(text, `runbridge_${service}_db_pool`, { state: "waiting" })]).toEqual([service, 0]);
    }
  });
});

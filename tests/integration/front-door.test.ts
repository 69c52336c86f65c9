import { randomUUID } from "node:crypto";
import http from "node:http";
import { TokenKind, generateToken } from "@runbridge/common";
import { needsAutomationKey } from "../../apps/gateway/src/front-door";
import { AUTOMATION_BASE, AUTOMATION_ROUTES } from "../../apps/gateway/src/routes/automation/paths";
import { createAutomationKey, createFixture, createOperation } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/**
 * The gateway's front door: Automation API requests are authenticated before
 * Express, and refusals answered there. What must hold is that nobody can
 * tell from outside — same answers, same metrics — and that whatever it does
 * not recognise is still authenticated, once, inside Express.
 */
describe("gateway front door", () => {
  const suite = useStack();
  let stack: TestStack;
  let fx: Fixture;
  let opId: string;
  let port: number;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    opId = (await createOperation(fx.tenant.id, fx.server.id, { status: "completed", exitCode: 0 })).id;
    port = Number(new URL(stack.url).port);
  });

  /** A request written as given: an absolute-form target or an odd spelling reaches the server untouched. */
  function raw(method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method, path: target, headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Requests counted under a route label, for one status or all of them. */
  async function metric(route: string, status?: string, method = "GET"): Promise<number> {
    const text = (await stack.api().get("/metrics")).text;
    return text
      .split("\n")
      .filter((l) => l.startsWith("runbridge_gateway_http_requests_total{") && l.includes(`route="${route}"`) && (status === undefined || l.includes(`status="${status}"`)) && l.includes(`method="${method}"`))
      .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
  }

  it("answers a refusal as the error middleware would: status, {detail}, its headers, the request id, counted in the metrics", async () => {
    const route = "/api/automation/v1/operations/:operationId";
    const before = await metric(route, "401");
    const unknown = await stack
      .api()
      .get(`/api/automation/v1/operations/${opId}`)
      .set("Authorization", `Bearer ${generateToken(TokenKind.AutomationKey)}`)
      .set("X-Request-Id", "front-door-1");
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual({ detail: "Invalid API key" });
    expect(unknown.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(unknown.headers["www-authenticate"]).toBe('Bearer realm="runbridge"');
    expect(unknown.headers["x-request-id"]).toBe("front-door-1");
    expect(await metric(route, "401")).toBe(before + 1);

    const { token } = await createAutomationKey(fx.tenant.id, { rateLimit: 1 });
    const poll = () => stack.api().get(`/api/automation/v1/operations/${opId}`).set("Authorization", `Bearer ${token}`);
    expect((await poll()).status).toBe(200);
    const limited = await poll();
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ detail: expect.stringMatching(/Rate limit of 1 requests per minute exceeded/) });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(limited.headers["ratelimit-remaining"]).toBe("0");
    expect(limited.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("counts each refusal under the route it was for, with the label Express gives the route's own answers", async () => {
    const { token } = await createAutomationKey(fx.tenant.id, { rateLimit: 1000 });
    const admitted = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
    const refused = { Authorization: `Bearer ${generateToken(TokenKind.AutomationKey)}` };
    const ids: string[] = [];
    const unmatchedBefore = await metric("unmatched", "401", "POST");
    for (const [method, path] of AUTOMATION_ROUTES) {
      const template = `${AUTOMATION_BASE}${path}`;
      const target = template.replace(":operationId", () => {
        ids.push(randomUUID());
        return ids[ids.length - 1] as string;
      });
      const before = await metric(template, undefined, method);
      // Routed by Express and answered by the route (its 200, 404 or 422): the label Express gives it.
      const inside = await raw(method, target, admitted, method === "POST" ? "{}" : undefined);
      expect([method, path, inside.status]).toEqual([method, path, path.includes(":") ? 404 : method === "POST" ? 422 : 200]);
      // Refused at the front door, spelled otherwise (Express would route both spellings there).
      const outside = await raw(method, `${target.replace(AUTOMATION_BASE, AUTOMATION_BASE.toUpperCase())}/`, refused);
      expect([method, path, outside.status]).toEqual([method, path, 401]);
      expect([method, path, await metric(template, undefined, method)]).toEqual([method, path, before + 2]);
    }
    // A path no route serves stays unmatched, refused or not; no id ever becomes a label.
    expect((await raw("POST", "/api/automation/v1/operations", refused)).status).toBe(401);
    expect(await metric("unmatched", "401", "POST")).toBe(unmatchedBefore + 1);
    const text = (await stack.api().get("/metrics")).text;
    for (const id of ids) expect(text).not.toContain(id);
  });

  it("counts the management API's authentication refusals under the route they were for", async () => {
    const forged = { Authorization: `Bearer ${generateToken(TokenKind.ApiKey)}` };
    const id = randomUUID();
    for (const [method, template] of [
      ["GET", "/api/v1/servers/:id"],
      ["POST", "/api/v1/servers/:id/runner-token"],
      ["DELETE", "/api/v1/automation-keys/:id"],
      ["PATCH", "/api/v1/applications/:id"],
      ["GET", "/api/v1/audit-events"],
      ["GET", "/api/v1/applications/:id/deployments"],
    ] as const) {
      const before = await metric(template, "401", method);
      const target = template.replace(":id", id);
      // Spelled otherwise too: Express would route both spellings there.
      for (const path of [target, `${target.toUpperCase().replace(id.toUpperCase(), id)}/`]) expect([method, path, (await raw(method, path, forged)).status]).toEqual([method, path, 401]);
      expect([method, template, await metric(template, "401", method)]).toEqual([method, template, before + 2]);
    }
    // A path no management route serves stays unmatched; no id becomes a label.
    const unmatched = await metric("unmatched", "401", "GET");
    expect((await raw("GET", `/api/v1/nothing-here/${id}`, forged)).status).toBe(401);
    expect(await metric("unmatched", "401", "GET")).toBe(unmatched + 1);
    expect((await stack.api().get("/metrics")).text).not.toContain(id);
  });

  it("counts under their route the answers Express gives before routing: scope and key refusals, a malformed body, an idempotent replay", async () => {
    const exec = "/api/automation/v1/exec";
    const cancel = "/api/automation/v1/operations/:operationId/cancel";
    const before = { 400: await metric(exec, "400", "POST"), 401: await metric(exec, "401", "POST"), 403: await metric(exec, "403", "POST") };
    const { token: deployOnly } = await createAutomationKey(fx.tenant.id, { allowedOperations: ["deploy"] });
    expect((await raw("POST", exec, { Authorization: `Bearer ${deployOnly}` }, "{}")).status).toBe(403);
    expect((await raw("POST", exec, { Authorization: `Bearer ${fx.token}`, "Content-Type": "application/json" }, "{not json")).status).toBe(400);
    // Not recognised by the front door: refused by the key check inside Express.
    expect((await raw("POST", `http://127.0.0.1:${port}${exec}`, {}, "{}")).status).toBe(401);
    expect(await metric(exec, "400", "POST")).toBe(before[400] + 1);
    expect(await metric(exec, "401", "POST")).toBe(before[401] + 1);
    expect(await metric(exec, "403", "POST")).toBe(before[403] + 1);

    // The retry of an accepted request is answered by the idempotency middleware, before the route.
    const pending = await createOperation(fx.tenant.id, fx.server.id);
    const cancelBefore = await metric(cancel, "202", "POST");
    const retry = () => stack.api().post(`/api/automation/v1/operations/${pending.id}/cancel`).set("Authorization", `Bearer ${fx.token}`).set("Idempotency-Key", `cancel-${pending.id}`).send({});
    expect((await retry()).status).toBe(202);
    const replay = await retry();
    expect(replay.status).toBe(202);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(await metric(cancel, "202", "POST")).toBe(cancelBefore + 2);
  });

  it("leaves requests it does not recognise to Express, which still authenticates them, counting the rate limit once", async () => {
    const target = `/api/automation/v1/operations/${opId}`;
    // An absolute-form request target (as sent to a proxy): the front door passes it on, Express routes it.
    expect(needsAutomationKey(`http://127.0.0.1:${port}${target}`)).toBe(false);
    const absolute = await raw("GET", `http://127.0.0.1:${port}${target}`);
    expect(absolute.status).toBe(401);
    expect(JSON.parse(absolute.body)).toEqual({ detail: expect.stringMatching(/Missing Authorization header/) });

    const { token } = await createAutomationKey(fx.tenant.id, { rateLimit: 2 });
    const auth = { Authorization: `Bearer ${token}` };
    const first = await raw("GET", `http://127.0.0.1:${port}${target}`, auth);
    expect(first.status).toBe(200);
    expect(first.headers["ratelimit-remaining"]).toBe("1");
    // Through the front door now (upper case: Express matches its mount points case-insensitively).
    const second = await raw("GET", target.toUpperCase().replace(opId.toUpperCase(), opId), auth);
    expect(second.status).toBe(200);
    expect(second.headers["ratelimit-remaining"]).toBe("0");
    expect((await raw("GET", target, auth)).status).toBe(429);
  });

  it("keeps the API description public, and nothing else under the Automation API", async () => {
    for (const p of ["/api/automation/v1/openapi.json", "/api/automation/v1/openapi.json/", "/API/Automation/V1/openapi.json", "/api/automation/v1/openapi.json#x"]) {
      const res = await raw("GET", p);
      expect([p, res.status]).toEqual([p, 200]);
      expect(JSON.parse(res.body)).toMatchObject({ openapi: expect.any(String) });
    }
    for (const [method, p] of [
      ["POST", "/api/automation/v1/openapi.json"],
      ["GET", "/api/automation/v1/openapi.json.bak"],
      ["GET", "/api/automation/v1"],
      ["GET", "/api/automation/v1/"],
      ["POST", "/API/AUTOMATION/V1/EXEC"],
      ["GET", "/api/automation/v1/no-such-route"],
    ] as const) {
      const res = await raw(method, p);
      expect([method, p, res.status]).toEqual([method, p, 401]);
    }
    // Not under the mount point at a segment boundary: not the Automation API at all.
    expect((await raw("GET", "/api/automation/v10/exec")).status).toBe(404);
    expect(needsAutomationKey("/api/automation/v10/exec")).toBe(false);
  });

  // Last: the gateway stays draining.
  it("an answer sent while draining closes its connection, refusals included", async () => {
    stack.gateway.startDraining();
    const refused = await stack.api().get(`/api/automation/v1/operations/${opId}`);
    expect(refused.status).toBe(401);
    expect(refused.headers.connection).toBe("close");
    const health = await stack.api().get("/healthz");
    expect(health.headers.connection).toBe("close");
    // A live-log stream too (it set keep-alive for proxies, over the drain's close).
    const logs = await stack.api().get(`/api/automation/v1/operations/${opId}/logs`).set("Authorization", `Bearer ${fx.token}`);
    expect(logs.status).toBe(200);
    expect(logs.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(logs.headers.connection).toBe("close");
  });
});

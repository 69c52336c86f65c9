import http from "node:http";
import { TokenKind, generateToken } from "@runbridge/common";
import { needsAutomationKey } from "../../apps/gateway/src/front-door";
import { closeTestPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createOperation } from "../helpers/factories";
import { TestStack } from "../helpers/stack";

/**
 * The gateway's front door: Automation API requests are authenticated before
 * Express, and refusals answered there. What must hold is that nobody can
 * tell from outside — same answers, same metrics — and that whatever it does
 * not recognise is still authenticated, once, inside Express.
 */
describe("gateway front door", () => {
  let stack: TestStack;
  let fx: Awaited<ReturnType<typeof createFixture>>;
  let opId: string;
  let port: number;

  beforeAll(async () => {
    stack = await TestStack.start();
    fx = await createFixture();
    opId = (await createOperation(fx.tenant.id, fx.server.id, { status: "completed", exitCode: 0 })).id;
    port = Number(new URL(stack.url).port);
  });
  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
  });

  /** A request written as given: an absolute-form target or an odd spelling reaches the server untouched. */
  function raw(method: string, target: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method, path: target, headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  async function metric(route: string, status: string): Promise<number> {
    const text = (await stack.api().get("/metrics")).text;
    const line = text
      .split("\n")
      .find((l) => l.startsWith("runbridge_gateway_http_requests_total{") && l.includes(`route="${route}"`) && l.includes(`status="${status}"`) && l.includes('method="GET"'));
    return line ? Number(line.split(" ").pop()) : 0;
  }

  it("answers a refusal as the error middleware would: status, {detail}, its headers, the request id, counted in the metrics", async () => {
    const before = await metric("unmatched", "401");
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
    expect(await metric("unmatched", "401")).toBe(before + 1);

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

import { checkReadiness, createLogger } from "@runbridge/common";

const logger = createLogger("test", "error");

describe("readiness checks (gateway and dispatcher /readyz)", () => {
  it("is ready when every store answers", async () => {
    expect(await checkReadiness({ postgres: async () => 1, redis: async () => "PONG" }, logger)).toEqual({
      ok: true,
      body: { status: "ok", checks: { postgres: "ok", redis: "ok" } },
    });
  });

  it("names the store that failed, never why", async () => {
    const r = await checkReadiness({ postgres: async () => Promise.reject(new Error("connect ECONNREFUSED db.internal:5432")), redis: async () => "PONG" }, logger);
    expect(r).toEqual({ ok: false, body: { status: "unavailable", checks: { postgres: "error", redis: "ok" }, detail: "not ready" } });
    expect(JSON.stringify(r.body)).not.toContain("db.internal");
  });

  it("reads a store that does not answer as down, after a bound, instead of holding the probe", async () => {
    const started = Date.now();
    const r = await checkReadiness({ postgres: async () => 1, redis: () => new Promise(() => undefined) }, logger);
    expect(r.body.checks).toEqual({ postgres: "ok", redis: "error" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    expect(Date.now() - started).toBeLessThan(6000);
  });
});

import { checkReadiness, createFailFastRedis, createLogger, pingRedis } from "@runbridge/common";

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

  it("does not read a fail-fast Redis client that is still making its first connection as down", async () => {
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    // Asked the moment the process starts: a plain PING is refused before the connection is up.
    const plain = createFailFastRedis(url);
    plain.on("error", () => undefined);
    await expect(plain.ping()).rejects.toThrow(/writeable/);
    plain.disconnect();

    const probe = createFailFastRedis(url);
    probe.on("error", () => undefined);
    try {
      expect(probe.status).not.toBe("ready");
      expect(await checkReadiness({ redis: () => pingRedis(probe) }, logger)).toMatchObject({ ok: true });
      // Once it has been up, a dropped connection fails at once, as before.
      probe.disconnect();
      const started = Date.now();
      expect((await checkReadiness({ redis: () => pingRedis(probe) }, logger)).body.checks).toEqual({ redis: "error" });
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      probe.disconnect();
    }
  });
});

import http from "node:http";
import request from "supertest";
import { testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/**
 * A gateway process told to stop (a rolling restart) does not sit out the
 * longest held request: held execs are answered at once with "running" (the
 * client polls another gateway), log streams end so their clients resume
 * elsewhere, and the process exits in seconds. The operations themselves are
 * untouched.
 */
describe("gateway shutdown", () => {
  const suite = useStackWithRunner();

  it("answers a held exec with running, ends a log stream without its end event, and exits promptly", async () => {
    const { stack, fx } = suite;
    const gw = await stack.startGatewayProcess();
    try {
      const held = request(gw.url)
        .post("/api/automation/v1/exec")
        .set("Authorization", `Bearer ${fx.token}`)
        .send({ server_id: fx.server.id, command: "sleep 4; echo done", timeout_seconds: 30 })
        .then((r) => r);
      const op = await waitFor(() => testPrisma().operation.findFirst({ where: { serverId: fx.server.id, command: "sleep 4; echo done" } }), 10_000, "the operation row");

      // A client following the operation's output.
      let streamed = "";
      const stream = new Promise<void>((resolve, reject) => {
        http
          .get(`${gw.url}/api/automation/v1/operations/${op.id}/logs`, { headers: { Authorization: `Bearer ${fx.token}` } }, (res) => {
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (streamed += chunk));
            res.on("end", () => resolve());
            res.on("error", reject);
          })
          .on("error", reject);
      });
      await waitFor(async () => streamed.includes("retry:"), 5000, "the log stream to open");

      const signalled = Date.now();
      gw.proc.child.kill("SIGTERM");
      const res = await held;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ operation_id: op.id, status: "running" });
      await stream;
      expect(streamed).not.toContain("event: end");
      const exited = await gw.proc.exited;
      expect(exited.code).toBe(0);
      // Well before the 4 s command ends, let alone EXEC_MAX_WAIT_SECONDS.
      expect(Date.now() - signalled).toBeLessThan(3000);

      // The operation was not touched: it completes, and another gateway reports it.
      await waitFor(async () => (await testPrisma().operation.findUnique({ where: { id: op.id } }))?.status === "completed", 15_000, "the operation to complete");
      const done = (await stack.api().get(`/api/automation/v1/operations/${op.id}`).set("Authorization", `Bearer ${fx.token}`)).body;
      expect(done).toMatchObject({ status: "completed", result: { exit_code: 0, stdout: "done\n" } });
    } finally {
      await gw.proc.stop("SIGKILL");
    }
  });

  it("does not hold its drain open for a retry waiting on another request's Idempotency-Key", async () => {
    const { stack, fx } = suite;
    const gw = await stack.startGatewayProcess();
    try {
      const body = { server_id: fx.server.id, command: "sleep 6; echo first", timeout_seconds: 30 };
      const key = `drain-${Date.now()}`;
      // The first attempt is held by another gateway; the retry, at this one, waits for its answer.
      const first = stack.api().post("/api/automation/v1/exec").set({ Authorization: `Bearer ${fx.token}`, "Idempotency-Key": key }).send(body).then((r) => r);
      await waitFor(() => testPrisma().operation.findFirst({ where: { serverId: fx.server.id, command: body.command } }), 10_000, "the first attempt's operation");
      const retry = request(gw.url).post("/api/automation/v1/exec").set({ Authorization: `Bearer ${fx.token}`, "Idempotency-Key": key }).send(body).then((r) => r);
      await new Promise((r) => setTimeout(r, 500));

      const signalled = Date.now();
      gw.proc.child.kill("SIGTERM");
      const res = await retry;
      expect(res.status).toBe(409);
      expect(res.headers["retry-after"]).toBeDefined();
      expect((await gw.proc.exited).code).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(3000);
      expect((await first).body).toMatchObject({ status: "completed", stdout: "first\n" });
    } finally {
      await gw.proc.stop("SIGKILL");
    }
  });
});

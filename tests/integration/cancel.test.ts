import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { runnerResult, scriptedRunner } from "../helpers/scripted-runner";
import { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** POST /operations/{id}/cancel through the real stack: gateway → Redis pub/sub → dispatcher → runner. */
describe("POST /api/automation/v1/operations/{id}/cancel", () => {
  // Requests answer `running` after 1 s, so a test can act while the command runs.
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const auth = (token = fx.token) => ({ Authorization: `Bearer ${token}` });
  const exec = (body: Record<string, unknown>, token = fx.token, serverId = fx.server.id) =>
    stack.api().post("/api/automation/v1/exec").set(auth(token)).send({ server_id: serverId, ...body });
  const cancel = (id: string, token = fx.token) => stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set(auth(token));
  const get = (id: string) => stack.api().get(`/api/automation/v1/operations/${id}`).set(auth());

  it("forgets a cancel its runner never confirmed once the operation has ended another way", async () => {
    const res = await exec({ command: "sleep 3; echo done" });
    const id = res.body.operation_id as string;
    // A cancel the gateway could only leave for the runner (e.g. requested while it was disconnected).
    await stack.redis.sadd(stack.keys.pendingCancels(fx.server.id), id);
    await waitFor(async () => ((await get(id)).body.status !== "running" ? true : null), 15_000, "the command to end");
    expect((await get(id)).body).toMatchObject({ status: "completed", result: { exit_code: 0 } });
    await waitFor(async () => (await stack.redis.sismember(stack.keys.pendingCancels(fx.server.id), id)) === 0, 5_000, "the pending cancel to be forgotten");
  });

  it("stops the whole process tree of a running command, and the operation ends as cancelled", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cancel-"));
    const bgFile = path.join(dir, "bg.pid");
    const shFile = path.join(dir, "sh.pid");
    // The child ignores TERM, so only the grace KILL of the whole group stops it.
    const res = await exec({ command: `sh -c 'trap "" TERM; sleep 300' & echo $! > ${bgFile}; echo $$ > ${shFile}; echo started; sleep 300`, timeout_seconds: 600 });
    expect(res.body).toEqual({ operation_id: expect.any(String), status: "running" });
    const id = res.body.operation_id as string;
    await waitFor(async () => existsSync(bgFile) && existsSync(shFile) && readFileSync(shFile, "utf8").trim() !== "", 10_000, "pid files");
    const pids = [Number(readFileSync(bgFile, "utf8")), Number(readFileSync(shFile, "utf8"))];
    expect(pids.every((p) => p > 0 && isAlive(p))).toBe(true);

    const c = await cancel(id).send({ reason: "superseded by a newer run" });
    expect(c.status).toBe(202);
    expect(c.body).toMatchObject({ operation_id: id, cancel_requested: true });
    expect(["running", "cancelled"]).toContain(c.body.status);

    const done = await waitFor(async () => {
      const r = await get(id);
      return r.body.status !== "running" ? r.body : null;
    }, 15_000);
    expect(done.status).toBe("cancelled");
    // The runner's error carries the reason given to the API.
    expect(done.error).toBe("cancelled on request: superseded by a newer run; the process group was killed");
    expect(done.result.stdout).toBe("started\n");
    for (const pid of pids) await waitFor(async () => !isAlive(pid), 10_000, `process ${pid} to be gone`);

    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: id }, orderBy: { createdAt: "asc" } });
    const requested = audit.find((a) => a.type === "operation.cancel_requested");
    expect(requested).toMatchObject({ automationKeyId: fx.key.id });
    expect(requested?.data).toMatchObject({ reason: "superseded by a newer run", operation_type: "exec" });
    expect(audit.map((a) => a.type)).toContain("operation.finished");
  });

  it("reaches a runner connected to another dispatcher", async () => {
    const two = await TestStack.start({ dispatchers: 2, gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
    try {
      const f = await createFixture();
      await two.startRunner(f.runnerToken, f.server.id, { dispatcher: 1 });
      const dir = mkdtempSync(path.join(tmpdir(), "rb-cancel-remote-"));
      const pidFile = path.join(dir, "sh.pid");
      const res = await two.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${f.token}`).send({ server_id: f.server.id, command: `echo $$ > ${pidFile}; sleep 300`, timeout_seconds: 600 });
      const id = res.body.operation_id as string;
      await waitFor(async () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 10_000, "pid file");
      const pid = Number(readFileSync(pidFile, "utf8"));
      const c = await two.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${f.token}`);
      expect(c.status).toBe(202);
      await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status === "cancelled", 15_000, "cancelled");
      await waitFor(async () => !isAlive(pid), 10_000, "command to be gone");
      // Sent once, by the dispatcher holding the socket.
      expect(two.dispatchers[1]?.output).toMatch(/cancel sent to runner/);
      expect(two.dispatchers[0]?.output).not.toMatch(/cancel sent to runner/);
    } finally {
      await two.stop();
    }
  });

  it("gets a cancel to a runner that was disconnected when it was sent, once it reconnects", async () => {
    // A scripted runner (the real wire protocol) that can drop and restore its connection at will.
    const { server, runnerToken } = await createServer(fx.tenant.id);
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken);
    const started: string[] = [];
    const cancels: string[] = [];
    const reasons: unknown[] = [];
    socket.on("operation:start", (op: { operationId: string }, ack: (r: unknown) => void) => {
      started.push(op.operationId);
      ack({ ok: true, state: "started" });
    });
    socket.on("operation:cancel", ({ operationId, reason }: { operationId: string; reason?: string }, ack: (r: { ok: boolean }) => void) => {
      cancels.push(operationId);
      reasons.push(reason);
      ack({ ok: true });
    });
    try {
      await stack.waitRunnerConnected(server.id);
      const res = await exec({ command: "sleep 300", timeout_seconds: 600 }, fx.token, server.id);
      const id = res.body.operation_id as string;
      await waitFor(async () => started.includes(id), 10_000, "start to reach the runner");

      socket.disconnect();
      await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(server.id))) === 0, 10_000, "runner to be offline");
      const c = await cancel(id).send({ reason: "wrong branch" });
      expect(c.status).toBe(202);
      expect(c.body).toMatchObject({ operation_id: id, status: "running", cancel_requested: true });
      expect(cancels).toEqual([]);

      socket.connect();
      await waitFor(async () => cancels.includes(id), 10_000, "cancel after reconnecting");
      // Only the id was kept for it: the reason comes back from the audit trail.
      expect(reasons[cancels.indexOf(id)]).toBe("wrong branch");
      // Confirmed: not sent again on the next connection.
      await waitFor(async () => (await stack.redis.sismember(stack.keys.pendingCancels(server.id), id)) === 0, 5000, "pending cancel cleared");
      const result = runnerResult(id, { status: "cancelled", exitCode: null, error: "cancelled on request" });
      expect(await socket.timeout(5000).emitWithAck("operation:result", result)).toMatchObject({ stored: true });
      expect((await get(id)).body).toMatchObject({ status: "cancelled", error: "cancelled on request" });
    } finally {
      socket.disconnect();
    }
  });

  it("ends an operation that was never handed to a runner at once, and it never runs", async () => {
    // The server looks connected (presence) but no runner holds its socket: delivery keeps retrying.
    const { server, runnerToken } = await createServer(fx.tenant.id);
    await stack.redis.set(stack.keys.runnerPresence(server.id), "nobody/none", "EX", 60);
    const dir = mkdtempSync(path.join(tmpdir(), "rb-cancel-undispatched-"));
    const marker = path.join(dir, "ran");
    const res = await exec({ command: `touch ${marker}` }, fx.token, server.id);
    expect(res.body.status).toBe("running");
    const id = res.body.operation_id as string;

    const c = await cancel(id);
    expect(c.status).toBe(202);
    expect(c.body).toEqual({ operation_id: id, status: "cancelled", cancel_requested: true });
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "cancelled", dispatchedAt: null, exitCode: null });
    expect(row.error).toMatch(/cancelled on request/);

    // A runner for that server connecting now must not get it.
    await stack.redis.del(stack.keys.runnerPresence(server.id));
    await stack.startRunner(runnerToken, server.id);
    await new Promise((r) => setTimeout(r, 2000));
    expect(existsSync(marker)).toBe(false);
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).dispatchedAt).toBeNull();
  });

  it("refuses to cancel an operation that already ended (409)", async () => {
    const res = await exec({ command: "echo quick" });
    const id = res.body.operation_id as string;
    await waitFor(async () => (await get(id)).body.status === "completed", 10_000);
    const c = await cancel(id);
    expect(c.status).toBe(409);
    expect(c.body.detail).toMatch(/already ended with status "completed"/);
  });

  it("hides another tenant's operation (404) and enforces the key's scopes (403)", async () => {
    const res = await exec({ command: "sleep 5", timeout_seconds: 10 });
    const id = res.body.operation_id as string;

    const other = await createTenant();
    const { token: otherToken } = await createAutomationKey(other.tenant.id);
    const foreign = await cancel(id, otherToken);
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual({ detail: expect.stringMatching(/not found/) });

    const { server: elsewhere } = await createServer(fx.tenant.id);
    const { token: serverScoped } = await createAutomationKey(fx.tenant.id, { allowedServerIds: [elsewhere.id] });
    const s = await cancel(id, serverScoped);
    expect(s.status).toBe(403);
    expect(s.body.detail).toMatch(/allowed servers/);

    const { token: restartOnly } = await createAutomationKey(fx.tenant.id, { allowedOperations: ["restart"] });
    const o = await cancel(id, restartOnly);
    expect(o.status).toBe(403);
    expect(o.body.detail).toMatch(/"exec" is not allowed/);

    const bad = await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set(auth()).send({ reason: 42 });
    expect(bad.status).toBe(422);
    expect(bad.body.detail).toMatch(/reason/);

    expect((await cancel("not-a-uuid")).status).toBe(404);
    // Still running: none of the refused requests touched it.
    expect((await get(id)).body.status).toBe("running");
    expect((await cancel(id)).status).toBe(202);
  });
});

/** The part of a socket.io client socket the scripted runner uses (loaded from the runner's own dependency). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  return !(existsSync(stat) && readFileSync(stat, "utf8").split(") ")[1]?.startsWith("Z"));
}

import { HandshakeRefusal, ResultsNamespace } from "@runbridge/contracts";
import { createRedis, hashToken } from "@runbridge/common";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createAutomationKey, createFixture, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

type Fixture = Awaited<ReturnType<typeof createFixture>>;

/** A connection made with a server's token that records what the dispatcher tells it. */
function watchedConnection(port: number, token: string) {
  const socket = scriptedRunner(port, token);
  const told: string[] = [];
  socket.on("runner:replaced", () => told.push("runner:replaced"));
  socket.on("runner:token-revoked", () => told.push("runner:token-revoked"));
  socket.on("disconnect", ((reason: string) => told.push(`disconnect:${reason}`)) as never);
  const outcome = new Promise<"connected" | string>((resolve) => {
    socket.on("connect", () => resolve("connected"));
    socket.on("connect_error", ((err: Error) => resolve(err.message)) as never);
  });
  return { socket, told, outcome };
}

/**
 * A server's runner token can be rotated (after a suspected leak): the old one
 * stops working at once, on every dispatcher, and the runner that held it
 * stops instead of knocking forever. A connection that replaces another one
 * of the same server (what a takeover with a leaked token looks like) is
 * audited. Two real dispatchers (pub/sub between them through Redis), real
 * runner processes, the gateway in-process.
 */
describe("runner token rotation", () => {
  const suite = useStack({ dispatchers: 2 });
  let stack: TestStack;
  const open: ScriptedSocket[] = [];

  beforeAll(() => {
    ({ stack } = suite);
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.disconnect();
  });

  const port = (i: number) => stack.dispatcherPorts[i] as number;
  const rotate = (fx: Pick<Fixture, "server" | "apiKey">, apiKey = fx.apiKey) =>
    stack.api().post(`/api/v1/servers/${fx.server.id}/runner-token`).set("Authorization", `Bearer ${apiKey}`).send();
  const exec = (fx: Fixture, command: string) => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command });
  const connection = (i: number, token: string) => {
    const c = watchedConnection(port(i), token);
    open.push(c.socket);
    return c;
  };
  const presenceGone = (serverId: string) => waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(serverId))) === 0, 10_000, "the runner to show as disconnected");

  it("a takeover with a leaked token is audited as runner.replaced; rotating ends it, and only the new token connects", async () => {
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 0 });

    // Someone who read the token connects from elsewhere (the other dispatcher): newest wins.
    const intruder = connection(1, fx.runnerToken);
    await expect(intruder.outcome).resolves.toBe("connected");
    await runner.waitForOutput(/replaced this one; not reconnecting/);
    const replaced = await waitFor(() => testPrisma().auditEvent.findFirst({ where: { serverId: fx.server.id, type: "runner.replaced" } }), 10_000, "the runner.replaced audit event");
    expect(replaced.tenantId).toBe(fx.tenant.id);
    expect(replaced.clientIp).toMatch(/127\.0\.0\.1/);
    expect(replaced.data).toMatchObject({
      new_connection: { address: expect.stringMatching(/127\.0\.0\.1/), dispatcher_id: "d1" },
      replaced: [{ address: expect.stringMatching(/127\.0\.0\.1/), dispatcher_id: "d0" }],
    });
    await stack.dispatchers[1]?.waitForOutput(/runner connection replaced by a newer one/);

    // Whoever reads Redis sees the notice: it names the old token without its hash (the runners' signature key).
    const notices: string[] = [];
    const spy = createRedis(stack.redisUrl);
    spy.on("message", (_channel: string, message: string) => notices.push(message));
    await spy.subscribe(stack.keys.runnerTokenRevoked);
    const res = await rotate(fx);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: fx.server.id, name: fx.server.name, runner_token: expect.stringMatching(/^rbr_/) });
    await waitFor(async () => notices.length > 0, 5000, "the revocation notice");
    spy.disconnect();
    expect(notices.join("\n")).not.toContain(hashToken(fx.runnerToken));
    const newToken = res.body.runner_token as string;
    expect(newToken).not.toBe(fx.runnerToken);
    // Shown once: only its hash is stored.
    expect((await testPrisma().server.findUniqueOrThrow({ where: { id: fx.server.id } })).runnerTokenHash).toBe(hashToken(newToken));

    // Told why, then sent away, by the dispatcher holding it (not the one the gateway happens to talk to).
    await waitFor(async () => intruder.told.includes("disconnect:io server disconnect"), 10_000, "the intruder to be disconnected");
    expect(intruder.told.slice(0, 2)).toEqual(["runner:token-revoked", "disconnect:io server disconnect"]);
    await presenceGone(fx.server.id);
    expect((await exec(fx, "true")).status).toBe(409);

    // The old token is refused everywhere.
    for (const i of [0, 1]) await expect(connection(i, fx.runnerToken).outcome).resolves.toBe(HandshakeRefusal.InvalidToken);

    // The real runner, started again with the new token, runs commands.
    await stack.startRunner(newToken, fx.server.id, { dispatcher: 0 });
    const done = await exec(fx, "echo after rotation");
    expect(done.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "after rotation\n" });

    const apiKey = await testPrisma().apiKey.findFirstOrThrow({ where: { keyHash: hashToken(fx.apiKey) } });
    const audit = await stack.api().get("/api/v1/audit-events").query({ type: "server.runner_token_rotated", server_id: fx.server.id }).set("Authorization", `Bearer ${fx.apiKey}`);
    expect(audit.status).toBe(200);
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0]).toMatchObject({ server_id: fx.server.id, client_ip: expect.stringMatching(/127\.0\.0\.1/), data: { by_api_key_id: apiKey.id, server_name: fx.server.name } });
    // The token itself is never in the audit trail.
    expect(JSON.stringify(audit.body)).not.toContain(newToken);
  });

  it("a runner sent away by another runner with its token lets its command end, says what to do and stops (exit 78), so the two do not take turns", async () => {
    const fx = await createFixture();
    const older = await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 0 });
    const submitted = stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "sleep 4; echo done", timeout_seconds: 8 })
      .then((res) => res);
    await older.waitForOutput(/operation started/);
    // A second machine set up with the same token (systemd would restart whichever exits 0), connected while
    // the command runs: long enough for a runner process to start on a loaded machine (1 s was not, once).
    await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 1, waitConnected: false });
    await waitFor(async () => !older.running, 15_000, "the replaced runner to stop");
    await expect(older.exited).resolves.toEqual({ code: 78, signal: null });
    expect(older.output).toMatch(/replaced this one; not reconnecting.*Each machine needs its own server and runner token/);
    // Its command was not cut off: it ended before the runner did.
    expect(older.output).toMatch(/operation finished.*"status":"completed"/);
    // And its result reached the platform, over one last results-only connection, audited.
    expect(older.output).toMatch(/delivered the results of the operations that were running when this runner was replaced/);
    const { id } = (await testPrisma().operation.findFirstOrThrow({ where: { serverId: fx.server.id } })) as { id: string };
    expect(await waitUntilEnded(id, 10_000)).toMatchObject({ status: "completed", exitCode: 0, stdout: "done\n" });
    const delivered = await waitFor(() => testPrisma().auditEvent.findFirst({ where: { serverId: fx.server.id, type: "runner.results_delivered" } }), 10_000, "the runner.results_delivered audit event");
    expect(delivered.data).toMatchObject({ results: 1 });
    // That connection replaced nothing: the newer runner is still the one connected.
    expect(await stack.redis.get(stack.keys.runnerPresence(fx.server.id))).toMatch(/^d1\//);
    expect(await testPrisma().auditEvent.count({ where: { serverId: fx.server.id, type: "runner.replaced" } })).toBe(1);
    await submitted;
  });

  it("a results-only connection needs the ticket a replacement gave: the token alone, or a made-up ticket, is refused", async () => {
    const fx = await createFixture();
    const refusal = (auth?: Record<string, string>) =>
      new Promise<string>((resolve, reject) => {
        const socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken, { namespace: ResultsNamespace, ...(auth ? { auth } : {}) });
        socket.on("connect", () => {
          socket.disconnect();
          reject(new Error("a results connection was let in without a valid ticket"));
        });
        socket.on("connect_error", ((err: Error) => resolve(err.message)) as never);
      });
    const handshakes = async (outcome: string) => {
      const text = await (await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`runbridge_dispatcher_runner_handshakes_total{outcome="${outcome}",`));
      return line ? Number(line.split(" ").pop()) : 0;
    };
    const before = { invalid: await handshakes("invalid_token"), accepted: await handshakes("accepted") };
    expect(await refusal()).toBe(HandshakeRefusal.NoResultsTicket);
    expect(await refusal({ resultsTicket: "made-up-ticket" })).toBe(HandshakeRefusal.NoResultsTicket);
    // Counted as refused, not as accepted (the token itself was good).
    expect(await handshakes("invalid_token")).toBe(before.invalid + 2);
    expect(await handshakes("accepted")).toBe(before.accepted);
    // A ticket given for another server does not open this one's.
    const other = await createFixture();
    await stack.redis.set(stack.keys.resultsTicket(other.server.id, "other-servers-ticket"), "1", "EX", 60);
    expect(await refusal({ resultsTicket: "other-servers-ticket" })).toBe(HandshakeRefusal.NoResultsTicket);
    // And one given for this server does.
    await stack.redis.set(stack.keys.resultsTicket(fx.server.id, "this-servers-ticket"), "1", "EX", 60);
    await expect(refusal({ resultsTicket: "this-servers-ticket" })).rejects.toThrow(/let in/);
  });

  it("a runner whose token is rotated says what to do and stops (exit 78, which systemd does not restart) instead of knocking again", async () => {
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 1 });
    expect((await rotate(fx)).status).toBe(200);
    await waitFor(async () => !runner.running, 15_000, "the runner to stop");
    await expect(runner.exited).resolves.toEqual({ code: 78, signal: null });
    expect(runner.output).toMatch(/token was revoked .*not reconnecting: set RUNBRIDGE_RUNNER_TOKEN/);
    // Connected once, before the rotation, and never again.
    expect(runner.output.match(/connected to dispatcher/g)).toHaveLength(1);
    await presenceGone(fx.server.id);
  });

  it("a runner started with a revoked token is refused, says so once and retries slowly, never in a loop", async () => {
    const fx = await createFixture();
    expect((await rotate(fx)).status).toBe(200);
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { waitConnected: false });
    await runner.waitForOutput(/does not accept this runner's token \(rotated, or not this server's\?\): set RUNBRIDGE_RUNNER_TOKEN/);
    await new Promise((r) => setTimeout(r, 3000));
    expect(runner.output.match(/does not accept this runner's token/g)).toHaveLength(1);
    expect(runner.output).toMatch(/"retryInMs":60000/);
    expect(await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))).toBe(0);
  });

  it("only the server's own tenant can rotate its token (another tenant gets 404), and only with a general API key", async () => {
    const fx = await createFixture();
    const conn = connection(0, fx.runnerToken);
    await expect(conn.outcome).resolves.toBe("connected");
    const other = await createTenant();
    expect((await rotate(fx, other.apiKey)).status).toBe(404);
    const { token: automationKey } = await createAutomationKey(fx.tenant.id);
    expect((await rotate(fx, automationKey)).status).toBe(401);
    expect((await stack.api().post(`/api/v1/servers/${fx.server.id}/runner-token`).send()).status).toBe(401);
    expect((await stack.api().post("/api/v1/servers/not-a-uuid/runner-token").set("Authorization", `Bearer ${fx.apiKey}`).send()).status).toBe(404);

    // Nothing changed: same token, same connection, no audit event.
    expect((await testPrisma().server.findUniqueOrThrow({ where: { id: fx.server.id } })).runnerTokenHash).toBe(hashToken(fx.runnerToken));
    await new Promise((r) => setTimeout(r, 300));
    expect(conn.socket.connected).toBe(true);
    expect(conn.told).toEqual([]);
    expect(await testPrisma().auditEvent.count({ where: { serverId: fx.server.id, type: "server.runner_token_rotated" } })).toBe(0);
    // The owner can.
    expect((await rotate(fx)).status).toBe(200);
    await waitFor(async () => !conn.socket.connected, 10_000, "the connection to be dropped");
    expect(await testPrisma().auditEvent.count({ where: { serverId: fx.server.id, type: "server.runner_token_rotated" } })).toBe(1);
  });

  it("a dispatcher that could not hear a rotation (its subscription was down) drops the connection once it is back", async () => {
    const fx = await createFixture();
    const conn = connection(0, fx.runnerToken);
    await expect(conn.outcome).resolves.toBe("connected");
    // A rotation whose message was lost: the stored token changes, nothing is published.
    await testPrisma().server.update({ where: { id: fx.server.id }, data: { runnerTokenHash: hashToken(`lost-${fx.runnerToken}`) } });
    await new Promise((r) => setTimeout(r, 300));
    expect(conn.socket.connected).toBe(true);
    // Cut the dispatchers' subscriber connections (and only theirs); they reconnect by themselves.
    const clients = (await stack.redis.call("CLIENT", "LIST", "TYPE", "pubsub")) as string;
    const ids = clients
      .split("\n")
      .filter((line) => line.includes(` name=${stack.prefix}:token-revocations `))
      .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
    expect(ids.length).toBe(2);
    for (const id of ids) await stack.redis.call("CLIENT", "KILL", "ID", id as string);
    await waitFor(async () => !conn.socket.connected, 15_000, "the connection with the rotated token to be dropped");
    expect(conn.told.slice(0, 2)).toEqual(["runner:token-revoked", "disconnect:io server disconnect"]);
  });
});

describe("a rotation whose announcement was never published", () => {
  // useStack also closes the test Prisma client after it, which this block's fixtures open again.
  const suite = useStack({ dispatcher: { RUNNER_TOKEN_RECHECK_SECONDS: "2" } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("is found by the dispatcher's periodic check, and the connection is dropped as after any rotation", async () => {
    const fx = await createFixture();
    const conn = watchedConnection(stack.dispatcherPorts[0] as number, fx.runnerToken);
    try {
      await expect(conn.outcome).resolves.toBe("connected");
      // As when the gateway had lost Redis: the stored token changes, nothing is published, no subscription drops.
      await testPrisma().server.update({ where: { id: fx.server.id }, data: { runnerTokenHash: hashToken(`unannounced-${fx.runnerToken}`) } });
      await waitFor(async () => !conn.socket.connected, 10_000, "the connection with the rotated token to be dropped");
      expect(conn.told.slice(0, 2)).toEqual(["runner:token-revoked", "disconnect:io server disconnect"]);
    } finally {
      conn.socket.disconnect();
    }
  });
});

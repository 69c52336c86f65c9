import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { hashToken, signForRunner } from "@runbridge/common";
import type { DispatcherConfig } from "../../apps/dispatcher/src/config";
import { serverRoom } from "../../apps/dispatcher/src/context";
import { createRunnerIo } from "../../apps/dispatcher/src/socket-server";
import { holdRowLock, testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/**
 * Whoever can publish on Redis — here a socket.io server on the dispatchers' adapter channels, with
 * no database and no token — reaches every runner through the adapter, which re-broadcasts what is
 * published there. A runner must act on nothing that is not signed for its connection: not a start
 * (a command run with no operation row, no audit event, no key), nor a "token revoked" (a runner
 * stopped for good). What the dispatchers send it, signed, still runs.
 */
describe("runner: messages that reach it through Redis without a dispatcher's signature", () => {
  const suite = useStackWithRunner();
  const dir = mkdtempSync(path.join(tmpdir(), "rb-unsigned-"));
  const http = createServer();
  let impostor: ReturnType<typeof createRunnerIo>;

  beforeAll(async () => {
    impostor = createRunnerIo(http, { REDIS_URL: suite.stack.redisUrl } as DispatcherConfig, suite.stack.keys.socketAdapter);
    // Once its adapter hears the dispatcher's answers (its subscriptions are made in the background).
    await waitFor(async () => (await impostor.io.in(serverRoom(suite.fx.server.id)).fetchSockets().catch(() => [])).length === 1, 10_000, "the runner, seen through Redis");
  });
  afterAll(() => impostor?.close());

  const exec = (command: string) =>
    suite.stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${suite.fx.token}`).send({ server_id: suite.fx.server.id, command });
  /** Broadcast to the runner's room through the adapter, acknowledged within `ms`: the answers that came (none: an empty list). */
  const broadcastWithin = (ms: number, event: string, payload: object) =>
    (impostor.io.to(serverRoom(suite.fx.server.id)).timeout(ms) as unknown as { emitWithAck(e: string, p: object): Promise<unknown[]> })
      .emitWithAck(event, payload)
      .catch((err: { responses?: unknown[] }) => err.responses ?? Promise.reject(err));
  const broadcast = (event: "operation:start" | "runner:token-revoked", payload: object) => broadcastWithin(5000, event, payload);

  it("refuses a start that is unsigned, or signed for another connection, and runs none of them", async () => {
    const marker = path.join(dir, "unsigned");
    const start = { operationId: randomUUID(), spec: { kind: "shell", command: `touch ${marker}` }, timeoutSeconds: 30 };
    const refused = { ok: false, error: expect.stringMatching(/^refused: the start was not signed for this runner's connection/) };
    expect(await broadcast("operation:start", start)).toEqual([refused]);
    // Right key, wrong connection (a signed message seen on Redis, replayed to another connection).
    const elsewhere = signForRunner({ socketId: "another-connection", tokenHash: hashToken(suite.fx.runnerToken) }, "operation:start", { ...start, operationId: randomUUID() });
    expect(await broadcast("operation:start", elsewhere)).toEqual([refused]);
    // What the adapter tells anyone on Redis about the connection (its id, data and handshake) holds
    // neither the token nor its hash, the signatures' key: a signature made with anything else is refused.
    const sockets = await impostor.io.in(serverRoom(suite.fx.server.id)).fetchSockets();
    expect(sockets).toHaveLength(1);
    const seen = JSON.stringify({ data: sockets[0]?.data, handshake: sockets[0]?.handshake });
    expect(seen).not.toContain(suite.fx.runnerToken);
    expect(seen).not.toContain(hashToken(suite.fx.runnerToken));
    const wrongKey = signForRunner({ socketId: sockets[0]?.id ?? "", tokenHash: hashToken("rbr_not-this-runners-token") }, "operation:start", { ...start, operationId: randomUUID() });
    expect(await broadcast("operation:start", wrongKey)).toEqual([refused]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(existsSync(marker)).toBe(false);
    expect(await testPrisma().operation.count({ where: { id: start.operationId } })).toBe(0);
  });

  it("leaves an unsigned ledger query or cancel unanswered (an answer would be read as 'unknown' or 'not started')", async () => {
    await expect(broadcastWithin(1500, "operation:query", { operationIds: [randomUUID()] })).resolves.toEqual([]);
    await expect(broadcastWithin(1500, "operation:cancel", { operationId: randomUUID() })).resolves.toEqual([]);
  });

  it("ignores an unsigned 'token revoked' and keeps taking operations", async () => {
    await broadcast("runner:token-revoked", {}).catch(() => undefined);
    // The dispatcher closes nothing on its own here: a runner that believed it would stop at its next disconnect.
    const sockets = await impostor.io.in(serverRoom(suite.fx.server.id)).fetchSockets();
    sockets[0]?.disconnect(true);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const res = await exec("echo still-here");
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "still-here\n" });
  });

  it("keeps a result that an answer forged through Redis says is stored, and delivers it once it really is", async () => {
    const { fx, stack } = suite;
    const command = `sleep 1.5; echo delivered-${randomUUID().slice(0, 8)}`;
    const answer = exec(command).then((res) => res.body as unknown);
    // Started (its start recorded), so that what waits on the row below is its result.
    const op = await waitFor(() => testPrisma().operation.findFirst({ where: { serverId: fx.server.id, command, startedAt: { not: null } } }), 10_000, "the operation to start");
    // The first attempt to store the result fails (the dispatcher answers "not stored"), and waits
    // until forged "stored" answers have reached the runner: a runner that took one would never send it again.
    const fn = `rb_refuse_${op.id.slice(0, 8)}`;
    const db = testPrisma();
    await db.$executeRawUnsafe(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
    await db.$executeRawUnsafe(`CREATE TRIGGER ${fn} BEFORE UPDATE ON operations FOR EACH ROW WHEN (NEW.id = '${op.id}' AND NEW.status <> 'running') EXECUTE FUNCTION ${fn}()`);
    try {
      const lock = holdRowLock("operations", op.id);
      await lock.blocked();
      // Acknowledgements of every number the runner may be waiting on, published as the adapter publishes.
      for (let id = 0; id < 200; id++) {
        impostor.io.of("/").adapter.broadcast({ type: 3, id, nsp: "/", data: [{ stored: true }] } as never, { rooms: new Set([serverRoom(fx.server.id)]), except: new Set() });
      }
      await waitFor(async () => stack.runners[0]?.output.includes("an answer to a result said stored without a valid signature"), 5_000, "the runner to see the forged answer");
      await lock.finish(async () => undefined);
    } finally {
      await db.$executeRawUnsafe(`DROP FUNCTION ${fn}() CASCADE`);
    }
    // Sent again (the outbox retries every few seconds), and stored.
    expect(await answer).toMatchObject({ status: "completed", exit_code: 0, stdout: `${command.split("echo ")[1]}\n` });
  });

  it("runs what the dispatcher sends it, signed (the control)", async () => {
    const res = await exec("echo signed");
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "signed\n" });
  });
});

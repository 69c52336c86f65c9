import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, mkdtempSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenKind, generateToken, hashToken, signForRunner } from "@runbridge/common";
import { SignedAnswer, type CancelRequest, type OperationResult, type StartAck, type StartOperation } from "@runbridge/contracts";
import type { DispatcherConfig } from "../../apps/dispatcher/src/config";
import type { RunnerSocket } from "../../apps/dispatcher/src/context";
import { createRunnerIo } from "../../apps/dispatcher/src/socket-server";
import { freshPrefix, testRedisUrl } from "../helpers/env";
import { type Proc, RUNNER_SCRIPT, startNode, waitFor } from "../helpers/processes";

/**
 * The dispatcher reads the pending cancels just before it sends a start, so a
 * cancel that lands right after that read reaches the runner first: it has no
 * process to kill yet. The start that follows must not run the command.
 *
 * A real runner process, talking to a socket.io server built as the
 * dispatcher builds it, which sends the cancel and then the start.
 */
describe("runner: a cancel that arrives before its start", () => {
  const config = { REDIS_URL: testRedisUrl(), RUNNER_ACK_TIMEOUT_MS: 5000 } as DispatcherConfig;
  const dir = mkdtempSync(path.join(tmpdir(), "rb-cancel-first-"));
  const results: OperationResult[] = [];
  let http: HttpServer;
  let closeIo: () => void;
  let runner: Proc;
  let socket: RunnerSocket;
  const token = generateToken(TokenKind.RunnerToken);
  // Signed as the dispatcher signs them (no token check here, so the socket carries no hash of its own).
  const signed = <P extends object>(event: string, payload: P) => signForRunner({ socketId: socket.id, tokenHash: hashToken(token) }, event, payload);
  const cancel = (req: CancelRequest) => socket.timeout(5000).emitWithAck("operation:cancel", signed("operation:cancel", req));

  beforeAll(async () => {
    http = createServer();
    const { io, close } = createRunnerIo(http, config, `${freshPrefix("cancel-first")}:socket.io`);
    closeIo = close;
    const connected = new Promise<RunnerSocket>((resolve) => io.on("connection", resolve));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    runner = startNode(RUNNER_SCRIPT, {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      RUNBRIDGE_RUNNER_TOKEN: token,
      RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
      RUNBRIDGE_WORKDIR: dir,
      LOG_LEVEL: "info",
    });
    socket = await connected;
    socket.on("operation:result", (result, ack) => {
      results.push(result);
      ack(signed(SignedAnswer.Result, { stored: true, operationId: result.operationId }));
    });
  });
  afterAll(async () => {
    await runner?.stop();
    socket?.disconnect(true);
    await new Promise<void>((resolve) => http.close(() => resolve()));
    closeIo();
  });

  const start = (operationId: string, command: string): Promise<StartAck> => {
    const op: StartOperation = { operationId, spec: { kind: "shell", command }, timeoutSeconds: 30 };
    return socket.timeout(5000).emitWithAck("operation:start", signed("operation:start", op));
  };
  const resultOf = (operationId: string) => waitFor(async () => results.find((r) => r.operationId === operationId), 10_000, `result of ${operationId}`);

  it("runs a command whose start comes alone (the control)", async () => {
    const id = randomUUID();
    const marker = path.join(dir, "control");
    expect(await start(id, `touch ${marker}`)).toEqual({ ok: true, state: "started" });
    expect(await resultOf(id)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(existsSync(marker)).toBe(true);
  });

  it("ends it as cancelled without running it, and a redelivered start does not run it either", async () => {
    const id = randomUUID();
    const marker = path.join(dir, "cancelled-first");
    // No process to kill yet: not ok, so the dispatcher keeps the cancel pending and keeps asking.
    expect(await cancel({ operationId: id })).toEqual({ ok: false });
    expect(await start(id, `touch ${marker}`)).toEqual({ ok: true, state: "started" });
    const result = await resultOf(id);
    expect(result).toMatchObject({ status: "cancelled", exitCode: null, stdout: "", stderr: "", error: "cancelled on request: before it started; the command was not run" });
    expect(await start(id, `touch ${marker}`)).toEqual({ ok: true, state: "already-finished" });
    await new Promise((r) => setTimeout(r, 1000));
    expect(existsSync(marker)).toBe(false);
    expect(runner.output).toMatch(/operation cancelled before its start arrived; not run/);
  });

  it("says why, when the cancel gave a reason", async () => {
    const id = randomUUID();
    const marker = path.join(dir, "cancelled-first-with-reason");
    expect(await cancel({ operationId: id, reason: "superseded" })).toEqual({ ok: false });
    expect(await start(id, `touch ${marker}`)).toEqual({ ok: true, state: "started" });
    expect(await resultOf(id)).toMatchObject({ status: "cancelled", error: "cancelled on request: superseded; it had not started, and the command was not run" });
    expect(existsSync(marker)).toBe(false);
  });

  it("also when the cancel arrives while the start's record is being written (before any process exists)", async () => {
    // Sent back to back, the cancel usually lands while the start awaits its durable start record;
    // when the record was written first, the process exists and is killed instead. Either way the
    // command never gets to its side effect; the test repeats until it has seen the first case.
    let overtook = 0;
    for (let attempt = 0; attempt < 15 && overtook === 0; attempt++) {
      const id = randomUUID();
      const marker = path.join(dir, `cancelled-while-recording-${attempt}`);
      const started = start(id, `sleep 5; touch ${marker}`);
      const cancelled = (await cancel({ operationId: id })) as { ok: boolean };
      expect(await started).toEqual({ ok: true, state: "started" });
      const result = await resultOf(id);
      if (!cancelled.ok) {
        overtook++;
        expect(result).toMatchObject({ status: "cancelled", exitCode: null, error: "cancelled on request: before it started; the command was not run" });
      } else {
        expect(result).toMatchObject({ status: "cancelled", exitCode: null, error: "cancelled on request; the process group was killed" });
      }
      expect(existsSync(marker)).toBe(false);
    }
    expect(overtook).toBe(1);
    await new Promise((r) => setTimeout(r, 1000));
    expect(readdirSync(dir).filter((f) => f.startsWith("cancelled-while-recording"))).toEqual([]);
  });
});

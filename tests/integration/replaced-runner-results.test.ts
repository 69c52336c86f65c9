import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenKind, generateToken, hashToken, signForRunner } from "@runbridge/common";
import { HandshakeRefusal, ResultsNamespace, SignedAnswer, SocketPath, type OperationResult, type StartAck } from "@runbridge/contracts";
import { ROOT, RUNNER_SCRIPT, listenOnLoopback, startNode, waitFor, type Proc } from "../helpers/processes";

interface FakeSocket {
  id: string;
  handshake: { auth: Record<string, unknown> };
  on(event: string, handler: (...args: never[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  disconnect(close: boolean): void;
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
}
interface FakeNamespace {
  use(fn: (socket: FakeSocket, next: (err?: Error) => void) => void): void;
  on(event: "connection", handler: (socket: FakeSocket) => void): void;
}
interface FakeIo extends FakeNamespace {
  of(name: string): FakeNamespace;
  close(cb: () => void): void;
}

/**
 * A runner that another one replaced delivers the result of what it was running then over one
 * last results-only connection. A dispatcher may refuse that handshake for a moment (shutting
 * down, its Redis unreachable): the runner tries again until its deadline. A real runner process
 * against a dispatcher played by the test (socket.io on the runner's wire protocol), which
 * refuses the first results handshake.
 */
describe("a replaced runner's results connection", () => {
  let http: HttpServer;
  let io: FakeIo;
  let port: number;
  let runner: Proc | undefined;

  beforeAll(async () => {
    const { Server } = createRequire(path.join(ROOT, "apps/dispatcher/package.json"))("socket.io") as { Server: new (http: HttpServer, opts: Record<string, unknown>) => FakeIo };
    http = createServer();
    io = new Server(http, { path: SocketPath, transports: ["websocket"] });
    port = await listenOnLoopback(http);
  });
  afterAll(async () => {
    if (runner?.running) await runner.stop("SIGKILL");
    await new Promise<void>((resolve) => io.close(() => resolve()));
  });

  /** A real runner process against the dispatcher the test plays, with a token and state directory of its own. */
  const startRunner = (): { token: string; proc: Proc } => {
    const stateDir = mkdtempSync(path.join(tmpdir(), "rb-replaced-"));
    const token = generateToken(TokenKind.RunnerToken);
    runner = startNode(RUNNER_SCRIPT, {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${port}`,
      RUNBRIDGE_RUNNER_TOKEN: token,
      RUNBRIDGE_STATE_DIR: stateDir,
      RUNBRIDGE_WORKDIR: stateDir,
      LOG_LEVEL: "info",
    });
    return { token, proc: runner };
  };

  it("is tried again after a refused handshake, and delivers the result", async () => {
    const handshakes: string[] = [];
    const stored: OperationResult[] = [];
    const results = io.of(ResultsNamespace);
    results.use((socket, next) => {
      const ticket = String(socket.handshake.auth.resultsTicket);
      handshakes.push(ticket);
      // The first attempt finds the dispatcher shutting down; the ticket is checked as the real one does.
      if (handshakes.length === 1) return next(new Error(HandshakeRefusal.ShuttingDown));
      next(ticket === "the-ticket" ? undefined : new Error(HandshakeRefusal.NoResultsTicket));
    });
    results.on("connection", (socket) => {
      socket.on("operation:result", ((result: OperationResult, ack: (res: object) => void) => {
        stored.push(result);
        // Signed for the connection, as a dispatcher answers: the runner sends an unsigned "stored" again.
        ack(signForRunner({ socketId: socket.id, tokenHash: hashToken(token) }, SignedAnswer.Result, { stored: true, operationId: result.operationId }));
      }) as never);
    });
    let main: FakeSocket | undefined;
    io.on("connection", (socket) => (main = socket));

    const { token, proc } = startRunner();
    const socket = await waitFor(async () => main, 15_000, "the runner to connect");
    const operationId = randomUUID();
    // Signed as a dispatcher signs what it sends a runner.
    const signed = (event: string, payload: object) => signForRunner({ socketId: socket.id, tokenHash: hashToken(token) }, event, payload);
    const start = signed("operation:start", { operationId, spec: { kind: "shell", command: "sleep 1; echo done" }, timeoutSeconds: 30 });
    const ack = (await socket.timeout(5000).emitWithAck("operation:start", start)) as StartAck;
    expect(ack).toEqual({ ok: true, state: "started" });
    // Another runner took the server over while the command runs.
    socket.emit("runner:replaced", signed("runner:replaced", { resultsTicket: "the-ticket" }));
    socket.disconnect(true);

    await expect(proc.exited).resolves.toEqual({ code: 78, signal: null });
    expect(handshakes).toEqual(["the-ticket", "the-ticket"]);
    expect(stored).toEqual([expect.objectContaining({ operationId, status: "completed", exitCode: 0, stdout: "done\n" })]);
    expect(proc.output).toMatch(/delivered the results of the operations that were running when this runner was replaced/);
  }, 30_000);

  it("stays stopped when its connection drops (not closed by the dispatcher) after it was told it was replaced", async () => {
    const connections: FakeSocket[] = [];
    io.on("connection", (socket) => connections.push(socket));
    const { token, proc } = startRunner();
    const socket = await waitFor(async () => connections[0], 15_000, "the runner to connect");
    socket.emit("runner:replaced", signForRunner({ socketId: socket.id, tokenHash: hashToken(token) }, "runner:replaced", {}));
    // The transport goes (a network blip, the dispatcher's process stopping) before any socket.io close.
    (socket as unknown as { conn: { close(): void } }).conn.close();

    await expect(proc.exited).resolves.toEqual({ code: 78, signal: null });
    expect(proc.output).toMatch(/"reason":"transport close"/);
    expect(connections).toHaveLength(1);
  }, 30_000);
});

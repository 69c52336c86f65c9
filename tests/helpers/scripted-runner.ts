import { createRequire } from "node:module";
import path from "node:path";
import { SocketPath, type OperationResult } from "@runbridge/contracts";
import { ROOT } from "./processes";

/** A runner speaking the real wire protocol, driven by the test: it can drop, restore or misbehave at will. */
export interface ScriptedSocket {
  on(event: string, handler: (...args: never[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  connect(): void;
  disconnect(): void;
  readonly connected: boolean;
  /** The connection's id, the same as the dispatcher's (what presence names); undefined until connected. */
  readonly id: string | undefined;
  timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<unknown> };
}

/**
 * Connects with a server's runner token to a dispatcher, using the runner's own socket.io-client; `namespace`
 * and `auth` for a replaced runner's results connection (ResultsNamespace, with its ticket). Connections to one
 * dispatcher share one transport unless `forceNew` (as a real runner's results connection does not share its main one's).
 */
export function scriptedRunner(
  dispatcherPort: number,
  runnerToken: string,
  opts: { headers?: Record<string, string>; namespace?: string; auth?: Record<string, string>; forceNew?: boolean } = {},
): ScriptedSocket {
  const { io } = createRequire(__filename)(path.join(ROOT, "apps/runner/node_modules/socket.io-client")) as { io: (url: string, opts: Record<string, unknown>) => ScriptedSocket };
  return io(`http://127.0.0.1:${dispatcherPort}${opts.namespace ?? ""}`, {
    path: SocketPath,
    transports: ["websocket"],
    auth: { token: runnerToken, ...opts.auth },
    reconnection: false,
    ...(opts.headers ? { extraHeaders: opts.headers } : {}),
    ...(opts.forceNew ? { forceNew: true } : {}),
  });
}

/** Resolves once the scripted runner is let in; rejects with the dispatcher's refusal. */
export function untilConnected(socket: ScriptedSocket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.on("connect", () => resolve());
    socket.on("connect_error", ((err: Error) => reject(err)) as never);
  });
}

/** A runner's result for an operation: completed with exit code 0, no output, started now; what differs as `overrides`. */
export function runnerResult(operationId: string, overrides: Partial<Omit<OperationResult, "operationId">> = {}): OperationResult {
  return {
    operationId,
    status: "completed",
    exitCode: 0,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMs: 5,
    startedAt: new Date().toISOString(),
    ...overrides,
  };
}

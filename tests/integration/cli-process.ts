import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { once } from "node:events";
import http from "node:http";
import path from "node:path";
import { ROOT } from "../helpers/processes";

/** A CI-free environment: nothing of the test runner's own CI leaks into the client's run_context. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...extra };
}

/** A running client process (the CLI or the Action's bundle) with its stdout and stderr kept apart. */
export class ClientProc {
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  readonly child;

  /** `node`: another Node version's binary to run it on (default: this one). */
  constructor(script: string, args: string[], env: Record<string, string>, node = process.execPath) {
    this.child = spawn(node, [path.join(ROOT, script), ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    // Decoded as a stream, so a character split across two reads stays whole.
    this.child.stdout.setEncoding("utf8").on("data", (d: string) => (this.stdout += d));
    this.child.stderr.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    // "close", not "exit": the process can exit before its last output has been read from the pipes.
    this.exited = once(this.child, "close").then(([code]) => code as number | null);
  }

  async waitFor(pattern: RegExp, where: "stdout" | "stderr" = "stdout", timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this[where])) {
      if (this.child.exitCode !== null) throw new Error(`exited (${this.child.exitCode}) before ${pattern}:\n${this.stdout}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export function runCli(args: string[], env: Record<string, string>): ClientProc {
  return new ClientProc("apps/cli/dist/main.js", args, env);
}

/** Runs to the end; returns exit code and output. */
export async function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = runCli(args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * What the fault-injecting proxy does with a request: pass it on, drop the
 * connection before the gateway sees it, pass it on but drop the connection
 * instead of answering (the client cannot know whether it ran), pass on the
 * headers and the first `cutAfterBytes` bytes of the answer's body and then
 * drop the connection (an answer or a stream cut mid-way),
 * hold it and pass it on only once `until` settles (a slow network: the
 * client is still waiting for its answer), pass it on but, once the gateway
 * has answered, answer `forwardThenStatus` instead with a proxy's error page
 * (nginx's 502 when its upstream died after handling it), or answer itself.
 */
export type ProxyAction =
  | "forward"
  | "drop"
  | "forward-then-drop"
  | { cutAfterBytes: number }
  | { forwardThenStatus: number }
  | { holdUntil: Promise<unknown> }
  | { status: number; headers?: Record<string, string>; body: unknown };

/**
 * An HTTP proxy in front of the real gateway, standing in for the network
 * between CI and runbridge (load balancers that reset connections, a server
 * version without some endpoint). It records every request it sees.
 */
/** An HTTP server of a test's own on a free loopback port, recording every request it sees. */
class LocalHttpServer {
  readonly seen: SeenRequest[] = [];
  url = "";
  private readonly server: http.Server;

  constructor(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
    this.server = http.createServer((req, res) => {
      this.seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      handle(req, res);
    });
  }

  /** `host`: an IPv4 address of this machine to listen on (another than loopback: see nonLoopbackAddress). */
  async start(host = "127.0.0.1"): Promise<this> {
    this.server.listen(0, host);
    await once(this.server, "listening");
    const addr = this.server.address();
    if (!addr || typeof addr !== "object") throw new Error("test server did not bind");
    this.url = `http://${host}:${addr.port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export class FaultProxy extends LocalHttpServer {
  constructor(
    private readonly target: string,
    private readonly plan: (req: SeenRequest, index: number) => ProxyAction = () => "forward",
  ) {
    super((req, res) => this.handle(req, res));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const index = this.seen.length - 1;
    const action = this.plan(this.seen[index] as SeenRequest, index);
    if (action === "drop") {
      req.socket.destroy();
      return;
    }
    if (typeof action === "object" && "status" in action) {
      req.resume();
      res.writeHead(action.status, { "Content-Type": "application/json", ...action.headers });
      res.end(JSON.stringify(action.body));
      return;
    }
    if (typeof action === "object" && "holdUntil" in action) {
      // The request's body waits unread in its stream meanwhile.
      void action.holdUntil.finally(() => this.forward(req, res, "forward"));
      return;
    }
    this.forward(req, res, action);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, action: "forward" | "forward-then-drop" | { cutAfterBytes: number } | { forwardThenStatus: number }): void {
    const upstream = http.request(this.target + (req.url ?? "/"), { method: req.method, headers: req.headers }, (up) => {
      if (action === "forward-then-drop") {
        up.resume();
        req.socket.destroy();
        return;
      }
      if (typeof action === "object" && "forwardThenStatus" in action) {
        up.resume();
        up.on("end", () => {
          res.writeHead(action.forwardThenStatus, { "Content-Type": "text/html" });
          res.end(`<html><body><center><h1>${action.forwardThenStatus} ${http.STATUS_CODES[action.forwardThenStatus] ?? ""}</h1></center><hr><center>nginx</center></body></html>\n`);
        });
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (typeof action !== "object") {
        up.pipe(res);
        return;
      }
      let sent = 0;
      up.on("data", (chunk: Buffer) => {
        if (sent >= action.cutAfterBytes) return;
        // Cut inside the chunk: an answer the gateway writes in one piece is cut mid-body too.
        const part = chunk.subarray(0, action.cutAfterBytes - sent);
        res.write(part);
        sent += part.length;
        if (sent >= action.cutAfterBytes) {
          up.destroy();
          // Dropped a moment later, so that the client has the headers by then: cut mid-body, not before the answer.
          setTimeout(() => req.socket.destroy(), 200);
        }
      });
      up.on("end", () => {
        if (sent < action.cutAfterBytes) res.end();
      });
    });
    upstream.on("error", () => req.socket.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  }
}

/** Answers one request of a ScriptedGateway; `index` counts the requests seen so far. */
export type GatewayScript = (req: http.IncomingMessage, res: http.ServerResponse, index: number) => void;

/**
 * A fake gateway whose every answer the test writes itself: for what the real stack cannot be made
 * to send on cue (an event stream whose offsets skip, one that goes silent without closing). It
 * records every request it sees.
 */
export class ScriptedGateway extends LocalHttpServer {
  constructor(script: GatewayScript) {
    super((req, res) => {
      req.resume();
      script(req, res, this.seen.length - 1);
    });
  }
}

/** Answers JSON, as the gateway does. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** Starts an event stream answer, as the gateway's logs endpoint does; events and comments are written as given. */
export function sseStream(res: http.ServerResponse): { event(name: string, data: unknown, id?: string): void; comment(text: string): void } {
  res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache" });
  res.write("retry: 3000\n\n");
  return {
    event: (name, data, id) => void res.write(`${id ? `id: ${id}\n` : ""}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`),
    comment: (text) => void res.write(`: ${text}\n\n`),
  };
}

/** GitHub's `name<<delimiter` blocks of a GITHUB_OUTPUT / GITHUB_STATE file. */
export function parseFileCommands(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(file)) return out;
  const lines = readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? "");
    if (!m) continue;
    const [, name, delim] = m as unknown as [string, string, string];
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== delim; i++) value.push(lines[i] ?? "");
    out[name] = value.join("\n");
  }
  return out;
}


import { getEventListeners, once } from "node:events";
import http from "node:http";
import { ApiClient } from "../../apps/cli/src/client/api";

/**
 * The CLI's and the Action's API client on a caller's AbortSignal: it must run on every Node from
 * 20.0 (AbortSignal.any came in 20.3), stop a request or a stream being read when the signal aborts,
 * and leave nothing on the signal once a request is over — a POST waiting out retries, or discovery's
 * polls, would otherwise pile listeners up on a signal that lives for the whole invocation.
 */
describe("CLI API client and the caller's AbortSignal", () => {
  let server: http.Server;
  let url = "";
  let handle: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end();
  const anyDescriptor = Object.getOwnPropertyDescriptor(AbortSignal, "any");
  const listeners = (signal: AbortSignal) => getEventListeners(signal, "abort").length;
  const client = () => new ApiClient({ url, apiKey: "rca_test", maxAttempts: 20, backoffMs: 10 });

  beforeAll(async () => {
    // As on Node 20.0 to 20.2.
    delete (AbortSignal as { any?: unknown }).any;
    server = http.createServer((req, res) => handle(req, res));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    if (anyDescriptor) Object.defineProperty(AbortSignal, "any", anyDescriptor);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("retries a request without AbortSignal.any, one listener on the caller's signal at a time, none once it is answered", async () => {
    const caller = new AbortController();
    const seen: number[] = [];
    let n = 0;
    handle = (req, res) => {
      req.resume();
      seen.push(listeners(caller.signal));
      // Retry-After 0: the client's shortest wait (250 ms).
      res.writeHead(n++ < 12 ? 503 : 200, { "Content-Type": "application/json", "Retry-After": "0" });
      res.end(n <= 12 ? '{"detail":"busy"}' : '{"ok":true}');
    };
    const res = await client().post<{ ok: boolean }>("/exec", { body: {}, idempotencyKey: "k", signal: caller.signal });
    expect(res.body).toEqual({ ok: true });
    expect(seen).toEqual(Array.from({ length: 13 }, () => 1));
    expect(listeners(caller.signal)).toBe(0);
  });

  it("stops an attempt in flight when the caller's signal aborts", async () => {
    const caller = new AbortController();
    handle = (req) => req.resume(); // never answered
    const pending = client().get("/operations/x", { signal: caller.signal });
    setTimeout(() => caller.abort(new Error("stopped by the caller")), 100);
    await expect(pending).rejects.toThrow("stopped by the caller");
    expect(listeners(caller.signal)).toBe(0);
  });

  it("keeps a stream linked to the caller's signal while its body is read, and unlinks it at the end", async () => {
    const streaming = (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.resume();
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": hello\n\n");
      if (req.headers["x-end"]) res.end();
    };
    handle = streaming;
    // Aborted while its body is being read: the read ends.
    const caller = new AbortController();
    const open = await client().open("/operations/x/logs", { signal: caller.signal });
    const reader = (open.body as ReadableStream<Uint8Array>).getReader();
    expect((await reader.read()).done).toBe(false);
    expect(listeners(caller.signal)).toBe(1);
    const next = reader.read();
    caller.abort(new Error("stopped by the caller"));
    await expect(next).rejects.toThrow();
    expect(listeners(caller.signal)).toBe(0);

    // Read to its end, or cancelled by its reader: nothing stays on the caller's signal.
    const ended = new AbortController();
    const whole = await client().open("/operations/x/logs", { signal: ended.signal, headers: { "X-End": "1" } });
    expect(await whole.text()).toBe(": hello\n\n");
    expect(listeners(ended.signal)).toBe(0);
    const cancelled = new AbortController();
    const dropped = await client().open("/operations/x/logs", { signal: cancelled.signal });
    await dropped.body?.cancel();
    expect(listeners(cancelled.signal)).toBe(0);
  });
});

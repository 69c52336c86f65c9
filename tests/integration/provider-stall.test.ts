import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const HTTP_MODULE = path.resolve(__dirname, "../../apps/dispatcher/dist/providers/http.js");

/**
 * The dispatcher's call to a cloud provider's reboot API (providers/http.ts), against a provider that
 * sends its status and headers and then stalls the body (or, for 302, redirects). Run in a Node of its own with the collector
 * exposed and forced while it waits: the deadline must hold though nothing else references it, as in a
 * long-lived dispatcher whose collector runs whenever it likes.
 */
async function callStallingProvider(status: number): Promise<{ settledMs: number; ok: boolean; message?: string; outcomeUnknown?: boolean }> {
  const script = `
    const http = require("node:http");
    const { postJson } = require(${JSON.stringify(HTTP_MODULE)});
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url === "/warm") return res.end("{}");
      if (${status} === 302) return res.writeHead(302, { Location: "http://127.0.0.1:1/elsewhere" }).end();
      res.writeHead(${status}, { "Content-Type": "application/json" });
      res.write('{"action": ');
    });
    // A first fetch loads the HTTP client (slow in a fresh process on a loaded machine: the call's 1.5 s deadline
    // would otherwise pass before its headers came, and the outcome be the time-out's, not the status's).
    server.listen(0, "127.0.0.1", () => fetch("http://127.0.0.1:" + server.address().port + "/warm").then((w) => w.text()).then(() => {
      const started = Date.now();
      const collect = setInterval(() => global.gc(), 200);
      const done = (r) => { clearInterval(collect); console.log(JSON.stringify({ settledMs: Date.now() - started, ...r })); process.exit(0); };
      setTimeout(() => done({ ok: false, message: "still waiting after 10 s" }), 10000).unref();
      postJson({ url: "http://127.0.0.1:" + server.address().port + "/reboot", token: "tok", body: {}, timeoutMs: 1500 })
        .then(() => done({ ok: true }), (e) => done({ ok: false, message: e.message, outcomeUnknown: e.outcomeUnknown }));
    }));`;
  const { stdout } = await run(process.execPath, ["--expose-gc", "-e", script], { timeout: 30_000 });
  return JSON.parse(stdout.trim().split("\n").at(-1) as string);
}

describe("a cloud provider that stalls after its headers", () => {
  it("is given up at the call's deadline: a 2xx is taken as accepted, as its status says", async () => {
    const r = await callStallingProvider(201);
    expect(r).toMatchObject({ ok: true });
    expect(r.settledMs).toBeLessThan(5000);
  });

  it("is given up at the call's deadline: a 500 is an unknown outcome", async () => {
    const r = await callStallingProvider(500);
    expect(r).toMatchObject({ ok: false, message: "HTTP 500", outcomeUnknown: true });
    expect(r.settledMs).toBeLessThan(5000);
  });

  it("does not follow a redirect, and takes it as a refusal (the call was not taken where it was sent)", async () => {
    const r = await callStallingProvider(302);
    expect(r).toMatchObject({ ok: false, message: "HTTP 302: a redirect, not followed", outcomeUnknown: false });
  });
});

import { randomUUID } from "node:crypto";
import http from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";
import { FaultProxy, ScriptedGateway, baseEnv, cli, runCli, sendJson, sseStream } from "./cli-process";

/**
 * The CLI follows an operation's live output when the gateway lets it; when
 * the key already holds every live stream the gateway allows (429), it waits
 * for the result instead of waiting out the refusals.
 */
describe("CLI: following an operation's output", () => {
  const suite = useStackWithRunner({ gateway: { LOGS_MAX_STREAMS_PER_KEY: "1" } });

  it("prints the result when the key's only live-stream slot is taken", async () => {
    const { stack, fx } = suite;
    const auth = { Authorization: `Bearer ${fx.token}` };
    // Another operation of the same key, followed live: it holds the one slot.
    const other = stack.api().post("/api/automation/v1/exec").set(auth).send({ server_id: fx.server.id, command: "sleep 20", timeout_seconds: 60 });
    const pending = other.then((r) => r);
    const otherId = await waitFor(async () => {
      const list = await stack.api().get("/api/automation/v1/operations").set(auth);
      return (list.body.data as { operation_id: string; status: string }[] | undefined)?.find((o) => o.status === "running")?.operation_id;
    }, 10_000, "the other operation to run");
    const holder = http.get(`${stack.url}/api/automation/v1/operations/${otherId}/logs`, { headers: { ...auth, Accept: "text/event-stream" } });
    const held = await new Promise<http.IncomingMessage>((resolve, reject) => holder.once("response", resolve).once("error", reject));
    expect(held.statusCode).toBe(200);
    try {
      const started = Date.now();
      const r = await cli(["exec", "--server", fx.server.id, "--", "sleep 1.5; echo followed"], baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token }));
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("followed\n");
      expect(r.stderr).toMatch(/live output is not available now \(HTTP 429\)/);
      // Not the ten-second Retry-After the refusal carries.
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      holder.destroy();
      await pending;
    }
  });

  it("writes all of a long output before exiting, though its stdout is a pipe", async () => {
    const { stack, fx } = suite;
    // 600 kB, printed at the end (from the answer): Node writes to a pipe asynchronously.
    const r = await cli(["exec", "--server", fx.server.id, "--", "head -c 600000 /dev/zero | tr '\\0' b; echo; echo THE-END"], baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${"b".repeat(600_000)}\nTHE-END\n`);
  });

  it("prints output with NUL bytes once: live offsets count the text as stored (NUL as U+FFFD)", async () => {
    const { stack, fx } = suite;
    // Followed live (it outlasts the CLI's lookup of its operation); the rest after the NUL was printed twice.
    const r = await cli(["exec", "--server", fx.server.id, "--", "sleep 2; printf 'a\\000bc\\n'; printf 'x\\000y\\n' >&2"], baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("a\uFFFDbc\n");
    expect(r.stderr).toContain("x\uFFFDy\n");
    expect(r.stderr).not.toMatch(/y\n(.|\n)*y\n/);
  });

  it("shows the stored end of a stream whose live output was cut off at the live log's size limit", async () => {
    const { stack, fx } = suite;
    // Followed live (it outlasts the CLI's lookup of its operation); 20 MB: live output stops after
    // about 6 MB, and the stored capture keeps the last 1 MiB, where the ending is.
    const command = "sleep 2; head -c 20000000 /dev/zero | tr '\\0' a; echo; echo THE-END";
    const r = await cli(["exec", "--server", fx.server.id, "--timeout", "120", "--", command], baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token }));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/live output stops here: it reached the live log's size limit/);
    expect(r.stderr).toMatch(/the stored end of stdout follows \(its last 1048576 bytes/);
    expect(r.stdout.slice(-40)).toBe(`${"a".repeat(31)}\nTHE-END\n`);
    // The live part and the stored end, not the whole 20 MB.
    expect(r.stdout.length).toBeLessThan(10_000_000);
  }, 120_000);

  it("shows the stored end of a long stream whose live output stopped early without a cut-off", async () => {
    const { stack, fx } = suite;
    // The first live stream is cut after 64 kB and its reconnect refused (429): live output stops
    // well before the 3 MB end, and the stored capture (the last 1 MiB) holds the ending.
    let streams = 0;
    const proxy = await new FaultProxy(stack.url, (req) => {
      if (!/\/logs(\?|$)/.test(req.url)) return "forward";
      return streams++ === 0 ? { cutAfterBytes: 64_000 } : { status: 429, headers: { "Retry-After": "1" }, body: { detail: "too many live streams" } };
    }).start();
    try {
      const command = "sleep 1.5; echo START; sleep 0.5; head -c 3000000 /dev/zero | tr '\\0' a; echo; echo THE-END";
      const r = await cli(["exec", "--server", fx.server.id, "--", command], baseEnv({ RUNBRIDGE_URL: proxy.url, RUNBRIDGE_API_KEY: fx.token }));
      expect(r.code).toBe(0);
      expect(streams).toBe(2);
      expect(r.stderr).toMatch(/live output stopped before the end/);
      expect(r.stderr).toMatch(/the stored end of stdout follows \(its last 1048576 bytes/);
      expect(r.stdout.startsWith("START\n")).toBe(true);
      expect(r.stdout.slice(-40)).toBe(`${"a".repeat(31)}\nTHE-END\n`);
    } finally {
      await proxy.stop();
    }
  });

  it("keeps waiting for the result through 429s while the command still runs, as Retry-After asks", async () => {
    const { stack, fx } = suite;
    // No live output (its stream refused), and the operation's reads are rate limited for longer
    // than the client's own ten Retry-After waits, while the command is still running.
    const limitedAt: number[] = [];
    const proxy = await new FaultProxy(stack.url, (req) => {
      if (req.method !== "GET") return "forward";
      if (/\/logs(\?|$)/.test(req.url)) return { status: 429, headers: { "Retry-After": "1" }, body: { detail: "too many live streams" } };
      if (/\/operations\/[0-9a-f-]{36}$/.test(req.url) && limitedAt.length < 14) {
        limitedAt.push(Date.now());
        return { status: 429, headers: { "Retry-After": "0.5" }, body: { detail: "Rate limit exceeded" } };
      }
      return "forward";
    }).start();
    try {
      const r = await cli(["exec", "--server", fx.server.id, "--", "echo one; sleep 9; echo two"], baseEnv({ RUNBRIDGE_URL: proxy.url, RUNBRIDGE_API_KEY: fx.token }));
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: "one\ntwo\n" });
      expect(limitedAt.length).toBe(14);
      expect(r.stderr).toMatch(/could not read operation [0-9a-f-]{36} \(HTTP 429\); it may still be running: asking again in 0\.5 s/);
      for (let i = 1; i < limitedAt.length; i++) expect((limitedAt[i] as number) - (limitedAt[i - 1] as number)).toBeGreaterThanOrEqual(450);
    } finally {
      await proxy.stop();
    }
  }, 60_000);
});

/**
 * What the real stack cannot be made to send on cue: live output whose offsets skip (chunks the
 * dispatcher dropped while Redis was not ready, or the live log trimmed), the stored capture sent
 * once the live log has expired, a stream that goes silent. Followed with `operations logs --follow`.
 */
describe("CLI: following an operation's output, against a scripted gateway", () => {
  const env = (url: string, extra: Record<string, string> = {}) => baseEnv({ RUNBRIDGE_URL: url, RUNBRIDGE_API_KEY: "rca_scripted", ...extra });
  const ended = (id: string, truncated = false) => ({ operation_id: id, status: "completed", exit_code: 0, duration_ms: 1000, error: null, stdout_truncated: truncated, stderr_truncated: false });
  const view = (id: string, stdout: string, stderr = "", truncated = false) => ({
    operation_id: id,
    status: "completed",
    error: null,
    result: { exit_code: 0, stdout, stderr, duration_ms: 1000, stdout_truncated: truncated, stderr_truncated: false },
  });

  it("shows the bytes live output skipped from the stored output, and says so (offsets are UTF-8 bytes)", async () => {
    const id = randomUUID();
    // Lines of 8 bytes ("í" is two): the live log lost stdout's second line and stderr's first.
    const out = ["línea1\n", "línea2\n", "línea3\n"];
    const gw = await new ScriptedGateway((req, res) => {
      if (!req.url?.endsWith("/logs")) return sendJson(res, 200, view(id, out.join(""), "err1\nerr2\n"));
      const sse = sseStream(res);
      sse.event("stdout", { stream: "stdout", offset: 0, data: out[0] }, "1-0");
      sse.event("stderr", { stream: "stderr", offset: 5, data: "err2\n" }, "3-0");
      sse.event("stdout", { stream: "stdout", offset: 16, data: out[2] }, "4-0");
      sse.event("end", ended(id));
      res.end();
    }).start();
    try {
      const r = await cli(["operations", "logs", id, "--follow"], env(gw.url));
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("línea1\nlínea3\nlínea2\n");
      expect(r.stderr).toMatch(/live output of stdout skips bytes 8-15 here/);
      expect(r.stderr).toMatch(/live output of stderr skips bytes 0-4 here[^\n]*\nerr2\n/);
      expect(r.stderr).toMatch(/bytes 8-15 of stdout, skipped above, from the stored output:/);
      expect(r.stderr).toMatch(/bytes 0-4 of stderr, skipped above, from the stored output:\nerr1\n/);
    } finally {
      await gw.stop();
    }
  });

  it("shows the stored end of a stream when, resuming after the live log expired, it gets the truncated stored capture", async () => {
    const id = randomUUID();
    const shown = `START\n${"a".repeat(200)}\n`;
    // The stored capture keeps only the end (1 MiB in earnest): shorter than what was shown live, at offset 0.
    const tail = `${"a".repeat(20)}\nTHE-END\n`;
    const gw = await new ScriptedGateway((req, res) => {
      if (!req.url?.endsWith("/logs")) return sendJson(res, 200, view(id, tail, "", true));
      const sse = sseStream(res);
      if (!req.headers["last-event-id"]) {
        // The connection drops; by the time the client is back the live log has expired.
        sse.event("stdout", { stream: "stdout", offset: 0, data: shown }, "1-0");
        setTimeout(() => res.destroy(), 100);
        return;
      }
      sse.event("stdout", { stream: "stdout", offset: 0, data: tail, stored: true, truncated: true }, "stored");
      sse.event("end", ended(id, true));
      res.end();
    }).start();
    try {
      const r = await cli(["operations", "logs", id, "--follow"], env(gw.url));
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(shown + tail);
      expect(r.stderr).toMatch(/live output of stdout stops here: only the stored end of it is left/);
      expect(r.stderr).toMatch(/the stored end of stdout follows \(its last 29 bytes/);
    } finally {
      await gw.stop();
    }
  });

  it("reconnects, resuming after the last event, a live stream silent (not even a keep-alive) for RUNBRIDGE_STREAM_IDLE_SECONDS", async () => {
    const id = randomUUID();
    let firstOpened = 0;
    let firstClosed = 0;
    const gw = await new ScriptedGateway((req, res) => {
      if (!req.url?.endsWith("/logs")) return sendJson(res, 200, view(id, "one\ntwo\n"));
      const sse = sseStream(res);
      if (!req.headers["last-event-id"]) {
        firstOpened = Date.now();
        sse.event("stdout", { stream: "stdout", offset: 0, data: "one\n" }, "1-0");
        // Keep-alives hold it open for 4 s; then nothing more, and the connection stays open. (300 ms apart
        // against a 2 s bound: only a stall of the client over 1.7 s would make it give up early.)
        const beat = setInterval(() => sse.comment("keep-alive"), 300);
        setTimeout(() => clearInterval(beat), 4000);
        res.on("close", () => {
          clearInterval(beat);
          firstClosed = Date.now();
        });
        return;
      }
      sse.event("stdout", { stream: "stdout", offset: 4, data: "two\n" }, "2-0");
      sse.event("end", ended(id));
      res.end();
    }).start();
    const p = runCli(["operations", "logs", id, "--follow"], env(gw.url, { RUNBRIDGE_STREAM_IDLE_SECONDS: "2" }));
    const giveUp = new AbortController();
    try {
      // Without the bound the client would sit on the silent stream until fetch's own 300 s timeout.
      const tooLong = delay(20_000, "still following after 20 s", { signal: giveUp.signal }).catch(() => "");
      const code = await Promise.race([p.exited, tooLong]);
      expect(code).toBe(0);
      expect(p.stdout).toBe("one\ntwo\n");
      const streams = gw.seen.filter((s) => s.url.endsWith("/logs"));
      expect(streams.map((s) => s.headers["last-event-id"])).toEqual([undefined, "1-0"]);
      // Keep-alives count as traffic: the stream was given up only after they stopped (nominally 2 s after).
      expect(firstClosed - firstOpened).toBeGreaterThanOrEqual(4_000);
      expect(p.stderr).toMatch(/nothing came on the live output stream for 2 s \(not even a keep-alive\); reconnecting/);
    } finally {
      giveUp.abort();
      p.child.kill();
      await p.exited;
      await gw.stop();
    }
  });
});

import http from "node:http";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";
import { FaultProxy, baseEnv, cli } from "./cli-process";

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
});

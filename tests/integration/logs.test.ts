import http from "node:http";
import net from "node:net";
import { randomUUID } from "node:crypto";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

interface SseEvent {
  id?: string;
  event: string;
  data: unknown;
  /** ms since the request was sent */
  at: number;
}

/** A minimal SSE client that records each event as it arrives (not only at the end). */
function follow(url: string, token: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  const started = Date.now();
  let status = 0;
  let contentType = "";
  let raw = "";
  let req!: http.ClientRequest;
  const done = new Promise<void>((resolve, reject) => {
    req = http.get(url, { headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream", ...headers } }, (res) => {
      status = res.statusCode ?? 0;
      contentType = String(res.headers["content-type"] ?? "");
      res.setEncoding("utf8");
      let buf = "";
      res.on("data", (chunk: string) => {
        raw += chunk;
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf("\n\n")) !== -1) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: Partial<SseEvent> = { event: "message" };
          let data = "";
          let hasData = false;
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) continue;
            const [field, ...rest] = line.split(":");
            const value = rest.join(":").replace(/^ /, "");
            if (field === "id") ev.id = value;
            if (field === "event") ev.event = value;
            if (field === "data") {
              data += value;
              hasData = true;
            }
          }
          if (hasData) events.push({ ...(ev as SseEvent), data: JSON.parse(data), at: Date.now() - started });
        }
      });
      res.on("end", () => resolve());
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  return {
    events,
    done,
    close: () => {
      done.catch(() => undefined); // destroying the request rejects it with "aborted"
      req.destroy();
    },
    get status() {
      return status;
    },
    get contentType() {
      return contentType;
    },
    get raw() {
      return raw;
    },
  };
}

describe("GET /api/automation/v1/operations/{id}/logs (SSE)", () => {
  // At most 2 live streams per key and 4 per gateway: the other tests here hold one at a time (three at most).
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1", LOGS_MAX_STREAMS_PER_KEY: "2", LOGS_MAX_STREAMS: "4" } });
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const exec = (body: Record<string, unknown>) =>
    stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, ...body });
  const logsUrl = (id: string, query = "") => `${stack.url}/api/automation/v1/operations/${id}/logs${query}`;
  const output = (events: SseEvent[]) => events.filter((e) => e.event === "stdout" || e.event === "stderr");

  let firstRun: { id: string; events: SseEvent[] };

  it("streams output while the command runs, then ends with the final status", async () => {
    const res = await exec({ command: "echo first; sleep 2; echo second; echo oops >&2; exit 3", timeout_seconds: 30 });
    expect(res.body.status).toBe("running");
    const id = res.body.operation_id as string;
    const sse = follow(logsUrl(id), fx.token);

    // "first" arrives while the operation is still running.
    await waitFor(async () => output(sse.events).some((e) => (e.data as { data: string }).data.includes("first")), 10_000, "first chunk");
    const rowWhenFirstSeen = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(rowWhenFirstSeen.status).toBe("running");
    expect(output(sse.events).some((e) => (e.data as { data: string }).data.includes("second"))).toBe(false);

    await sse.done;
    expect(sse.status).toBe(200);
    expect(sse.contentType).toMatch(/^text\/event-stream/);
    const out = output(sse.events);
    const stdout = out.filter((e) => e.event === "stdout").map((e) => (e.data as { data: string }).data).join("");
    const stderr = out.filter((e) => e.event === "stderr").map((e) => (e.data as { data: string }).data).join("");
    expect(stdout).toBe("first\nsecond\n");
    expect(stderr).toBe("oops\n");
    for (const e of out) {
      expect(e.id).toMatch(/^\d+-\d+$/);
      expect(e.data).toEqual({ stream: e.event, offset: expect.any(Number), data: expect.any(String) });
    }
    // Offsets are byte positions in each stream.
    const secondChunk = out.find((e) => (e.data as { data: string }).data.includes("second"));
    expect((secondChunk?.data as { offset: number }).offset).toBe(Buffer.byteLength("first\n"));
    const firstAt = out[0]?.at ?? Infinity;
    const end = sse.events[sse.events.length - 1];
    expect(end?.event).toBe("end");
    expect(end?.data).toMatchObject({ operation_id: id, status: "completed", exit_code: 3, error: null });
    // Output came about two seconds before the end, not all at once.
    expect((end?.at ?? 0) - firstAt).toBeGreaterThan(1000);
    firstRun = { id, events: sse.events };
  });

  it("resumes after Last-Event-ID (header or query) without repeating what the client has", async () => {
    const { id, events } = firstRun;
    const first = output(events)[0];
    expect(first?.id).toBeDefined();
    const resumed = follow(logsUrl(id), fx.token, { "Last-Event-ID": first?.id as string });
    await resumed.done;
    const text = output(resumed.events).map((e) => (e.data as { data: string }).data).join("");
    expect(text).not.toContain("first");
    expect(text).toContain("second\n");
    expect(resumed.events[resumed.events.length - 1]).toMatchObject({ event: "end", data: { status: "completed", exit_code: 3 } });

    const last = output(events)[output(events).length - 1];
    const byQuery = follow(logsUrl(id, `?last_event_id=${last?.id}`), fx.token);
    await byQuery.done;
    expect(output(byQuery.events)).toEqual([]);
    expect(byQuery.events.map((e) => e.event)).toEqual(["end"]);
  });

  it("falls back to the stored output when the live stream has expired", async () => {
    const { id } = firstRun;
    await stack.redis.del(stack.keys.operationLog(id));
    const sse = follow(logsUrl(id), fx.token);
    await sse.done;
    expect(sse.events.map((e) => [e.event, e.id])).toEqual([
      ["stdout", "stored"],
      ["stderr", "stored"],
      ["end", undefined],
    ]);
    expect(sse.events[0]?.data).toMatchObject({ stream: "stdout", data: "first\nsecond\n", stored: true });
    // A client that already got the stored output only gets the end.
    const again = follow(logsUrl(id), fx.token, { "Last-Event-ID": "stored" });
    await again.done;
    expect(again.events.map((e) => e.event)).toEqual(["end"]);
  });

  it("sends every chunk of a long log (several reads' worth) in order, then the end", async () => {
    const res = await exec({ command: "i=0; while [ $i -lt 700 ]; do i=$((i+1)); echo line$i; sleep 0.002; done", timeout_seconds: 60 });
    const id = res.body.operation_id as string;
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status === "completed", 30_000, "long log to finish");
    const entries = await stack.redis.xlen(stack.keys.operationLog(id));
    expect(entries).toBeGreaterThan(500);
    const sse = follow(logsUrl(id), fx.token);
    await sse.done;
    const out = output(sse.events);
    expect(out).toHaveLength(entries);
    const expected = Array.from({ length: 700 }, (_, i) => `line${i + 1}\n`).join("");
    expect(out.map((e) => (e.data as { data: string }).data).join("")).toBe(expected);
    expect(sse.events[sse.events.length - 1]?.event).toBe("end");
  });

  it("never streams env values: they arrive masked", async () => {
    const secret = `canary-sse-${Date.now()}`;
    const res = await exec({ command: 'echo "token=$SECRET"; sleep 1; echo "again $SECRET" >&2', env: { SECRET: secret }, timeout_seconds: 30 });
    const sse = follow(logsUrl(res.body.operation_id as string), fx.token);
    await sse.done;
    expect(sse.raw).not.toContain(secret);
    const text = output(sse.events).map((e) => (e.data as { data: string }).data).join("");
    expect(text).toContain("token=***\n");
    expect(text).toContain("again ***\n");
    expect(sse.events[sse.events.length - 1]).toMatchObject({ event: "end", data: { status: "completed", exit_code: 0 } });
  });

  it("releases its Redis connection when the client goes away mid-stream", async () => {
    const res = await exec({ command: "echo tick; sleep 20", timeout_seconds: 30 });
    const id = res.body.operation_id as string;
    const countSse = async () => ((await stack.redis.client("LIST")) as string).split("\n").filter((l) => l.includes(`name=${stack.prefix}:sse`)).length;
    const sse = follow(logsUrl(id), fx.token);
    await waitFor(async () => output(sse.events).length > 0, 10_000, "first chunk");
    expect(await countSse()).toBe(1);
    sse.close();
    await waitFor(async () => (await countSse()) === 0, 5000, "SSE Redis connection to close");
    await stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${fx.token}`);
  });

  /** Opens a stream and waits for its status line: 200 (then streaming) or an error answer. */
  const open = async (id: string, token: string) => {
    const sse = follow(logsUrl(id), token);
    await waitFor(async () => sse.status !== 0, 10_000, "the logs answer");
    return sse;
  };
  const sleeper = async () => {
    const res = await exec({ command: "echo tick; sleep 20", timeout_seconds: 30 });
    expect(res.body.status).toBe("running");
    return res.body.operation_id as string;
  };
  const cancel = (id: string) => stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${fx.token}`);
  const ticked = (sse: ReturnType<typeof follow>) => waitFor(async () => output(sse.events).length > 0, 10_000, "first chunk");

  it("caps the live streams one key holds open: over the cap is 429 with Retry-After, until one of them ends; other keys are not affected", async () => {
    const capped = await createAutomationKey(fx.tenant.id);
    // Refused requests give their slot back: three 404s leave both free.
    for (let i = 0; i < 3; i++) {
      const missing = await stack.api().get(`/api/automation/v1/operations/${randomUUID()}/logs`).set("Authorization", `Bearer ${capped.token}`);
      expect(missing.status).toBe(404);
    }
    const id = await sleeper();
    const first = await open(id, capped.token);
    const second = await open(id, capped.token);
    expect([first.status, second.status]).toEqual([200, 200]);
    await ticked(first);
    await ticked(second);

    const third = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${capped.token}`);
    expect(third.status).toBe(429);
    expect(third.body).toEqual({ detail: expect.stringMatching(/already has 2 live log streams open.*LOGS_MAX_STREAMS_PER_KEY/) });
    expect(Number(third.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    // Another key of the same tenant streams as usual.
    const other = await open(id, fx.token);
    expect(other.status).toBe(200);
    await ticked(other);
    other.close();

    // The client closing one stream frees its slot: a new stream is accepted (and streams from the start).
    first.close();
    let again: ReturnType<typeof follow> | undefined;
    await waitFor(
      async () => {
        const sse = await open(id, capped.token);
        if (sse.status === 200) again = sse;
        return sse.status === 200;
      },
      5000,
      "a stream in the freed slot",
    );
    await ticked(again as ReturnType<typeof follow>);
    expect((await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${capped.token}`)).status).toBe(429);

    // The operation ending ends both streams (with `end`), which frees both slots, and only those.
    await cancel(id);
    await second.done;
    await again?.done;
    expect(second.events[second.events.length - 1]?.event).toBe("end");
    const next = await sleeper();
    const streams = [await open(next, capped.token), await open(next, capped.token)];
    expect(streams.map((s) => s.status)).toEqual([200, 200]);
    expect((await open(next, capped.token)).status).toBe(429);
    for (const s of streams) s.close();
    await cancel(next);
  });

  it("caps the live streams of all keys together on a gateway: over the cap is 503 with Retry-After, for any key, until one ends", async () => {
    const [a, b, c] = [await createAutomationKey(fx.tenant.id), await createAutomationKey(fx.tenant.id), await createAutomationKey(fx.tenant.id)];
    const id = await sleeper();
    // Streams of earlier tests may still be giving their slots back: each of these four is retried until it is served.
    const openServed = (token: string) =>
      waitFor(
        async () => {
          const sse = await open(id, token);
          if (sse.status === 200) return sse;
          sse.close();
          return null;
        },
        5000,
        "a stream to be served",
      );
    const held = [await openServed(a.token), await openServed(a.token), await openServed(b.token), await openServed(b.token)];
    for (const sse of held) await ticked(sse);

    // Key c holds none, but the gateway holds all it may.
    const full = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${c.token}`);
    expect(full.status).toBe(503);
    expect(full.body).toEqual({ detail: expect.stringMatching(/already has 4 live log streams open \(LOGS_MAX_STREAMS\)/) });
    expect(Number(full.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    held[0]?.close();
    const served = await openServed(c.token);
    await ticked(served);
    served.close();
    for (const sse of held.slice(1)) sse.close();
    await cancel(id);
  });

  it("frees the slot of a client that left before its stream started", async () => {
    const key = await createAutomationKey(fx.tenant.id);
    const id = await sleeper();
    // Each client sends the request and is gone before the gateway has looked the operation up.
    const target = new URL(logsUrl(id));
    await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<void>((resolve, reject) => {
            const socket = net.connect(Number(target.port), target.hostname, () => {
              socket.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nAuthorization: Bearer ${key.token}\r\nAccept: text/event-stream\r\n\r\n`, () => {
                socket.destroy();
                resolve();
              });
            });
            socket.on("error", reject);
          }),
      ),
    );
    // Their handlers end (and give their slots back) on their own: both slots become free.
    await waitFor(
      async () => {
        const pair = [await open(id, key.token), await open(id, key.token)];
        for (const s of pair) s.close();
        return pair.every((s) => s.status === 200);
      },
      5000,
      "two streams for a key whose earlier clients left",
    );
    await cancel(id);
  });

  it("answers errors as JSON before streaming: 404 for another tenant, 403 outside the key's servers, 422 for a bad Last-Event-ID, 401 without a key", async () => {
    const { id } = firstRun;
    const other = await createTenant();
    const { token } = await createAutomationKey(other.tenant.id);
    const foreign = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${token}`);
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual({ detail: expect.any(String) });

    // Same tenant, but a key scoped to another server: 403, as for the status endpoint.
    const elsewhere = await createServer(fx.tenant.id);
    const scoped = await createAutomationKey(fx.tenant.id, { allowedServerIds: [elsewhere.server.id] });
    const outOfScope = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${scoped.token}`);
    expect(outOfScope.status).toBe(403);
    expect(outOfScope.body).toEqual({ detail: `Server ${fx.server.id} is not in this API key's allowed servers` });

    const bad = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${fx.token}`).set("Last-Event-ID", "zzz");
    expect(bad.status).toBe(422);
    expect(bad.body.detail).toMatch(/Last-Event-ID/);
    const badQuery = await stack.api().get(`/api/automation/v1/operations/${id}/logs?since=1`).set("Authorization", `Bearer ${fx.token}`);
    expect(badQuery.status).toBe(422);
    expect(badQuery.body.detail).toMatch(/since/);

    const anon = await stack.api().get(`/api/automation/v1/operations/${id}/logs`);
    expect(anon.status).toBe(401);
    expect(anon.body).toEqual({ detail: expect.any(String) });
  });

  it("ends a stream whose key is revoked while it is open (without `end`); reconnecting gets the 401", async () => {
    const res = await exec({ command: "echo started; sleep 30", timeout_seconds: 60 });
    const id = res.body.operation_id as string;
    const reader = await createAutomationKey(fx.tenant.id);
    const sse = follow(logsUrl(id), reader.token);
    await waitFor(async () => output(sse.events).length > 0, 10_000, "the stream to start");
    const revoked = await stack.api().delete(`/api/v1/automation-keys/${reader.key.id}`).set("Authorization", `Bearer ${fx.apiKey}`);
    expect(revoked.status).toBeLessThan(300);
    const before = Date.now();
    await sse.done;
    expect(Date.now() - before).toBeLessThan(3000);
    expect(sse.events.some((e) => e.event === "end")).toBe(false);
    expect((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status).toBe("running");
    const again = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${reader.token}`);
    expect([again.status, again.body]).toEqual([401, { detail: "API key has been revoked" }]);
    await cancel(id);
  });

  it("ends a stream when its key's expiry, set or moved while it is open, comes round; and when the key no longer allows the operation", async () => {
    const res = await exec({ command: "echo started; sleep 30", timeout_seconds: 60 });
    const id = res.body.operation_id as string;
    const patchKey = (keyId: string, body: Record<string, unknown>) => stack.api().patch(`/api/v1/automation-keys/${keyId}`).set("Authorization", `Bearer ${fx.apiKey}`).send(body);
    const ended = async (sse: ReturnType<typeof follow>, withinMs: number) => {
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([sse.done.then(() => "ended"), new Promise((r) => (timer = setTimeout(() => r("still open"), withinMs)))]);
      clearTimeout(timer);
      return outcome;
    };

    // No expiry when the stream opened; one is set, three seconds ahead (the PATCH itself may take a second on a busy machine).
    const expiring = await createAutomationKey(fx.tenant.id);
    const first = follow(logsUrl(id), expiring.token);
    await waitFor(async () => output(first.events).length > 0, 10_000, "the stream to start");
    expect((await patchKey(expiring.key.id, { expires_at: new Date(Date.now() + 3_000).toISOString() })).status).toBe(200);
    expect(await ended(first, 1_000)).toBe("still open");
    expect(await ended(first, 6_000)).toBe("ended");
    expect(first.events.some((e) => e.event === "end")).toBe(false);

    // Its expiry moved later while open: the stream ends at the new time, not the old one. The old one
    // leaves room for the stream to start and the PATCH to land on a busy machine.
    const oldExpiry = Date.now() + 4_000;
    const moved = await createAutomationKey(fx.tenant.id, { expiresAt: new Date(oldExpiry) });
    const second = follow(logsUrl(id), moved.token);
    await waitFor(async () => output(second.events).length > 0, 10_000, "the second stream to start");
    expect((await patchKey(moved.key.id, { expires_at: new Date(Date.now() + 7_000).toISOString() })).status).toBe(200);
    expect(await ended(second, Math.max(1_000, oldExpiry + 1_500 - Date.now()))).toBe("still open");
    expect(await ended(second, 8_000)).toBe("ended");

    // Narrowed to other operations: the exec's output is no longer this key's to read.
    const narrowed = await createAutomationKey(fx.tenant.id);
    const third = follow(logsUrl(id), narrowed.token);
    await waitFor(async () => output(third.events).length > 0, 10_000, "the third stream to start");
    expect((await patchKey(narrowed.key.id, { allowed_operations: ["restart"] })).status).toBe(200);
    expect(await ended(third, 3_000)).toBe("ended");
    const again = await stack.api().get(`/api/automation/v1/operations/${id}/logs`).set("Authorization", `Bearer ${narrowed.token}`);
    expect(again.status).toBe(403);
    await cancel(id);
  });
});

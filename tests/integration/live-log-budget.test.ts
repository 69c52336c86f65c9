import { Limits } from "@runbridge/contracts";
import { createLogger } from "@runbridge/common";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import { ENDED_TTL_SECONDS, appendOutput } from "../../apps/dispatcher/src/output-log";
import { testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

const MiB = 1024 * 1024;
/** What a stream costs Redis beyond its entries' data: ids, field names, listpack and radix-tree nodes. */
const OVERHEAD = 512 * 1024;

/** A chatty command must not fill Redis: each operation's live log is bounded in bytes. */
describe("live-log byte budget", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const exec = (command: string) =>
    stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command, timeout_seconds: 120 })
      .then((r) => r.body as { operation_id: string; status: string });
  const entriesOf = async (key: string) =>
    (await stack.redis.xrange(key, "-", "+")).map(([, fields]) => {
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
      return f;
    });

  it("cuts a 30 MB output's live log off at the budget, with a note, and still stores the result", async () => {
    const body = await exec("head -c 30000000 /dev/zero | tr '\\0' a");
    const id = body.operation_id;
    await waitFor(async () => ["completed", "failed", "timeout"].includes((await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status), 120_000, "operation to end");
    const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: "completed", exitCode: 0, stdoutTruncated: true, stderrTruncated: false });
    // The stored capture keeps the tail.
    expect(row.stdout).toBe("a".repeat(Limits.outputCapBytes));

    const key = stack.keys.operationLog(id);
    // The runner stopped sending once the budget was spent (the dispatcher's counter charges every
    // chunk it received, at 5/4 plus a fixed charge): 30 MB did not cross the socket to be dropped.
    const charged = Number(await stack.redis.get(`${key}:bytes`));
    expect(charged).toBeGreaterThan(Limits.liveLogMaxBytes);
    expect(charged).toBeLessThan((Limits.liveLogMaxBytes * 5) / 4 + MiB);
    const memory = Number(await stack.redis.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
    expect(memory).toBeLessThan(Limits.liveLogMaxBytes + OVERHEAD);

    const entries = await entriesOf(key);
    const chunks = entries.filter((e) => e.has("data"));
    const dataBytes = chunks.reduce((n, e) => n + Buffer.byteLength(e.get("data") as string), 0);
    expect(dataBytes).toBeLessThanOrEqual(Limits.liveLogMaxBytes);
    // Live output is the start of the stream, without a gap, up to (nearly) the budget (bytes are charged at 5/4).
    expect(dataBytes).toBeGreaterThan((Limits.liveLogMaxBytes * 4) / 5 - MiB);
    let offset = 0;
    for (const e of chunks) {
      expect(e.get("stream")).toBe("stdout");
      expect(Number(e.get("offset"))).toBe(offset);
      offset += Buffer.byteLength(e.get("data") as string);
    }
    // One note, last: where live output was cut off.
    const notes = entries.filter((e) => e.has("note"));
    expect(notes).toHaveLength(1);
    expect(entries[entries.length - 1]?.get("note")).toMatch(/cut off.*stored result/);
    // The SSE endpoint sends the live part, the note as a `cut_off` event, then the end.
    const sse = await stack
      .api()
      .get(`/api/automation/v1/operations/${id}/logs`)
      .set("Authorization", `Bearer ${fx.token}`)
      .buffer(true)
      .parse((res, done) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => done(null, text));
      });
    const frames = String(sse.body).split("\n\n").filter((f) => f.includes("event: "));
    const events = frames.map((f) => ({ event: /event: (.*)/.exec(f)?.[1], data: JSON.parse(/data: (.*)/.exec(f)?.[1] ?? "null") as { data?: string; status?: string } }));
    expect(events[events.length - 1]).toMatchObject({ event: "end", data: { status: "completed", stdout_truncated: true } });
    expect(events[events.length - 2]).toEqual({ event: "cut_off", data: { note: notes[0]?.get("note"), cut_at: Number(notes[0]?.get("cut_at")) } });
    expect(events.filter((e) => e.event === "cut_off")).toHaveLength(1);
    const sent = events.filter((e) => e.event === "stdout");
    expect(sent).toHaveLength(chunks.length);
    expect(sent.reduce((n, e) => n + Buffer.byteLength(e.data.data ?? ""), 0)).toBe(dataBytes);
    // The dashboard's output API pages through the same entries and gives the cut as a `cut_off` entry, not as output.
    const paged: Record<string, unknown>[] = [];
    for (let after = ""; ; ) {
      const page = await stack
        .api()
        .get(`/dashboard/api/operations/${id}/output${after ? `?after=${after}` : ""}`)
        .set("Authorization", `Bearer ${fx.apiKey}`);
      expect(page.status).toBe(200);
      const got = page.body as { entries: Record<string, unknown>[]; last_id: string };
      if (got.entries.length === 0) break;
      paged.push(...got.entries);
      after = got.last_id;
    }
    expect(paged).toHaveLength(entries.length);
    expect(paged[paged.length - 1]).toEqual({ id: expect.any(String), cut_off: { note: notes[0]?.get("note"), cut_at: Number(notes[0]?.get("cut_at")) } });
    const output = paged.slice(0, -1);
    expect(output.every((e) => e.stream === "stdout" && typeof e.data === "string" && e.data.length > 0 && !("cut_off" in e))).toBe(true);
    expect(output.reduce((n, e) => n + Buffer.byteLength(e.data as string), 0)).toBe(dataBytes);
    // The stream and its counter both expire, soon once the operation has ended (readers then get the stored
    // capture): kept the hour after the end, every stream of the last hour sat in Redis.
    for (const k of [key, `${key}:bytes`]) {
      const ttl = await stack.redis.ttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(ENDED_TTL_SECONDS);
    }
    // A chunk that arrives after the end (its ownership check answered late) does not give the stream the hour back.
    const ctx = { redis: stack.redis, keys: stack.keys, logger: createLogger("test", "error") } as unknown as DispatcherContext;
    await appendOutput(ctx, fx.server.id, { operationId: id, stream: "stdout", offset: 0, data: "late" });
    for (const k of [key, `${key}:bytes`]) expect(await stack.redis.ttl(k)).toBeLessThanOrEqual(ENDED_TTL_SECONDS);
  }, 180_000);

  it("keeps a small output's live log whole, without a note", async () => {
    const body = await exec("echo hello; echo oops >&2");
    expect(body.status).toBe("completed");
    const key = stack.keys.operationLog(body.operation_id);
    await waitFor(async () => (await stack.redis.xlen(key)) >= 2, 5000, "both chunks");
    const entries = await entriesOf(key);
    expect(entries.map((e) => [e.get("stream"), e.get("data")]).sort()).toEqual([
      ["stderr", "oops\n"],
      ["stdout", "hello\n"],
    ]);
    expect(entries.some((e) => e.has("note"))).toBe(false);
  });
});

import { Limits } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { parseLogEntry } from "../../apps/gateway/src/services/log-entry";
import { deliverableText } from "../../apps/runner/src/result-limits";
import { waitFor } from "../helpers/processes";
import { useStackWithSlowUplink } from "../helpers/suite";

const MiB = 1024 * 1024;
/** The runner's uplink. The dispatcher drops a runner whose heartbeat reply takes 10 s longer than its ping interval. */
const UPLINK_BYTES_PER_SECOND = 2 * MiB;
const FLOOD_BYTES = 30_000_000;

/**
 * Output flooding a slow uplink: live output must neither delay the runner's heartbeat replies
 * (the dispatcher would drop it) nor pile up in its memory. The runner sends what fits and drops
 * the rest, which the live log shows as skipped; the stored results are whole.
 */
describe("live output over a slow uplink", () => {
  // Answered "running" after a second: the test waits for the ends itself, bounded.
  const suite = useStackWithSlowUplink(UPLINK_BYTES_PER_SECOND, { gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });

  const submit = async (command: string) => {
    const res = await suite.stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${suite.fx.token}`)
      .send({ server_id: suite.fx.server.id, command, timeout_seconds: 60 });
    return (res.body as { operation_id: string }).operation_id;
  };
  const ended = (id: string) => testPrisma().operation.findFirst({ where: { id, status: { in: ["completed", "failed", "timeout", "cancelled"] } } });

  it("drops live output while the connection is backed up, for all operations together, and keeps the runner connected", async () => {
    // Two at once: NULs, which go out as U+FFFD (as they are stored: three times their size), and plain text.
    const [zeros, text] = await Promise.all([submit(`head -c ${FLOOD_BYTES} /dev/zero`), submit(`head -c ${FLOOD_BYTES} /dev/zero | tr '\\0' a`)]);
    await waitFor(async () => (suite.runner.output.match(/"operation started"/g)?.length ?? 0) >= 2, 10_000, "both floods to start");
    // A command started while they flood is not queued behind their output: its start's answer and
    // its result wait behind the bounded backlog, the kernel's socket buffers and the floods' results
    // (a few seconds at this rate), not tens of MiB (about 30 s, and the runner dropped, unbounded).
    const started = Date.now();
    const quick = await submit("echo still-here");
    await waitFor(() => ended(quick), 30_000, "the quick command to end");
    const quickMs = Date.now() - started;
    await waitFor(async () => (await ended(zeros)) && (await ended(text)), 30_000, "both floods to end");
    expect(suite.runner.output).not.toMatch(/disconnected from dispatcher/);
    expect(quickMs).toBeLessThan(10_000);
    // Unbounded, 8 MiB of text and 24 MiB of NULs as U+FFFD went; the results are about 3 MiB.
    expect(suite.proxy.forwarded).toBeLessThan(24 * MiB);

    // The stored results are what they always were: each stream's last MiB, as much of it as a result carries.
    for (const [id, byte] of [[zeros, "\0"], [text, "a"]] as const) {
      const expected = deliverableText(byte.repeat(Limits.outputCapBytes)).text;
      const row = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ status: "completed", exitCode: 0, stdoutTruncated: true });
      // Compared as a summary: a failing toBe would print both MiB.
      const stdout = row.stdout ?? "";
      expect({ chars: stdout.length, same: stdout === expected }).toEqual({ chars: expected.length, same: true });
    }

    // Each live log ends at its stream's end (in the bytes of the text as stored: a NUL is U+FFFD) — a chunk,
    // or an empty one marking what was dropped before it — or with the dispatcher's cut-off note: clients
    // then know to print the stored end.
    for (const [id, end] of [[zeros, 3 * FLOOD_BYTES], [text, FLOOD_BYTES]] as const) {
      const entries = (await suite.stack.redis.xrange(suite.stack.keys.operationLog(id), "-", "+")).map(([, fields]) => parseLogEntry(fields));
      const last = entries[entries.length - 1];
      expect(last).toBeDefined();
      if (!last?.cutOff) expect(last && last.offset + Buffer.byteLength(last.data)).toBe(end);
    }
  }, 55_000);
});

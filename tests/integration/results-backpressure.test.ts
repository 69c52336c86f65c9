import { parseLogEntry } from "../../apps/gateway/src/services/log-entry";
import { testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import { useStackWithSlowUplink } from "../helpers/suite";

const MiB = 1024 * 1024;
/** The runner's uplink: the results below take about 20 s to cross it, twice the dispatcher's ping timeout. */
const UPLINK_BYTES_PER_SECOND = MiB;
const OPERATIONS = 16;
const OUTPUT_BYTES = 1.25 * MiB;
/** A live output chunk's envelope on the wire (socket.io event, operation id, stream, offset; WebSocket frame), generously. */
const LIVE_CHUNK_FRAMING_BYTES = 256;

/**
 * A fan-out of commands with large results over a slow uplink: the results must go out no faster
 * than the link takes them, or the heartbeat's answers queue behind them (the dispatcher drops the
 * runner, and its operations fail as runner lost although they succeeded) and each result waits out
 * its acknowledgement's time-out in the queue, to be sent again behind itself.
 */
describe("results over a slow uplink", () => {
  const suite = useStackWithSlowUplink(UPLINK_BYTES_PER_SECOND, { gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });

  it("are sent as the link takes them: every one stored once, the runner never dropped", async () => {
    const ids = await Promise.all(
      Array.from({ length: OPERATIONS }, async (_, i) => {
        const res = await suite.stack
          .api()
          .post("/api/automation/v1/exec")
          .set("Authorization", `Bearer ${suite.fx.token}`)
          .send({ server_id: suite.fx.server.id, command: `head -c ${OUTPUT_BYTES} /dev/zero | tr '\\0' ${String.fromCharCode(97 + i)}`, timeout_seconds: 120 });
        return (res.body as { operation_id: string }).operation_id;
      }),
    );
    await waitFor(
      async () => (await testPrisma().operation.count({ where: { id: { in: ids }, status: { in: ["completed", "failed", "timeout", "cancelled"] } } })) === OPERATIONS || null,
      90_000,
      "every operation to end",
    );
    const rows = await testPrisma().operation.findMany({ where: { id: { in: ids } }, select: { status: true, exitCode: true, stdout: true, error: true } });
    expect(rows.map((r) => ({ status: r.status, exitCode: r.exitCode, error: r.error, bytes: r.stdout?.length }))).toEqual(
      rows.map(() => ({ status: "completed", exitCode: 0, error: null, bytes: expect.any(Number) })),
    );
    // Each kept its last MiB (the output cap), whole.
    for (const r of rows) expect(r.stdout?.length).toBeGreaterThan(0.99 * MiB);
    expect(suite.runner.output).not.toMatch(/disconnected from dispatcher/);
    // Each result crossed once: sent again behind itself, they took several times the link's time. Beside them
    // went what live output the link had room for — more on a slower machine, where the commands print more
    // slowly — which the dispatcher's live logs (kept a while after the end) say.
    let live = 0;
    for (const id of ids) {
      for (const [, fields] of await suite.stack.redis.xrange(suite.stack.keys.operationLog(id), "-", "+")) {
        const entry = parseLogEntry(fields);
        if (!entry.cutOff) live += Buffer.byteLength(entry.data) + LIVE_CHUNK_FRAMING_BYTES;
      }
    }
    expect(suite.proxy.forwarded).toBeLessThan(live + 1.25 * OPERATIONS * MiB + 2 * MiB);
  }, 120_000);
});

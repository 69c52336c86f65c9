import { Limits } from "@runbridge/contracts";
import { CONNECTION_BACKLOG_MAX_BYTES, LiveOutput } from "../../apps/runner/src/live-output";

const CHUNK = 64 * 1024;

/** An operation's live output against a fake connection whose backlog the test sets. */
function harness() {
  const sent: { stream: string; offset: number; data: string }[] = [];
  const link = { backlog: 0 as number | null };
  const live = new LiveOutput({ send: (stream, offset, data) => sent.push({ stream, offset, data }), backlog: () => link.backlog });
  const wire = () => sent.reduce((n, c) => n + Buffer.byteLength(JSON.stringify(c.data)), 0);
  return { sent, link, live, wire };
}

describe("the runner's live output", () => {
  it("counts its budget on the wire: NULs (`\\u0000`, 6 bytes each) stop after the budget's worth of JSON, not of text", () => {
    const { live, wire, sent } = harness();
    const zeros = "\0".repeat(CHUNK);
    for (let offset = 0; offset < 4 * Limits.liveLogMaxBytes; offset += CHUNK) live.push("stdout", zeros, offset);
    // The chunk that crosses the budget goes too (the dispatcher marks its cut-off there), nothing after it.
    expect(wire()).toBeGreaterThan(Limits.liveLogMaxBytes);
    expect(wire()).toBeLessThanOrEqual(Limits.liveLogMaxBytes + 6 * CHUNK + 2);
    expect(sent.every((c) => c.data.length > 0)).toBe(true);
  });

  it("drops chunks while the connection's backlog is over the bound, for every operation sharing it, and says where each stream ended", () => {
    const { live, link, sent } = harness();
    const other = new LiveOutput({ send: (stream, offset, data) => sent.push({ stream: `other-${stream}`, offset, data }), backlog: () => link.backlog });
    const text = "a".repeat(CHUNK);
    live.push("stdout", text, 0);
    link.backlog = CONNECTION_BACKLOG_MAX_BYTES + 1;
    live.push("stdout", text, CHUNK);
    other.push("stdout", text, 0);
    live.push("stderr", "e", 0);
    link.backlog = 0;
    // Sent again once it drains, at its offset: the gap before it is what clients show as skipped.
    live.push("stdout", text, 2 * CHUNK);
    live.push("stdout", text, 3 * CHUNK);
    link.backlog = CONNECTION_BACKLOG_MAX_BYTES + 1;
    live.push("stdout", text, 4 * CHUNK);
    live.end();
    other.end();
    expect(sent.map(({ stream, offset, data }) => [stream, offset, data.length])).toEqual([
      ["stdout", 0, CHUNK],
      ["stdout", 2 * CHUNK, CHUNK],
      ["stdout", 3 * CHUNK, CHUNK],
      // The end: an empty chunk where each stream with dropped bytes at its end stopped.
      ["stdout", 5 * CHUNK, 0],
      ["stderr", 1, 0],
      ["other-stdout", CHUNK, 0],
    ]);
  });

  it("sends nothing while disconnected, and no end mark for a stream that was sent whole", () => {
    const { live, link, sent } = harness();
    live.push("stdout", "hello", 0);
    live.end();
    link.backlog = null;
    live.push("stderr", "lost", 0);
    live.end();
    expect(sent).toEqual([{ stream: "stdout", offset: 0, data: "hello" }]);
  });
});

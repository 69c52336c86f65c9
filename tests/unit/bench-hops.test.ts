import { HopEvent, classifyExec, hopTimeline, messagesPerExec, parseTcpdump, splitExecs, type HopPorts } from "../../bench/src/hops";

const ports: HopPorts = { gateway: 8080, dispatcher: 8090, postgres: 5432, redis: 6379 };
const GW_PG = 40001;
const GW_REDIS = 40002;
const DISP_PG = 40003;
const DISP_REDIS = 40004;
const RUNNER = 40005;
const CLIENT = 40006;

/** One segment as `tcpdump -nn -tt -A` prints it: a header line, then the payload over one or more lines. */
function segment(seconds: number, src: number, dst: number, ...payload: string[]): string {
  const length = payload.join("\n").length;
  return [`${seconds.toFixed(6)} IP 127.0.0.1.${src} > 127.0.0.1.${dst}: Flags [P.], seq 1:${length + 1}, ack 1, win 512, length ${length}`, ...payload].join("\n");
}

/** The messages of one exec of `true`, starting at `t` seconds, 1 ms apart, with BullMQ's extra fetches in between. */
function oneExec(t: number): string[] {
  let ms = 0;
  const at = () => t + ms++ / 1000;
  return [
    segment(at(), CLIENT, ports.gateway, "POST /api/automation/v1/exec HTTP/1.1", "Authorization: Bearer rca_x"),
    segment(at(), GW_REDIS, ports.redis, "*8 $7 evalsha $40 a1de $63 rb:ratelimit:key-1"),
    segment(at(), GW_REDIS, ports.redis, "*2 $6 exists $60 rb:runner:server-1"),
    segment(at(), GW_PG, ports.postgres, "..}.runbridge.server.for-tenant...."),
    segment(at(), ports.postgres, GW_PG, "...T......id...C"),
    segment(at(), GW_PG, ports.postgres, "....runbridge.operation.insert...."),
    segment(at(), ports.postgres, GW_PG, "...T......id...C"),
    segment(at(), GW_REDIS, ports.redis, "*15 $7 evalsha $40 8086 rb:bull:operations:wait"),
    segment(at(), ports.redis, DISP_REDIS, "*16 $8 priority $4 name $17 deliver-operation"),
    segment(at(), DISP_REDIS, ports.redis, "*17 $7 evalsha $40 6c4c rb:bull:operations:wait"),
    segment(at(), DISP_PG, ports.postgres, "...Q.runbridge.operation.claim...."),
    segment(at(), ports.postgres, DISP_PG, "....T......id"),
    segment(at(), ports.dispatcher, RUNNER, '~..42402["operation:start",{"operationId":"op-1"}]'),
    segment(at(), RUNNER, ports.dispatcher, ".....4'(.2Og"),
    segment(at(), RUNNER, ports.dispatcher, ".....2.......@...]"),
    segment(at(), DISP_PG, ports.postgres, ".....runbridge.operation.finish...."),
    segment(at(), ports.postgres, DISP_PG, "....T......id"),
    segment(at(), DISP_REDIS, ports.redis, "*3 $7 publish $42 rb:events:operation-finished"),
    segment(at(), ports.gateway, CLIENT, "HTTP/1.1 200 OK"),
  ];
}

describe("bench:hops — reading the critical path off a loopback capture", () => {
  const capture = [
    // Before the first exec: the key usage flush, which belongs to no exec.
    segment(99.9, GW_PG, ports.postgres, "UPDATE automation_keys k SET last_used_at = u.at"),
    ...oneExec(100),
    ...oneExec(101),
  ].join("\n");
  const packets = parseTcpdump(capture);
  const execs = splitExecs(packets, ports);

  it("parses every segment with its time, ports and payload, and splits the capture at each exec request", () => {
    expect(packets).toHaveLength(1 + 2 * 19);
    expect(packets[1]).toMatchObject({ t: 100_000, src: CLIENT, dst: ports.gateway });
    expect(packets[1]?.text).toContain("Authorization: Bearer");
    expect(execs).toHaveLength(2);
    expect(execs.map((e) => e.length)).toEqual([19, 19]);
  });

  it("times every event from the request, telling PostgreSQL answers and the runner's masked frames apart by order", () => {
    const at = classifyExec(execs[0] ?? [], ports);
    const ms = (e: Parameters<typeof at.get>[0]) => Math.round(at.get(e) ?? NaN);
    expect(ms(HopEvent.RateLimit)).toBe(1);
    expect(ms(HopEvent.Presence)).toBe(2);
    expect(ms(HopEvent.ServerLookup)).toBe(3);
    expect(ms(HopEvent.ServerLookupDone)).toBe(4);
    expect(ms(HopEvent.Insert)).toBe(5);
    expect(ms(HopEvent.InsertDone)).toBe(6);
    expect(ms(HopEvent.Enqueue)).toBe(7);
    expect(ms(HopEvent.JobFetched)).toBe(8);
    // BullMQ's second fetch (9 ms) is not the enqueue: only the first script after the insert is.
    expect(ms(HopEvent.Claim)).toBe(10);
    expect(ms(HopEvent.ClaimDone)).toBe(11);
    expect(ms(HopEvent.Start)).toBe(12);
    expect(ms(HopEvent.Ack)).toBe(13);
    expect(ms(HopEvent.Result)).toBe(14);
    expect(ms(HopEvent.Finish)).toBe(15);
    expect(ms(HopEvent.FinishDone)).toBe(16);
    expect(ms(HopEvent.Publish)).toBe(17);
    expect(ms(HopEvent.Answer)).toBe(18);
    expect(at.size).toBe(Object.keys(HopEvent).length);
  });

  it("gives each event's median and the step from the one before, in the order they happen", () => {
    const late = new Map(classifyExec(execs[1] ?? [], ports));
    late.set(HopEvent.Answer, 30);
    const rows = hopTimeline([classifyExec(execs[0] ?? [], ports), late, classifyExec(execs[0] ?? [], ports)]);
    expect(rows.map((r) => r.event)).toEqual(Object.values(HopEvent));
    const answer = rows[rows.length - 1];
    expect(answer?.atMs).toBeCloseTo(18);
    expect(answer?.sinceMs).toBeCloseTo(1);
    expect(answer?.seen).toBe(3);
    expect(rows[0]?.sinceMs).toBeCloseTo(1);
  });

  it("counts the messages each process sent to PostgreSQL and Redis per exec", () => {
    const owners = new Map([
      [GW_PG, "gateway"],
      [GW_REDIS, "gateway"],
      [DISP_PG, "dispatcher"],
      [DISP_REDIS, "dispatcher"],
      [RUNNER, "runner"],
    ]);
    expect(messagesPerExec(execs, ports, owners)).toEqual([
      { process: "gateway", postgres: 2, redis: 3 },
      { process: "dispatcher", postgres: 2, redis: 2 },
    ]);
  });
});

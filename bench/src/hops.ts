/**
 * The critical path of one exec, hop by hop, read off a packet capture of the
 * loopback interface (`pnpm bench:hops`): no trace points in the services, so
 * what it times is the code as shipped. Each message is recognised by what it
 * carries (a prepared statement's name, a Redis key, a socket.io event) and
 * timed from the moment the exec's HTTP request reached the gateway.
 */
import { summarize } from "./stats";

const median = (values: readonly number[]): number => summarize(values).p50;

/** One TCP segment with a payload, as tcpdump printed it. */
export interface Packet {
  /** Milliseconds (capture clock). */
  t: number;
  src: number;
  dst: number;
  /** The payload as tcpdump's -A prints it: printable bytes, dots for the rest. */
  text: string;
}

export interface HopPorts {
  gateway: number;
  dispatcher: number;
  postgres: number;
  redis: number;
}

/** The events of one exec, in the order the pipeline produces them. */
export const HopEvent = {
  RateLimit: "gateway → Redis: rate limit (Lua script)",
  Presence: "gateway → Redis: is the runner connected",
  ServerLookup: "gateway → PostgreSQL: server lookup",
  ServerLookupDone: "  ← answered",
  Insert: "gateway → PostgreSQL: operation row + audit event (commit)",
  InsertDone: "  ← committed",
  Enqueue: "gateway → Redis: enqueue (BullMQ)",
  JobFetched: "Redis → dispatcher: the job (BullMQ fetch)",
  Claim: "dispatcher → PostgreSQL: claim, marked dispatched (commit)",
  ClaimDone: "  ← committed ",
  Start: "dispatcher → runner: operation:start (socket.io)",
  Ack: "runner → dispatcher: acknowledgement (start record on disk, command spawned)",
  Result: "runner → dispatcher: result (command exited)",
  Finish: "dispatcher → PostgreSQL: finish, output + audit event (commit)",
  FinishDone: "  ← committed  ",
  Publish: "dispatcher → Redis: publish operation-finished",
  Answer: "gateway → client: HTTP answer",
} as const;
export type HopEventName = (typeof HopEvent)[keyof typeof HopEvent];

/** Splits a capture into execs: each begins with an HTTP request to the gateway. */
export function splitExecs(packets: readonly Packet[], ports: HopPorts): Packet[][] {
  const execs: Packet[][] = [];
  let current: Packet[] | null = null;
  for (const p of packets) {
    if (p.dst === ports.gateway && p.text.includes("POST /api/automation/v1/exec")) {
      current = [];
      execs.push(current);
    }
    current?.push(p);
  }
  return execs;
}

/** When each event of one exec happened, in ms after its request reached the gateway. */
export function classifyExec(exec: readonly Packet[], ports: HopPorts): Map<HopEventName, number> {
  const at = new Map<HopEventName, number>();
  const first = exec[0];
  if (!first) return at;
  const mark = (e: HopEventName, p: Packet) => {
    if (!at.has(e)) at.set(e, p.t - first.t);
  };
  // A PostgreSQL answer is the next segment back to the connection that asked.
  const awaitingAnswer = new Map<number, HopEventName>();
  const ask = (p: Packet, sent: HopEventName, answered: HopEventName) => {
    mark(sent, p);
    awaitingAnswer.set(p.src, answered);
  };
  let runnerPort: number | undefined;
  let fromRunner = 0;
  for (const p of exec.slice(1)) {
    const toRedis = p.dst === ports.redis;
    const toPostgres = p.dst === ports.postgres;
    if (p.src === ports.gateway) mark(HopEvent.Answer, p);
    else if (toRedis && p.text.includes(":ratelimit:")) mark(HopEvent.RateLimit, p);
    else if (toRedis && p.text.includes("exists") && p.text.includes(":runner:")) mark(HopEvent.Presence, p);
    else if (toRedis && p.text.includes("publish") && p.text.includes("operation-finished")) mark(HopEvent.Publish, p);
    else if (toRedis && p.text.includes("evalsha") && at.has(HopEvent.InsertDone) && !at.has(HopEvent.Enqueue)) mark(HopEvent.Enqueue, p);
    else if (p.src === ports.redis && p.text.includes("deliver-operation")) mark(HopEvent.JobFetched, p);
    else if (toPostgres && p.text.includes("runbridge.server.for-tenant")) ask(p, HopEvent.ServerLookup, HopEvent.ServerLookupDone);
    else if (toPostgres && p.text.includes("runbridge.operation.insert")) ask(p, HopEvent.Insert, HopEvent.InsertDone);
    else if (toPostgres && p.text.includes("runbridge.operation.claim")) ask(p, HopEvent.Claim, HopEvent.ClaimDone);
    else if (toPostgres && p.text.includes("runbridge.operation.finish")) ask(p, HopEvent.Finish, HopEvent.FinishDone);
    else if (p.src === ports.postgres && awaitingAnswer.has(p.dst)) {
      mark(awaitingAnswer.get(p.dst) as HopEventName, p);
      awaitingAnswer.delete(p.dst);
    } else if (p.src === ports.dispatcher && p.text.includes("operation:start")) {
      mark(HopEvent.Start, p);
      runnerPort = p.dst;
    } else if (runnerPort !== undefined && p.src === runnerPort && p.dst === ports.dispatcher) {
      // The runner's frames are masked (client to server), so they are told apart by order.
      fromRunner++;
      if (fromRunner === 1) mark(HopEvent.Ack, p);
      else if (fromRunner === 2) mark(HopEvent.Result, p);
    }
  }
  return at;
}

export interface HopRow {
  event: HopEventName;
  /** Median time since the request reached the gateway. */
  atMs: number;
  /** Since the previous row's median. */
  sinceMs: number;
  /** Execs in which the event was seen. */
  seen: number;
}

/** Medians of every event over the execs, in the order they happen. */
export function hopTimeline(execs: readonly Map<HopEventName, number>[]): HopRow[] {
  const rows: HopRow[] = [];
  for (const event of Object.values(HopEvent)) {
    const times = execs.map((e) => e.get(event)).filter((t): t is number => t !== undefined);
    if (times.length === 0) continue;
    rows.push({ event, atMs: median(times), sinceMs: 0, seen: times.length });
  }
  rows.sort((a, b) => a.atMs - b.atMs);
  rows.forEach((r, i) => (r.sinceMs = r.atMs - (rows[i - 1]?.atMs ?? 0)));
  return rows;
}

/** Messages each process sent to PostgreSQL and Redis per exec (medians), from the port each connection belongs to. */
export function messagesPerExec(execs: readonly Packet[][], ports: HopPorts, owner: ReadonlyMap<number, string>): { process: string; postgres: number; redis: number }[] {
  const counts = new Map<string, { postgres: number[]; redis: number[] }>();
  for (const exec of execs) {
    const here = new Map<string, { postgres: number; redis: number }>();
    for (const p of exec) {
      const to = p.dst === ports.postgres ? "postgres" : p.dst === ports.redis ? "redis" : null;
      const who = owner.get(p.src);
      if (!to || !who) continue;
      const c = here.get(who) ?? { postgres: 0, redis: 0 };
      c[to]++;
      here.set(who, c);
    }
    for (const name of new Set([...owner.values()])) {
      const c = here.get(name) ?? { postgres: 0, redis: 0 };
      const all = counts.get(name) ?? { postgres: [], redis: [] };
      all.postgres.push(c.postgres);
      all.redis.push(c.redis);
      counts.set(name, all);
    }
  }
  return [...counts].map(([process, c]) => ({ process, postgres: median(c.postgres), redis: median(c.redis) })).filter((r) => r.postgres + r.redis > 0);
}

/** tcpdump -nn -tt -A output as packets (IPv4 loopback segments with a payload). */
export function parseTcpdump(output: string): Packet[] {
  const packets: Packet[] = [];
  let current: Packet | null = null;
  for (const line of output.split("\n")) {
    const m = /^(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): .*length (\d+)/.exec(line);
    if (m) {
      current = Number(m[4]) > 0 ? { t: Number(m[1]) * 1000, src: Number(m[2]), dst: Number(m[3]), text: "" } : null;
      if (current) packets.push(current);
    } else if (current) {
      current.text += line;
    }
  }
  return packets;
}

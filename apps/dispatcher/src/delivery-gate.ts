/**
 * Keeps a runner that does not answer from taking this dispatcher's delivery slots.
 *
 * A delivery holds one of WORKER_CONCURRENCY slots until the runner acknowledges its start, up to
 * RUNNER_ACK_TIMEOUT_MS; the queue is one FIFO for every server. A runner that is connected but
 * silent (frozen, swapping, its disk stalling the ledger's synchronous write) with a few hundred
 * queued operations would hold every slot, ack time-out after ack time-out, while a healthy server's
 * operations waited behind them until their delivery deadlines failed them as runner offline.
 *
 * So, per server: while its runner answers promptly, any number of deliveries go at once (a healthy
 * runner acknowledges in milliseconds; a cap would only slow a burst). Once a request to it went
 * unanswered for the whole ack time-out, or one has been waiting longer than `slowAfterMs`, one
 * delivery at a time is let through to find out whether it answers again; the others give their
 * slot back and come round later (`retryInMs`, growing with each unanswered request). Any answer,
 * or the runner gone (a new connection starts afresh), lets everything through again.
 *
 * Those probes, one per unresponsive server, hold their slot for the ack time-out too: more frozen
 * servers than slots would have them hold every slot, round after round, and the servers that answer
 * would wait as before. So probes hold at most half this dispatcher's slots at once (`useSlots`; at
 * least one), the others left to the servers that answer; a probe beyond that is turned away like the
 * others and comes round later, its server still counting as unresponsive (it was not asked since).
 * Not bounded: a runner's first deliveries, before it leaves one unanswered (nothing tells a frozen
 * runner from a healthy one before), each holding its slot for one ack time-out.
 *
 * A runner that answers "busy" (it runs as many operations as its RUNBRIDGE_MAX_CONCURRENT_OPERATIONS
 * allows) answers at once, so it holds no slot; but every operation waiting for a place would be sent
 * again and again, each round a claim and its release in PostgreSQL and a trip to the runner. While it
 * is busy, one start every BUSY_PROBE_EVERY_MS finds out whether a place freed (at once when one of its
 * starts is taken or, on the dispatcher storing it, one of its results); the others are held back with
 * the runner's reason, without a claim.
 *
 * Per process, in memory: the slots it protects are this process's, and another dispatcher
 * learns the same from its own requests within one ack time-out.
 */
export class DeliveryGate {
  private readonly servers = new Map<string, ServerState>();
  /** Deliveries let through to unresponsive runners (probes), in flight now, on all servers together. */
  private probes = 0;
  /** How many may be in flight at once (no bound until the worker says how many slots it has). */
  private maxProbes = Infinity;

  constructor(private readonly opts: DeliveryGateOptions) {}

  /**
   * The delivery slots (WORKER_CONCURRENCY) deliveries through this gate share: probes of unresponsive runners
   * may hold half of them at once, at least one (with a single slot, nothing is left to the others).
   */
  useSlots(slots: number): void {
    this.maxProbes = Math.max(1, Math.floor(slots / 2));
  }

  /** A ticket for one delivery to the server; it must be left (`leave`) however the delivery ends. */
  ticket(serverId: string): DeliveryTicket {
    return new DeliveryTicket(this, serverId);
  }

  /** Whether the server's runner looks unresponsive now (for logs and tests). */
  isHolding(serverId: string): boolean {
    const s = this.servers.get(serverId);
    return s !== undefined && this.unresponsive(s);
  }

  /**
   * @internal Lets a delivery through (a probe: to a runner that looks unresponsive), or says why not; `busyToo`:
   * a start the runner may refuse as busy (not one it was handed already).
   */
  admit(serverId: string, busyToo: boolean): "admitted" | "probe" | "unresponsive" | "busy" {
    const s = this.state(serverId);
    const probe = this.unresponsive(s);
    if (probe && s.admitted > 0) return "unresponsive";
    if (probe && this.probes >= this.maxProbes) {
      // Not asked now, so nothing learnt: still unresponsive for as long as it would be had it been asked.
      s.turnedAwayAt = this.now();
      return "unresponsive";
    }
    if (busyToo && this.busy(s)) {
      const now = this.now();
      if (now < s.nextProbeAt) return "busy";
      s.nextProbeAt = now + BUSY_PROBE_EVERY_MS;
    }
    s.admitted += 1;
    if (!probe) return "admitted";
    this.probes += 1;
    return "probe";
  }

  /** @internal The runner refused a start as busy, saying `reason`. */
  noteBusy(serverId: string, reason: string): void {
    const s = this.state(serverId);
    const now = this.now();
    s.busyUntil = now + BUSY_FOR_MS;
    s.busyReason = reason;
    s.nextProbeAt = Math.max(s.nextProbeAt, now + BUSY_PROBE_EVERY_MS);
  }

  /** @internal A place on the server's runner may have freed (it took a start, or one of its results was stored). */
  notePlace(serverId: string): void {
    const s = this.servers.get(serverId);
    if (!s) return;
    s.busyUntil = 0;
    s.nextProbeAt = 0;
    this.forgetIfIdle(serverId, s);
  }

  /** @internal The reason the runner last gave for being busy, while it counts as busy. */
  busyReason(serverId: string): string | null {
    const s = this.servers.get(serverId);
    return s && this.busy(s) ? s.busyReason : null;
  }

  /** @internal */
  release(serverId: string, probe: boolean): void {
    if (probe) this.probes -= 1;
    const s = this.servers.get(serverId);
    if (!s) return;
    s.admitted -= 1;
    this.forgetIfIdle(serverId, s);
  }

  /** @internal How long a delivery turned away waits before it comes round again. */
  retryInMs(serverId: string): number {
    const s = this.servers.get(serverId);
    if (s && s.unanswered > 0) return Math.min(BASE_RETRY_MS * 2 ** (s.unanswered - 1), MAX_RETRY_MS);
    if (s && this.busy(s)) return BUSY_RETRY_MS;
    // Only slow so far (a request waiting, none unanswered): it may answer any moment.
    return SLOW_RETRY_MS;
  }

  /**
   * @internal Runs one request to the server's runner, learning from its outcome whether the runner answers:
   * a reply, or a failure saying the runner is not connected (`isAbsence`: a new connection starts afresh),
   * lets everything through again; a failure after the whole ack time-out is one more unanswered request;
   * any other quick failure (a claim that found the operation ended, a store or relay hiccup) says nothing
   * about the runner and changes nothing.
   */
  async track<T>(serverId: string, request: () => Promise<T>, isAbsence: (err: unknown) => boolean): Promise<T> {
    const s = this.state(serverId);
    const waiting = { since: this.now() };
    s.waiting.add(waiting);
    let outcome: "answered" | "unanswered" | "unknown" = "answered";
    try {
      return await request();
    } catch (err) {
      outcome = this.now() - waiting.since >= this.opts.ackTimeoutMs ? "unanswered" : isAbsence(err) ? "answered" : "unknown";
      throw err;
    } finally {
      s.waiting.delete(waiting);
      if (outcome === "answered") s.unanswered = 0;
      else if (outcome === "unanswered") {
        s.unanswered += 1;
        s.lastUnansweredAt = this.now();
        if (s.unanswered === 1) this.opts.onUnresponsive?.(serverId);
      }
      this.forgetIfIdle(serverId, s);
    }
  }

  private busy(s: ServerState): boolean {
    return s.busyUntil > this.now();
  }

  private unresponsive(s: ServerState): boolean {
    const now = this.now();
    if (this.remembered(s)) return true;
    for (const w of s.waiting) if (now - w.since >= this.opts.slowAfterMs) return true;
    return false;
  }

  private state(serverId: string): ServerState {
    let s = this.servers.get(serverId);
    if (!s) {
      s = { admitted: 0, waiting: new Set(), unanswered: 0, lastUnansweredAt: 0, turnedAwayAt: 0, busyUntil: 0, busyReason: null, nextProbeAt: 0 };
      this.servers.set(serverId, s);
    }
    return s;
  }

  /** Nothing in flight and nothing learnt worth keeping: one entry per server would otherwise stay for good. */
  private forgetIfIdle(serverId: string, s: ServerState): void {
    if (s.admitted > 0 || s.waiting.size > 0 || this.busy(s)) return;
    if (this.remembered(s)) return;
    this.servers.delete(serverId);
  }

  /** An unanswered request still counts: one was sent, or a probe was turned away for the bound, within FORGET_AFTER_MS. */
  private remembered(s: ServerState): boolean {
    return s.unanswered > 0 && this.now() - Math.max(s.lastUnansweredAt, s.turnedAwayAt) < FORGET_AFTER_MS;
  }

  private now(): number {
    return this.opts.now?.() ?? performance.now();
  }
}

export interface DeliveryGateOptions {
  /** RUNNER_ACK_TIMEOUT_MS: a request that failed after this long went unanswered. */
  ackTimeoutMs: number;
  /** A request waiting this long already marks the runner as slow, before its time-out. */
  slowAfterMs: number;
  /** Called when a server's runner first goes unanswered (for a log line). */
  onUnresponsive?: (serverId: string) => void;
  /** Monotonic milliseconds (tests). */
  now?: () => number;
}

interface ServerState {
  /** Deliveries holding a ticket that was let through. */
  admitted: number;
  /** The requests to the runner now waiting for its answer, each with when it was sent. */
  waiting: Set<{ since: number }>;
  /** Requests in a row that used up the ack time-out. */
  unanswered: number;
  lastUnansweredAt: number;
  /** When a probe was last turned away because as many probes as may be were in flight. */
  turnedAwayAt: number;
  /** Until when the runner counts as busy (its last "busy" answer, unless a place freed since). */
  busyUntil: number;
  busyReason: string | null;
  /** While busy, no start is let through before this. */
  nextProbeAt: number;
}

/** Turned away while a request is only slow: it may answer any moment (yet every turn costs a look at the operation and a trip through the queue). */
const SLOW_RETRY_MS = 500;
/** Turned away after an unanswered request: about the delivery retry's own pace, doubling with each. */
const BASE_RETRY_MS = 1000;
/** Never longer: an operation waiting at its delivery deadline is failed at most this late. */
const MAX_RETRY_MS = 5000;
/** A busy answer counts this long, unless a later answer or a freed place says otherwise (probes refresh it). */
const BUSY_FOR_MS = 5000;
/** While the runner is busy, one start this often finds out whether a place freed. */
const BUSY_PROBE_EVERY_MS = 500;
/** A delivery held back for a busy runner comes round again after this. */
export const BUSY_RETRY_MS = 2000;
/** An unanswered request this old no longer counts (nobody has asked since). */
const FORGET_AFTER_MS = 60_000;

/** One delivery's passage through the gate. */
export class DeliveryTicket {
  private admitted = false;
  private probe = false;
  /** Why the last admit() did not let it through. */
  heldFor: "unresponsive" | "busy" | null = null;

  constructor(
    private readonly gate: DeliveryGate,
    readonly serverId: string,
  ) {}

  /**
   * Lets the delivery through (idempotent); false while another delivery finds out whether the runner
   * answers, or whether a busy runner has a place (`heldFor` says which). `handedOver`: the runner was
   * given this start already (it answers it from its ledger, never "busy").
   */
  admit(handedOver = false): boolean {
    if (this.admitted) return true;
    const outcome = this.gate.admit(this.serverId, !handedOver);
    this.admitted = outcome === "admitted" || outcome === "probe";
    this.probe = outcome === "probe";
    this.heldFor = outcome === "admitted" || outcome === "probe" ? null : outcome;
    return this.admitted;
  }

  /** The reason the busy runner last gave, while it counts as busy. */
  get busyReason(): string | null {
    return this.gate.busyReason(this.serverId);
  }

  noteBusy(reason: string): void {
    this.gate.noteBusy(this.serverId, reason);
  }

  notePlace(): void {
    this.gate.notePlace(this.serverId);
  }

  get retryInMs(): number {
    return this.gate.retryInMs(this.serverId);
  }

  /** A request to the runner, timed for the gate; `isAbsence`: whether a failure says the runner is not connected. */
  request<T>(send: () => Promise<T>, isAbsence: (err: unknown) => boolean): Promise<T> {
    return this.gate.track(this.serverId, send, isAbsence);
  }

  leave(): void {
    if (this.admitted) this.gate.release(this.serverId, this.probe);
    this.admitted = false;
    this.probe = false;
  }
}

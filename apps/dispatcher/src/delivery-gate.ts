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
 * Per process, in memory: the slots it protects are this process's, and another dispatcher
 * learns the same from its own requests within one ack time-out.
 */
export class DeliveryGate {
  private readonly servers = new Map<string, ServerState>();

  constructor(private readonly opts: DeliveryGateOptions) {}

  /** A ticket for one delivery to the server; it must be left (`leave`) however the delivery ends. */
  ticket(serverId: string): DeliveryTicket {
    return new DeliveryTicket(this, serverId);
  }

  /** Whether the server's runner looks unresponsive now (for logs and tests). */
  isHolding(serverId: string): boolean {
    const s = this.servers.get(serverId);
    return s !== undefined && this.unresponsive(s);
  }

  /** @internal */
  admit(serverId: string): boolean {
    const s = this.state(serverId);
    if (s.admitted > 0 && this.unresponsive(s)) return false;
    s.admitted += 1;
    return true;
  }

  /** @internal */
  release(serverId: string): void {
    const s = this.servers.get(serverId);
    if (!s) return;
    s.admitted -= 1;
    this.forgetIfIdle(serverId, s);
  }

  /** @internal How long a delivery turned away waits before it comes round again. */
  retryInMs(serverId: string): number {
    const unanswered = this.servers.get(serverId)?.unanswered ?? 0;
    // Only slow so far (a request waiting, none unanswered): it may answer any moment.
    if (unanswered === 0) return SLOW_RETRY_MS;
    return Math.min(BASE_RETRY_MS * 2 ** (unanswered - 1), MAX_RETRY_MS);
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

  private unresponsive(s: ServerState): boolean {
    const now = this.now();
    if (s.unanswered > 0 && now - s.lastUnansweredAt < FORGET_AFTER_MS) return true;
    for (const w of s.waiting) if (now - w.since >= this.opts.slowAfterMs) return true;
    return false;
  }

  private state(serverId: string): ServerState {
    let s = this.servers.get(serverId);
    if (!s) {
      s = { admitted: 0, waiting: new Set(), unanswered: 0, lastUnansweredAt: 0 };
      this.servers.set(serverId, s);
    }
    return s;
  }

  /** Nothing in flight and nothing learnt worth keeping: one entry per server would otherwise stay for good. */
  private forgetIfIdle(serverId: string, s: ServerState): void {
    if (s.admitted > 0 || s.waiting.size > 0) return;
    if (s.unanswered > 0 && this.now() - s.lastUnansweredAt < FORGET_AFTER_MS) return;
    this.servers.delete(serverId);
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
}

/** Turned away while a request is only slow: it may answer any moment (yet every turn costs a look at the operation and a trip through the queue). */
const SLOW_RETRY_MS = 500;
/** Turned away after an unanswered request: about the delivery retry's own pace, doubling with each. */
const BASE_RETRY_MS = 1000;
/** Never longer: an operation waiting at its delivery deadline is failed at most this late. */
const MAX_RETRY_MS = 5000;
/** An unanswered request this old no longer counts (nobody has asked since). */
const FORGET_AFTER_MS = 60_000;

/** One delivery's passage through the gate. */
export class DeliveryTicket {
  private admitted = false;

  constructor(
    private readonly gate: DeliveryGate,
    readonly serverId: string,
  ) {}

  /** Lets the delivery through (idempotent); false while another delivery finds out whether the runner answers. */
  admit(): boolean {
    if (!this.admitted) this.admitted = this.gate.admit(this.serverId);
    return this.admitted;
  }

  get retryInMs(): number {
    return this.gate.retryInMs(this.serverId);
  }

  /** A request to the runner, timed for the gate; `isAbsence`: whether a failure says the runner is not connected. */
  request<T>(send: () => Promise<T>, isAbsence: (err: unknown) => boolean): Promise<T> {
    return this.gate.track(this.serverId, send, isAbsence);
  }

  leave(): void {
    if (this.admitted) this.gate.release(this.serverId);
    this.admitted = false;
  }
}

import { handshakeProblem, storableText, type RunnerHandshakeAuth } from "@runbridge/contracts";
import type { RunnerHealthReport } from "@runbridge/db";
import type { DispatcherContext, RunnerSocket } from "./context";

/** How soon a write that failed (PostgreSQL unreachable), or a report of a connection still without an admission number, is tried again. */
const RETRY_MS = 5_000;

/** PostgreSQL text cannot hold U+0000 (the write, the admission's included, would fail): a runner of this release replaces it, another may not. */
const storable = (problem: string | null): string | null => (problem === null ? null : storableText(problem));

/**
 * A runner connection's health — what keeps the runner from taking operations, if anything (its state
 * directory cannot be written) — recorded on its server's row (runner_problem), in the order it said it.
 *
 * Ordering, and why it is correct:
 * - The runner says its health in the handshake, and the admission records it in the same statement as
 *   last_seen_at (runnerAdmitted): the row has it the moment the server shows connected, and a runner of
 *   an earlier release, which says nothing, clears what an earlier runner reported ("no problem known").
 *   Had the admission cleared it and the first report come as an event, the event could land before the
 *   admission's write and be overwritten by it, or after it, showing a degraded runner healthy for a moment.
 * - Reports (runner:health) that arrive before the admission's write wait for it, and each connection's
 *   writes go one at a time, each with the latest report: the last write is always the last thing said.
 * - Across connections (a runner reconnecting through another dispatcher, a replaced one still open for a
 *   moment) the database decides in the same statement (runner-health-sql.ts): a report counts only when its
 *   connection's admission number is at least that of the connection whose report the row holds, as the
 *   newest connection is the one that stays. A connection without a number tries to get one before each
 *   write, and tries again later while its report does not count, so that Redis being unreachable at
 *   admission does not leave an earlier connection's report on the row for good.
 * - A disconnect changes nothing: the row keeps what the runner last said (shown with runner_connected
 *   false), as it keeps runner_version; the next connection says its own.
 */
export class ConnectionHealth {
  /** What the runner last said (null: no problem, or nothing: an earlier release). */
  private problem: string | null;
  /** What was last written for this connection, counted or not; undefined: nothing yet. */
  private written: string | null | undefined = undefined;
  private admitted = false;
  private writing = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  /** That its report waits for an admission number was said (once per connection, not every RETRY_MS). */
  private unnumberedSaid = false;

  constructor(
    private readonly ctx: DispatcherContext,
    private readonly socket: RunnerSocket,
    /** Asks Redis again for the connection's admission number when it has none (socket-server's numberConnection). */
    private readonly number: () => Promise<void>,
  ) {
    this.problem = storable(handshakeProblem((socket.handshake.auth as Partial<RunnerHandshakeAuth> | undefined)?.problem));
    socket.data.degraded = this.problem !== null;
  }

  /** A runner:health report, already checked (runnerEventSchemas). */
  reported(problem: string | null): void {
    this.problem = storable(problem);
    this.socket.data.degraded = this.problem !== null;
    void this.flush();
  }

  /**
   * The admission's write (`write`, which records last_seen_at too) with the health the runner has said so
   * far; reports that came meanwhile are written after it. Throws what the write throws (it is tried again
   * later, without the admission's part).
   */
  async admit(write: (report: RunnerHealthReport) => Promise<boolean>): Promise<void> {
    this.writing = true;
    const problem = this.problem;
    try {
      this.settled(problem, await write(this.report(problem)));
    } catch (err) {
      this.later();
      throw err;
    } finally {
      this.writing = false;
      this.admitted = true;
      void this.flush();
    }
  }

  /** The connection is gone: nothing more is written for it (what it said last stays on the row). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private report(problem: string | null): RunnerHealthReport {
    return { problem, seq: this.socket.data.seq, clientIp: this.socket.data.clientIp };
  }

  /** Writes the latest report, unless it is written already, one write at a time. */
  private async flush(): Promise<void> {
    if (!this.admitted || this.writing || this.closed || this.timer || this.written === this.problem) return;
    this.writing = true;
    const problem = this.problem;
    try {
      if (this.socket.data.seq === undefined) await this.number();
      this.settled(problem, await this.ctx.operations.recordRunnerHealth(this.socket.data.serverId, this.report(problem)));
    } catch (err) {
      this.ctx.logger.warn("could not record a runner's health; trying again", { serverId: this.socket.data.serverId, socketId: this.socket.id, error: String(err), retryInMs: RETRY_MS });
      this.later();
    } finally {
      this.writing = false;
    }
    // Said again meanwhile.
    void this.flush();
  }

  private settled(problem: string | null, counted: boolean): void {
    const { serverId } = this.socket.data;
    const where = { serverId, socketId: this.socket.id };
    if (!counted && this.socket.data.seq === undefined) {
      // Ranked below the numbered connection whose report the row holds until it gets a number.
      if (!this.unnumberedSaid) this.ctx.logger.warn("a runner connection without an admission number reported its health; recorded once it has one", { ...where, retryEveryMs: RETRY_MS });
      this.unnumberedSaid = true;
      this.later();
      return;
    }
    const before = this.written;
    this.written = problem;
    if (!counted) this.ctx.logger.info("a runner connection that is not its server's newest reported its health; not recorded", { ...where, problem });
    else if (problem !== null) this.ctx.logger.warn("runner reports it cannot take operations", { ...where, problem });
    // Not at every admission of a healthy runner: once it said it recovered.
    else if (typeof before === "string") this.ctx.logger.info("runner reports it can take operations again", where);
  }

  private later(): void {
    if (this.closed || this.timer) return;
    this.written = undefined;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, RETRY_MS);
    this.timer.unref();
  }
}

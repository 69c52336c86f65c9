import type { Logger } from "@runbridge/common";
import type { ProcessSpec, StartAck } from "@runbridge/contracts";

/** While starts keep being refused for capacity, the warning is said again at most this often (each waiting operation is offered again every second). */
const SAY_AGAIN_MS = 60_000;

/**
 * What a runner holds memory for at a start's arrival, each counted as one operation: the count is
 * not kept here but read from the agent's own state at each start (its running commands, the starts
 * writing their record, the ledger's outbox), so no path — a spawn that fails, a cancel, a timeout,
 * a kill at the end of a stop's drain — can leak a place: each frees its own by ending as every
 * operation ends, and its result by being delivered.
 */
export interface Held {
  /** Commands running, and starts admitted that are still writing their start record. */
  running: number;
  /** Results decided that no dispatcher has confirmed stored yet (the ledger's outbox, read back into memory after a restart too). */
  undelivered: number;
}

/**
 * RUNBRIDGE_MAX_CONCURRENT_OPERATIONS: the most operations a runner holds at once. Each one with
 * a lot of output costs a few MiB (its last MiB of stdout and of stderr, then the result and its
 * copies on the way out): a CI matrix of 200 jobs fanned onto one server took the runner past
 * 1.3 GB, where the kernel's OOM killer takes it and everything in flight with it. A start beyond
 * the cap is refused for later (`busy`), before anything is recorded, as a stopping runner refuses
 * one: the dispatcher offers it again every few seconds, keeping it waiting past its delivery
 * deadline up to its RUNNER_BUSY_WAIT_MAX_SECONDS, then fails it as not started with this reason
 * (runner_deferred). A dispatcher of an earlier release fails it at its delivery deadline.
 *
 * A place is held until the result is delivered, not only until the command ends: the result (up
 * to a few MiB) stays in memory until a dispatcher confirms it stored, and over a slow uplink
 * (results wait while the connection's backlog is over 1 MiB) or a PostgreSQL that cannot store it,
 * counting commands alone would let results pile up without bound while new starts come in. It is
 * also what the platform calls running: the operation is `running` until its result is stored.
 * Normally a result is confirmed milliseconds after the command ends.
 *
 * A reboot is never refused for capacity: its output is a few bytes, it ends everything running
 * anyway, and a server whose places are all taken by hung commands is where one is needed. It is
 * still counted while it runs.
 */
export class OperationCapacity {
  /** Refusals since the warning was last said. */
  private refused = 0;
  private saidAt: number | null = null;

  constructor(
    /** 0: no cap. */
    private readonly max: number,
    private readonly logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The retryable refusal of a start of `kind` while the runner holds `held`, or null: it may be taken. */
  refusal(kind: ProcessSpec["kind"], held: Held): StartAck | null {
    const total = held.running + held.undelivered;
    if (this.max === 0 || total < this.max || kind === "reboot") return null;
    this.refused++;
    const now = this.now();
    if (this.saidAt === null || now - this.saidAt >= SAY_AGAIN_MS) {
      this.logger.warn("runner at capacity: starts are refused for later until operations end (the dispatchers offer them again every few seconds, for up to their RUNNER_BUSY_WAIT_MAX_SECONDS)", {
        ...held,
        max: this.max,
        refused: this.refused,
      });
      this.saidAt = now;
      this.refused = 0;
    }
    return { ok: false, error: capacityReason(held, this.max), retryable: true, busy: true };
  }
}

/** The runner's reason, which the operation's error carries should it still be refused at its delivery deadline. */
function capacityReason(held: Held, max: number): string {
  const setting = `the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=${max})`;
  if (held.undelivered === 0) return `runner at capacity: ${held.running} operations running, ${setting}`;
  return `runner at capacity: ${held.running + held.undelivered} operations running or delivering their results (${held.running} running, ${held.undelivered} results not yet stored), ${setting}`;
}

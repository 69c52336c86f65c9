import type { Logger } from "@runbridge/common";
import { Ledger, type LedgerView } from "./ledger";

/**
 * How often a runner whose state directory cannot be used tries to open its ledger again. Whoever
 * frees the disk or remounts it read-write does not have to restart the runner: operations are
 * taken again within this long, less than a CI job's own retry takes. An attempt that fails is a
 * mkdir and a lock file that cannot be written: nothing a struggling disk notices.
 */
export const LEDGER_RETRY_MS = 10_000;
/** While the ledger stays unopened for the same cause, its error is said again this often (a look at the last hour of the journal shows it). */
const REMINDER_MS = 60 * 60_000;

/**
 * The storage failures a runner waits out, connected, refusing every operation, instead of exiting:
 * a disk that filled up, a quota, a filesystem the kernel remounted read-only after errors, a failing
 * disk. They come with a server's life, often while it runs, and are fixed on the machine without
 * touching the runner. Permission errors (EACCES, EPERM) are not among them: a person made those (a
 * RUNBRIDGE_STATE_DIR the account may not write, a chown forgotten after changing --user), present
 * from the first start and seen then in the journal; they stay fatal at boot, as does a directory
 * in use by another runner.
 */
const STORAGE_FAILURES = new Map<string, { what: string; cannot: string; fix: string }>([
  ["ENOSPC", { what: "no space left on device", cannot: "cannot be written", fix: "free space on its disk" }],
  ["EDQUOT", { what: "disk quota exceeded", cannot: "cannot be written", fix: "free space in the runner account's disk quota, or raise it" }],
  ["EROFS", { what: "read-only file system", cannot: "cannot be written", fix: "remount its filesystem read-write (the kernel remounts one read-only after disk errors: see its log)" }],
  ["EIO", { what: "input/output error", cannot: "cannot be read or written", fix: "check its disk (the kernel's log says more)" }],
]);

export interface StorageFailure {
  code: string;
  /** The directory, the failure and what to do about it, for operators and for the operations refused meanwhile. */
  reason: string;
}

/** The storage failure behind an error of opening the ledger (it or one of its causes), or null: anything else is fatal, as at boot. */
export function storageFailure(stateDir: string, err: unknown): StorageFailure | null {
  // Not `instanceof Error`: errors of another realm (a vm context) are not, and a cycle of causes must not loop.
  let e = err as { code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++, e = e.cause as typeof e) {
    const known = typeof e.code === "string" ? STORAGE_FAILURES.get(e.code) : undefined;
    if (known) return { code: String(e.code), reason: `state directory ${stateDir} ${known.cannot} (${String(e.code)}: ${known.what}); ${known.fix}` };
  }
  return null;
}

export interface LedgerRetryHooks {
  /** The ledger opened at a retry: from now on the runner takes operations as after a boot. */
  opened(ledger: Ledger): void;
  /** A retry found it still shut (its cause, `problem`, may have changed): it is tried again later. */
  stillShut?(): void;
  /** A retry failed for a reason that stops a boot (another runner uses the directory, a permission): the process should end. */
  failed(err: unknown): void;
}

/**
 * Opens the runner's ledger: at boot, then, while its state directory cannot be used for a storage
 * reason, again every LEDGER_RETRY_MS. Each attempt is a whole `new Ledger`, as a boot makes: the
 * state directory's lock first (taken from nobody alive), the ledger read only after. Between attempts
 * this process holds no lock and writes nothing, so it runs nothing (the agent refuses every start it
 * does not know): another runner taking the directory meanwhile is refused by this one's next attempt
 * as in use, and this one can take it only as a runner starting then would. What it knows meanwhile
 * is the ledger as the disk holds it (view), read at each attempt.
 */
export class LedgerOpener {
  private outage: (StorageFailure & { since: number }) | null = null;
  /** When each cause of this outage was last said: a disk that alternates between two must not log at every attempt. */
  private readonly said = new Map<string, number>();
  /**
   * The ledger as the disk holds it, read at the last attempt (null: it could not be read). It tells
   * a start (or a question about one) that an earlier runner process recorded — which must never run
   * again, and whose outcome comes once the ledger opens — from one never seen here.
   */
  private known: LedgerView | null = null;
  /** The view could not be read at the last attempt, and that was said: not again at every attempt. */
  private viewUnreadableSaid = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly logger: Logger,
    /** The ledger's own reports (see Ledger). */
    private readonly onLedgerError: (message: string, err: unknown) => void,
    private readonly timing = { retryMs: LEDGER_RETRY_MS, reminderMs: REMINDER_MS },
  ) {}

  /** The ledger, or null when a storage failure keeps it shut (retry() tries again); throws any other failure. */
  open(): Ledger | null {
    try {
      const ledger = new Ledger(this.stateDir, this.onLedgerError);
      if (this.outage) {
        this.logger.info("the state directory can be used again: the runner records and takes operations again", { stateDir: this.stateDir, unusableForSeconds: Math.round((performance.now() - this.outage.since) / 1000) });
        this.outage = null;
        this.said.clear();
        this.known = null;
        this.viewUnreadableSaid = false;
      }
      return ledger;
    } catch (err) {
      const failure = storageFailure(this.stateDir, err);
      if (!failure) throw err;
      this.noteOutage(failure, err);
      this.known = this.readKnown();
      return null;
    }
  }

  /** While the ledger is shut: what the disk says it knows (null when that cannot be read either). */
  get view(): LedgerView | null {
    return this.known;
  }

  /**
   * Why a start is refused while the ledger is shut: what its operation's error says. Not started
   * when the ledger on disk could be read and does not know it; otherwise an earlier runner process
   * may have, and that cannot be told.
   */
  get refusal(): string {
    const why = `it cannot record operations: ${this.cause}`;
    return this.known ? `${why}; not started` : `${why}; not run by this runner process (its ledger cannot be read either: whether an earlier one started it is unknown)`;
  }

  /**
   * What keeps the runner from taking operations, as its server shows it (runner:health): the cause and
   * what to do, as each refusal says them; null while the ledger is open (or not tried yet).
   */
  get problem(): string | null {
    return this.outage ? `runner cannot record operations, so it refuses every operation until it can: ${this.cause}` : null;
  }

  private get cause(): string {
    return this.outage?.reason ?? `state directory ${this.stateDir} cannot be used`;
  }

  private readKnown(): LedgerView | null {
    try {
      const view = Ledger.view(this.stateDir);
      this.viewUnreadableSaid = false;
      return view;
    } catch (err) {
      if (!this.viewUnreadableSaid) {
        this.logger.warn("cannot read the ledger either: starts are refused without knowing whether an earlier runner process started them", { stateDir: this.stateDir, error: String(err) });
        this.viewUnreadableSaid = true;
      }
      return null;
    }
  }

  /** Tries open() again every LEDGER_RETRY_MS until it opens or fails for another reason; not after stop(). */
  retry(hooks: LedgerRetryHooks): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      let ledger: Ledger | null;
      try {
        ledger = this.open();
      } catch (err) {
        hooks.failed(err);
        return;
      }
      if (ledger) hooks.opened(ledger);
      else {
        hooks.stillShut?.();
        this.retry(hooks);
      }
    }, this.timing.retryMs);
    // The connection keeps the process alive; this alone must not keep a stopping one.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Each cause said once, and again once an hour while it lasts: not at every attempt, even when causes alternate. */
  private noteOutage(failure: StorageFailure, err: unknown): void {
    const now = performance.now();
    this.outage = { ...failure, since: this.outage?.since ?? now };
    const saidAt = this.said.get(failure.code);
    if (saidAt !== undefined && now - saidAt < this.timing.reminderMs) return;
    this.said.set(failure.code, now);
    const detail = { stateDir: this.stateDir, code: failure.code, error: err instanceof Error ? err.message : String(err), retryEverySeconds: this.timing.retryMs / 1000 };
    if (saidAt === undefined) {
      this.logger.error(`runner cannot record operations: ${failure.reason}. It stays connected and refuses every operation (each fails at once, saying this) until it can`, detail);
    } else {
      this.logger.warn(`runner still cannot record operations: ${failure.reason}`, { ...detail, unusableForSeconds: Math.round((now - this.outage.since) / 1000) });
    }
  }
}

import { randomUUID } from "node:crypto";
import type { ApiClient } from "./api";

export interface CancelHooks {
  /** A progress note for the user. */
  note(text: string): void;
  /** Ends the process (once what it printed is out), leaving the remote operation as it is; `reason` says why. */
  exit(reason: string): void;
}

/**
 * Cancels the remote operation on SIGINT / SIGTERM (Ctrl-C, a CI job being
 * cancelled). The operation id is only known once the POST answers or
 * discovery finds it; a signal that comes before is remembered and the cancel
 * sent as soon as the id is known, so an early interruption never leaves the
 * command running. A second signal exits at once.
 */
export class CancelOnSignal {
  private operationId: string | undefined;
  /** The signal received before the operation id was known. */
  private pending: NodeJS.Signals | undefined;
  /** The first signal received, if any. */
  private signalled: NodeJS.Signals | undefined;
  /** How the cancel request was answered: the operation's status then (202), or "ended" (409: it had already ended). */
  private answer: string | undefined;
  private request: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: ApiClient,
    private readonly hooks: CancelHooks,
  ) {}

  install(): void {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  uninstall(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }

  /** The operation id is known: a signal received before cancels it now. */
  known(id: string): void {
    this.operationId = id;
    const signal = this.pending;
    this.pending = undefined;
    if (signal) this.cancel(signal, id);
  }

  /** Waits for a cancel request in flight, so that a caller that returns early (no follow) does not exit before it is sent. */
  settled(): Promise<void> {
    return this.request;
  }

  /**
   * The signal that interrupted the command, if one did, and what became of
   * the cancel it sent (once settled): for a caller that does not follow the
   * operation to its end, which must still exit as interrupted.
   */
  interruption(): { signal: NodeJS.Signals; cancel: string | undefined } | undefined {
    return this.signalled ? { signal: this.signalled, cancel: this.answer } : undefined;
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.signalled) {
      this.hooks.exit(`${signal}: exiting without waiting for the operation`);
      return;
    }
    this.signalled = signal;
    if (this.operationId) {
      this.cancel(signal, this.operationId);
      return;
    }
    this.pending = signal;
    this.hooks.note(`${signal}: the operation will be cancelled as soon as its id is known (again to exit at once)`);
  };

  private cancel(signal: NodeJS.Signals, id: string): void {
    this.hooks.note(`${signal}: cancelling operation ${id} (again to exit at once)`);
    this.request = this.client
      .post<{ detail?: string; status?: string }>(`/operations/${encodeURIComponent(id)}/cancel`, { body: {}, idempotencyKey: randomUUID(), accept: [404, 405, 409] })
      .then((res) => {
        if (res.status === 404 || res.status === 405) this.hooks.exit("this server cannot cancel operations; it keeps running there");
        // 409: it had already finished; a follow reports how.
        this.answer = res.status === 409 ? "ended" : res.body?.status;
      })
      .catch((err: unknown) => this.hooks.exit(`could not cancel: ${err instanceof Error ? err.message : String(err)}`));
  }
}

import type { Redis } from "ioredis";
import { decodeFinished } from "@runbridge/contracts";

/**
 * Lets a request wait for its operation to finish. Dispatchers publish every
 * operation that reaches a terminal state on one channel (its id, and the
 * finished row when small enough); each gateway process holds one subscriber
 * and wakes the matching local waiters with that row. Without a row, callers
 * read Postgres, so a missed message costs latency, never correctness: waits
 * also wake on a slow poll tick.
 */
export class CompletionWaiter {
  private readonly waiters = new Map<string, Set<(rowJson?: string) => void>>();
  private loops = 0;

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
    /** Once aborted (shutdown), every wait ends at once and new ones do not start. */
    private readonly draining?: AbortSignal,
  ) {
    draining?.addEventListener("abort", () => {
      for (const set of this.waiters.values()) for (const wake of set) wake();
      this.waiters.clear();
    });
    subscriber.on("message", (ch: string, message: string) => {
      if (ch !== this.channel) return;
      const { operationId, rowJson } = decodeFinished(message);
      const set = this.waiters.get(operationId);
      if (!set) return;
      this.waiters.delete(operationId);
      for (const wake of set) wake(rowJson);
    });
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
  }

  /**
   * Registers interest before the job is enqueued (so a fast result is not
   * missed); `wait` resolves when the operation may have finished or at the
   * deadline, with the finished row's JSON when the notification carried it.
   */
  register(operationId: string): { wait: (ms: number, isDone: () => Promise<boolean>) => Promise<string | undefined>; cancel: () => void } {
    let resolveWoke: () => void = () => undefined;
    const woke = new Promise<void>((resolve) => (resolveWoke = resolve));
    let woken = false;
    let cancelled = false;
    let row: string | undefined;
    const wake = (rowJson?: string) => {
      woken = true;
      row = rowJson;
      resolveWoke();
    };
    const set = this.waiters.get(operationId) ?? new Set();
    set.add(wake);
    this.waiters.set(operationId, set);
    const unregister = () => {
      const s = this.waiters.get(operationId);
      s?.delete(wake);
      if (s && s.size === 0) this.waiters.delete(operationId);
    };
    // Also ends a wait in progress: a client that went away must not keep a poll loop going.
    const cancel = () => {
      cancelled = true;
      unregister();
      resolveWoke();
    };
    const wait = async (ms: number, isDone: () => Promise<boolean>) => {
      // Monotonic: the wait bound must hold however the wall clock is set meanwhile.
      const deadline = performance.now() + ms;
      this.loops++;
      try {
        while (!woken && !cancelled && !this.draining?.aborted && performance.now() < deadline) {
          const tick = Math.min(2000, deadline - performance.now());
          await Promise.race([woke, new Promise((r) => setTimeout(r, tick).unref())]);
          if (!woken && !cancelled && (await isDone())) return undefined;
        }
        return row;
      } finally {
        this.loops--;
        unregister();
      }
    };
    return { wait, cancel };
  }

  /** Operations someone is registered to hear about. */
  get pending(): number {
    return this.waiters.size;
  }

  /** Requests held in a wait loop right now (each polls PostgreSQL every 2 s until woken). */
  get waiting(): number {
    return this.loops;
  }
}

import type { Redis } from "ioredis";

/**
 * Lets a request wait for its operation to finish. Dispatchers publish the id
 * of every operation that reaches a terminal state on one channel; each gateway
 * process holds one subscriber and wakes the matching local waiters. Callers
 * re-read Postgres afterwards, so a missed message costs latency, never
 * correctness: waits also wake on a slow poll tick.
 */
export class CompletionWaiter {
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
  ) {
    subscriber.on("message", (ch: string, operationId: string) => {
      if (ch !== this.channel) return;
      const set = this.waiters.get(operationId);
      if (!set) return;
      this.waiters.delete(operationId);
      for (const wake of set) wake();
    });
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
  }

  /**
   * Registers interest before the job is enqueued (so a fast result is not
   * missed); `wait` resolves when the operation may have finished or at the deadline.
   */
  register(operationId: string): { wait: (ms: number, isDone: () => Promise<boolean>) => Promise<void>; cancel: () => void } {
    let wake: () => void = () => undefined;
    let woken = false;
    const woke = new Promise<void>((resolve) => {
      wake = () => {
        woken = true;
        resolve();
      };
    });
    const set = this.waiters.get(operationId) ?? new Set();
    set.add(wake);
    this.waiters.set(operationId, set);
    const cancel = () => {
      const s = this.waiters.get(operationId);
      s?.delete(wake);
      if (s && s.size === 0) this.waiters.delete(operationId);
    };
    const wait = async (ms: number, isDone: () => Promise<boolean>) => {
      const deadline = Date.now() + ms;
      try {
        while (!woken && Date.now() < deadline) {
          const tick = Math.min(2000, deadline - Date.now());
          await Promise.race([woke, new Promise((r) => setTimeout(r, tick).unref())]);
          if (!woken && (await isDone())) return;
        }
      } finally {
        cancel();
      }
    };
    return { wait, cancel };
  }

  get pending(): number {
    return this.waiters.size;
  }
}

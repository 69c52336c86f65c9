/** Why a stream was refused: the key holds all of its own slots, or the process holds all of its. */
export type StreamRefusal = "key-full" | "process-full";

/**
 * Counts the long-lived streams open in this process, per automation key and
 * in all, so that one key cannot take every Redis connection and database
 * pool slot from the others (LOGS_MAX_STREAMS_PER_KEY), and many keys
 * together cannot take them from the gateway (LOGS_MAX_STREAMS). In memory,
 * per gateway process: both limits are per replica.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();
  private total = 0;

  constructor(
    readonly maxPerKey: number,
    readonly maxTotal = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Takes one of `key`'s slots. Returns the function that gives it back (safe
   * to call more than once), or why none was free.
   */
  acquire(key: string): (() => void) | StreamRefusal {
    const held = this.open.get(key) ?? 0;
    if (held >= this.maxPerKey) return "key-full";
    if (this.total >= this.maxTotal) return "process-full";
    this.open.set(key, held + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }

  /** Slots `key` holds now. */
  held(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Slots held by every key together. */
  get inUse(): number {
    return this.total;
  }
}

/**
 * Counts the long-lived streams each automation key holds open in this
 * process, so one key cannot take every Redis connection and database pool
 * slot from the others (live logs: LOGS_MAX_STREAMS_PER_KEY). In memory, per
 * gateway process: the limit is per replica.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();

  constructor(readonly maxPerKey: number) {}

  /**
   * Takes one of `key`'s slots. Returns the function that gives it back (safe
   * to call more than once), or null when the key already holds all of its slots.
   */
  acquire(key: string): (() => void) | null {
    const held = this.open.get(key) ?? 0;
    if (held >= this.maxPerKey) return null;
    this.open.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }

  /** Slots `key` holds now. */
  held(key: string): number {
    return this.open.get(key) ?? 0;
  }
}

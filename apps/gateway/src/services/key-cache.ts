import { LRUCache } from "lru-cache";
import type { AutomationKey } from "@runbridge/db";
import { compileAllowlist, type IpMatcher } from "./ip-allowlist";

/** A key record as the hot path needs it: the row plus its compiled IP allowlist. */
export interface CachedKey {
  key: AutomationKey;
  ipAllowed: IpMatcher;
}

export interface KeyCacheOptions {
  /** Most keys held per process. */
  max?: number;
  /**
   * Safety TTL of a found key. Invalidation normally arrives by pub/sub within
   * milliseconds; this only bounds how long a lost message could matter.
   */
  ttlMs?: number;
  /** TTL of "no such key", so a flood of well-formed but unknown tokens does not each cost a query. */
  negativeTtlMs?: number;
}

interface Slot {
  value: CachedKey | null;
}

/**
 * In-process cache of automation keys by token hash, so a warm key costs no
 * PostgreSQL round trip. Keys found and hashes not found are held apart: the
 * token checksum is no secret, so anyone can make well-formed tokens, and a
 * flood of them must not push real keys out.
 *
 * Correctness rests on three rules:
 * - the cache is only used while the key-change subscription is live
 *   (`setLive`); while the subscriber is disconnected, every request reads
 *   PostgreSQL, and the cache is emptied when the subscription comes back;
 * - every invalidation bumps an epoch, and a load that started before an
 *   invalidation is neither stored nor shared with requests that arrive after
 *   it (otherwise a lookup racing a revoke could re-cache the revoked row);
 * - entries expire after a short safety TTL regardless.
 */
export class KeyCache {
  private readonly found: LRUCache<string, Slot>;
  private readonly missing: LRUCache<string, Slot>;
  private readonly inflight = new Map<string, { epoch: number; promise: Promise<CachedKey | null> }>();
  /** Told when a hash may have changed: long-lived requests (live log streams) re-check their key. */
  private readonly watchers = new Map<string, Set<() => void>>();
  private epoch = 0;
  private live = false;
  /** Counts lookups that went to the database (for tests and metrics). */
  loads = 0;

  constructor(
    private readonly load: (keyHash: string) => Promise<AutomationKey | null>,
    opts: KeyCacheOptions = {},
  ) {
    this.found = new LRUCache<string, Slot>({ max: opts.max ?? 10_000, ttl: opts.ttlMs ?? 15_000, ttlAutopurge: false });
    this.missing = new LRUCache<string, Slot>({ max: opts.max ?? 10_000, ttl: opts.negativeTtlMs ?? 5_000, ttlAutopurge: false });
  }

  get isLive(): boolean {
    return this.live;
  }

  /** `beforeLoad` runs, and may throw to refuse, only when the lookup would go to the database. */
  async get(keyHash: string, beforeLoad?: () => Promise<void>): Promise<CachedKey | null> {
    if (this.live) {
      const slot = this.found.get(keyHash) ?? this.missing.get(keyHash);
      if (slot) return slot.value;
    }
    const joined = this.joinLoad(keyHash);
    if (joined) return joined;
    if (beforeLoad) {
      await beforeLoad();
      const meanwhile = this.joinLoad(keyHash);
      if (meanwhile) return meanwhile;
    }
    const epoch = this.epoch;
    this.loads++;
    const promise = this.load(keyHash)
      .then((row) => {
        const value = row ? { key: row, ipAllowed: compileAllowlist(row.ipAllowlist) } : null;
        if (this.live && epoch === this.epoch) (value ? this.found : this.missing).set(keyHash, { value });
        return value;
      })
      .finally(() => {
        if (this.inflight.get(keyHash)?.promise === promise) this.inflight.delete(keyHash);
      });
    this.inflight.set(keyHash, { epoch, promise });
    return promise;
  }

  /** Calls `fn` whenever the key with this hash may have changed, until the returned function is called. */
  watch(keyHash: string, fn: () => void): () => void {
    const set = this.watchers.get(keyHash) ?? new Set();
    set.add(fn);
    this.watchers.set(keyHash, set);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.watchers.get(keyHash) === set) this.watchers.delete(keyHash);
    };
  }

  /** The load of this hash already under way, if it started since the last invalidation. */
  private joinLoad(keyHash: string): Promise<CachedKey | null> | undefined {
    const pending = this.inflight.get(keyHash);
    return pending && pending.epoch === this.epoch ? pending.promise : undefined;
  }

  /** A key changed (revoked, re-scoped, created): drop it everywhere in this process. */
  invalidate(keyHash: string): void {
    this.epoch++;
    this.found.delete(keyHash);
    this.missing.delete(keyHash);
    for (const fn of this.watchers.get(keyHash) ?? []) fn();
  }

  clear(): void {
    this.epoch++;
    this.found.clear();
    this.missing.clear();
    // Changes may have been missed (the subscription was down): every watcher re-checks.
    for (const set of this.watchers.values()) for (const fn of set) fn();
  }

  /** Called as the key-change subscription goes down or comes (back) up; either way nothing cached survives. */
  setLive(live: boolean): void {
    this.live = live;
    this.clear();
  }
}

import type { AutomationKey } from "@runbridge/db";
import type { CachedKey, KeyCache } from "./key-cache";

/** setTimeout's longest delay; a later expiry is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After a re-read that could not be made (PostgreSQL down), when to try again. */
const UNREADABLE_RETRY_MS = 5_000;
/** A change whose announcement was lost still ends the request within this long. */
const PERIODIC_RECHECK_MS = 60_000;

/**
 * For a request that outlives its authentication (a live log stream can stay
 * open for the whole run of an operation): aborts once the key that opened it
 * is revoked, deleted or expires, or no longer allows what the request does
 * (`allows`: its scopes and IP allowlist as they are now). A key change (this
 * replica's own, or from the key-change channel) makes it read the key again,
 * and so does the key's expiry coming round — as the key says at each read,
 * since an update may have set, moved or removed it. If the key cannot be read
 * (PostgreSQL down), the request goes on and the read is tried again shortly.
 * It is also read every `periodicMs`, for a change whose announcement was lost.
 */
export function watchKey(
  cache: KeyCache,
  key: AutomationKey,
  allows: (now: CachedKey) => boolean,
  periodicMs = PERIODIC_RECHECK_MS,
): { signal: AbortSignal; close: () => void } {
  const gone = new AbortController();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const later = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => void recheck(), Math.min(ms, MAX_TIMER_MS));
  };
  const armExpiry = (expiresAt: Date | null) => {
    clearTimeout(timer);
    timer = undefined;
    if (expiresAt) later(Math.max(0, expiresAt.getTime() - Date.now()));
  };
  const recheck = async () => {
    const cached = await cache.get(key.keyHash).catch(() => undefined);
    if (closed) return;
    if (cached === undefined) return later(UNREADABLE_RETRY_MS);
    const now = cached?.key;
    if (!now || now.revokedAt || (now.expiresAt && now.expiresAt.getTime() <= Date.now()) || !allows(cached)) {
      gone.abort();
      return;
    }
    armExpiry(now.expiresAt);
  };
  const unwatch = cache.watch(key.keyHash, () => void recheck());
  armExpiry(key.expiresAt);
  // A change announced between the request's authentication and this watch had no watcher to hear it: read
  // once now (from the cache, which the announcement emptied, when there was one; else a cache hit).
  void recheck();
  // Through the cache: at most one PostgreSQL read per key and cache lifetime, however many streams.
  const periodic = setInterval(() => void recheck(), periodicMs);
  return {
    signal: gone.signal,
    close: () => {
      closed = true;
      unwatch();
      clearTimeout(timer);
      clearInterval(periodic);
    },
  };
}

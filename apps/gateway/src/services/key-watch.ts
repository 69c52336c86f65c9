import type { AutomationKey } from "@runbridge/db";
import type { KeyCache } from "./key-cache";

/** setTimeout's longest delay; a later expiry is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * For a request that outlives its authentication (a live log stream can stay
 * open for the whole run of an operation): aborts once the key that opened it
 * is revoked, deleted or expires. Revocation arrives as a key change (this
 * replica's own, or from the key-change channel); the key is then read again.
 * If it cannot be read (PostgreSQL down), the request goes on: a revocation
 * that is real shows on the next change or the client's next request.
 */
export function watchKey(cache: KeyCache, key: AutomationKey): { signal: AbortSignal; close: () => void } {
  const gone = new AbortController();
  let closed = false;
  const recheck = async () => {
    const cached = await cache.get(key.keyHash).catch(() => undefined);
    if (closed || cached === undefined) return;
    const now = cached?.key;
    if (!now || now.revokedAt || (now.expiresAt && now.expiresAt.getTime() <= Date.now())) gone.abort();
  };
  const unwatch = cache.watch(key.keyHash, () => void recheck());
  // Expiry needs no change to happen: checked when the key's expiry as of the start comes round
  // (read again then, since an update may have moved it).
  let timer: NodeJS.Timeout | undefined;
  const armExpiry = () => {
    if (!key.expiresAt || closed) return;
    const left = key.expiresAt.getTime() - Date.now();
    if (left <= 0) void recheck();
    else timer = setTimeout(armExpiry, Math.min(left, MAX_TIMER_MS));
  };
  armExpiry();
  return {
    signal: gone.signal,
    close: () => {
      closed = true;
      unwatch();
      clearTimeout(timer);
    },
  };
}

import type { AutomationKey } from "@runbridge/db";
import { KeyCache } from "../../apps/gateway/src/services/key-cache";
import { watchKey } from "../../apps/gateway/src/services/key-watch";
import { waitFor } from "../helpers/processes";

/**
 * A live log stream watches the key that opened it. A revocation normally
 * arrives as a key change on Redis; when that announcement is lost, the
 * periodic re-read still ends the stream.
 */
describe("watchKey", () => {
  it("ends the request at its periodic re-read when a revocation's announcement never came", async () => {
    let row = { id: "k", keyHash: "h", ipAllowlist: [], revokedAt: null, expiresAt: null } as unknown as AutomationKey;
    const cache = new KeyCache(async () => row, { ttlMs: 20 });
    cache.setLive(true);
    const watch = watchKey(cache, row, () => true, 100);
    try {
      await new Promise((r) => setTimeout(r, 250));
      expect(watch.signal.aborted).toBe(false);
      // Revoked in the database; no key change published.
      row = { ...row, revokedAt: new Date() } as AutomationKey;
      await waitFor(async () => watch.signal.aborted, 2_000, "the watch to notice the revocation");
    } finally {
      watch.close();
    }
  });

  it("ends the request when the key was revoked after it was authenticated but before the watch began", async () => {
    const row = { id: "k", keyHash: "h", ipAllowlist: [], revokedAt: null, expiresAt: null } as unknown as AutomationKey;
    let stored = row;
    const cache = new KeyCache(async () => stored, { ttlMs: 60_000 });
    cache.setLive(true);
    // Authenticated (cached), then revoked and announced while the stream was being set up: no watcher yet.
    await cache.get(row.keyHash);
    stored = { ...row, revokedAt: new Date() } as AutomationKey;
    cache.invalidate(row.keyHash);
    // A periodic re-read far off: only a read at the start can catch it.
    const watch = watchKey(cache, row, () => true, 60_000);
    try {
      await waitFor(async () => watch.signal.aborted, 2_000, "the watch to notice the revocation");
    } finally {
      watch.close();
    }
  });

  it("ends the request once the key no longer allows it, at the next re-read", async () => {
    const row = { id: "k", keyHash: "h", ipAllowlist: [], revokedAt: null, expiresAt: null } as unknown as AutomationKey;
    const cache = new KeyCache(async () => row, { ttlMs: 20 });
    cache.setLive(true);
    let allowed = true;
    const watch = watchKey(cache, row, () => allowed, 100);
    try {
      allowed = false;
      await waitFor(async () => watch.signal.aborted, 2_000, "the watch to notice the narrowed scope");
    } finally {
      watch.close();
    }
  });
});

import { useEffect, useRef, useState } from "react";
import type { Page } from "./types";

export interface OlderPages<T> {
  /** Rows loaded with "Load older" for the current filter (null: none yet). */
  rows: T[] | null;
  /** The cursor after them; undefined while none are loaded (the first page's cursor applies). */
  cursor: string | null | undefined;
  error: string | null;
  /** Fetches the page at `cursor`; the list becomes `keep` followed by that page. */
  load: (cursor: string, keep: T[], fetchPage: (cursor: string) => Promise<Page<T>>) => Promise<void>;
  /**
   * Replaces loaded rows by the fresher copies `fetchFresh` returns for them
   * (matched by `idOf`). One refresh at a time: a call while one is in flight
   * does nothing.
   */
  refresh: (fetchFresh: (rows: T[]) => Promise<T[]>, idOf: (row: T) => string) => Promise<void>;
}

/**
 * "Load older" pages of a filtered list. A failure is kept to be shown (not
 * swallowed), and an answer that arrives after the filter changed is dropped:
 * it belongs to a list no longer on screen.
 */
export function useOlderPages<T>(filterKey: string, what: string): OlderPages<T> {
  const [older, setOlder] = useState<{ rows: T[]; cursor: string | null; filterKey: string } | null>(null);
  const [error, setError] = useState<{ message: string; filterKey: string } | null>(null);
  const currentFilter = useRef(filterKey);
  currentFilter.current = filterKey;
  useEffect(() => {
    setOlder(null);
    setError(null);
  }, [filterKey]);

  const shown = older?.filterKey === filterKey ? older : null;
  const load = async (cursor: string, keep: T[], fetchPage: (cursor: string) => Promise<Page<T>>) => {
    const forFilter = filterKey;
    setError(null);
    try {
      const page = await fetchPage(cursor);
      if (currentFilter.current !== forFilter) return;
      setOlder({ rows: [...keep, ...page.data], cursor: page.next_cursor ?? null, filterKey: forFilter });
    } catch (e) {
      if (currentFilter.current === forFilter) setError({ message: `Could not load older ${what}: ${e instanceof Error ? e.message : String(e)}`, filterKey: forFilter });
    }
  };
  const refreshing = useRef(false);
  const refresh = async (fetchFresh: (rows: T[]) => Promise<T[]>, idOf: (row: T) => string) => {
    if (!shown || refreshing.current) return;
    const forFilter = filterKey;
    refreshing.current = true;
    try {
      const fresh = new Map((await fetchFresh(shown.rows)).map((row) => [idOf(row), row]));
      if (!fresh.size) return;
      // Against the rows as they are now: a page loaded meanwhile stays.
      setOlder((now) => (now && now.filterKey === forFilter ? { ...now, rows: now.rows.map((row) => fresh.get(idOf(row)) ?? row) } : now));
    } catch {
      // A refresh that fails is tried again at the next one; the list's own refresh shows an outage.
    } finally {
      refreshing.current = false;
    }
  };
  return { rows: shown?.rows ?? null, cursor: shown ? shown.cursor : undefined, error: error?.filterKey === filterKey ? error.message : null, load, refresh };
}

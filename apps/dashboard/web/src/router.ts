import { useEffect, useState } from "react";

/**
 * A small history-API router: the app has a handful of pages under
 * /dashboard/, and filters live in the query string so a Logs view can be
 * linked to and reloaded.
 */
export const BASE = "/dashboard";

export interface Location {
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  const raw = window.location.pathname.startsWith(BASE) ? window.location.pathname.slice(BASE.length) : window.location.pathname;
  return { path: raw.replace(/\/+$/, "") || "/", query: new URLSearchParams(window.location.search) };
}

/** The current in-app address, as `navigate` takes it. */
function here(): string {
  const l = current();
  const q = l.query.toString();
  return q ? `${l.path}?${q}` : l.path;
}

/**
 * The in-app address the current history entry was opened from — the entry just before it in the tab's history — or
 * null when it was not opened by `navigate`: a page load (a link from elsewhere, a bookmark, a new tab), or a reload
 * of one. Kept in the history entry, so it survives a reload and going back and forward.
 */
export function openedFrom(): Location | null {
  const s: unknown = window.history.state;
  if (!s || typeof s !== "object" || typeof (s as Partial<EntryState>).from !== "string") return null;
  const from = new URL((s as EntryState).from, window.location.origin);
  return { path: from.pathname, query: from.searchParams };
}

const listeners = new Set<() => void>();

/** What navigate keeps in each history entry it adds: the in-app address (path and query) it was opened from. */
interface EntryState {
  from: string;
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = `${BASE}${to}`;
  // A replaced entry (a Logs filter changed) keeps where it was opened from.
  if (opts.replace) window.history.replaceState(window.history.state, "", url);
  else window.history.pushState({ from: here() } satisfies EntryState, "", url);
  listeners.forEach((l) => l());
  if (!opts.replace) window.scrollTo(0, 0);
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return loc;
}

/** Href for an in-app link (so middle-click and "copy link" work too). */
export function href(to: string): string {
  return `${BASE}${to}`;
}

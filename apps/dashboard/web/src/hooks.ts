import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  /** The HTTP status of the error (404 = this gateway has no such endpoint yet). */
  errorStatus: number | null;
  loading: boolean;
  reload: () => void;
}

/** Loads `fn()` on mount and whenever `deps` change; optionally re-polls every `pollMs` while `shouldPoll(data)`. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[], poll?: { ms: number; while: (data: T) => boolean }): Loaded<T> {
  // Data is kept with the inputs it was loaded for: rows of a previous filter are never shown under a new one.
  const [loaded, setLoaded] = useState<{ deps: unknown[]; data: T } | null>(null);
  const data = loaded && sameDeps(loaded.deps, deps) ? loaded.data : null;
  const [error, setError] = useState<{ message: string; status: number | null; deps: unknown[] } | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(() => setTick((t) => t + 1), []);

  useEffect(() => {
    let cancelled = false;
    let stopPoll: (() => void) | undefined;
    const run = async () => {
      try {
        const d = await fnRef.current();
        if (cancelled) return;
        setLoaded({ deps, data: d });
        setError(null);
        if (poll && poll.while(d)) stopPoll = pollAfter(poll.ms, () => void run());
      } catch (e) {
        if (cancelled) return;
        const status = e instanceof ApiError ? e.status : null;
        setError({ message: e instanceof Error ? e.message : String(e), status, deps });
        // A polled view keeps trying through a passing outage (not after a sign-out or a missing endpoint).
        if (poll && status !== 401 && status !== 404) stopPoll = pollAfter(poll.ms * 2, () => void run());
      } finally {
        if (!cancelled) setLoading(false);
      }
    };
    setLoading(true);
    void run();
    return () => {
      cancelled = true;
      stopPoll?.();
    };
    // `deps` are the caller's: the effect re-runs when they (or a reload) change.
  }, [...deps, tick]);

  const current = error && sameDeps(error.deps, deps) ? error : null;
  // Until the new inputs' answer arrives there is nothing to show: loading, not "empty".
  return { data, error: current?.message ?? null, errorStatus: current?.status ?? null, loading: loading || (data === null && !current), reload };
}

/**
 * Calls `next` after `ms` — but not while the page is hidden (a background tab, a minimised window): then once it is
 * visible again, at once. A dashboard left open in the background stops polling the API, and is fresh when looked
 * at. Returns a function that cancels the call.
 */
export function pollAfter(ms: number, next: () => void): () => void {
  const onVisible = () => {
    if (document.visibilityState === "hidden") return;
    document.removeEventListener("visibilitychange", onVisible);
    next();
  };
  const waitUntilVisible = () => document.addEventListener("visibilitychange", onVisible);
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (document.visibilityState === "hidden") waitUntilVisible();
  else timer = setTimeout(() => (document.visibilityState === "hidden" ? waitUntilVisible() : next()), ms);
  return () => {
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

function sameDeps(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/**
 * A form's submission, run at most once at a time. A double click (or Enter
 * pressed twice) lands before React re-renders the button disabled, so the
 * disabled state alone let it through twice: two keys, two servers. The ref
 * closes that gap; `busy` disables the button and says so.
 */
export function useSubmitOnce(): { busy: boolean; once: (work: () => Promise<void>) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const running = useRef(false);
  const once = useCallback(async (work: () => Promise<void>) => {
    if (running.current) return;
    running.current = true;
    setBusy(true);
    try {
      await work();
    } finally {
      running.current = false;
      setBusy(false);
    }
  }, []);
  return { busy, once };
}

/**
 * The pauses between tries: a list (one try after each), or growing by `factor` (2 unless given) from
 * `firstMs` up to `capMs`, for as long as `totalMs` from the first failure: a pause that would end later
 * is not taken.
 */
export type RetryPauses = readonly number[] | { firstMs: number; factor?: number; capMs?: number; totalMs: number };

export interface RetryOptions {
  pauses: RetryPauses;
  /** Checked before each pause: true gives up (e.g. a process shutting down). */
  stopped?: () => boolean;
  /** Each failure that is tried again, before the pause. */
  onRetry?: (error: unknown, pauseMs: number) => void;
  /** Pauses that do not hold the process open (a retry in the background). */
  unref?: boolean;
  /** A first try, made elsewhere, failed with `error`: the retries start with a pause. */
  alreadyFailed?: { error: unknown };
}

/**
 * `work`, tried again after each failure (whatever its error) with the pauses given, until it
 * succeeds; on giving up (pauses used up, or stopped) its last error is thrown.
 */
export async function withRetries<T>(work: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { pauses, stopped, onRetry, unref = false } = options;
  let error: unknown;
  if (options.alreadyFailed) error = options.alreadyFailed.error;
  else {
    try {
      return await work();
    } catch (err) {
      error = err;
    }
  }
  const until = "totalMs" in pauses ? performance.now() + pauses.totalMs : Infinity;
  for (let n = 0; ; n++) {
    const pauseMs = "totalMs" in pauses ? Math.min(pauses.firstMs * (pauses.factor ?? 2) ** n, pauses.capMs ?? Infinity) : pauses[n];
    if (pauseMs === undefined || performance.now() + pauseMs >= until || stopped?.()) throw error;
    onRetry?.(error, pauseMs);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, pauseMs);
      if (unref) timer.unref();
    });
    try {
      return await work();
    } catch (err) {
      error = err;
    }
  }
}

/** Limits of the Automation API, from the spec. One place, imported everywhere. */
export const Limits = {
  commandMaxChars: 8192,
  envMaxKeys: 200,
  /** Sum of UTF-8 bytes of every env key and value. */
  envMaxBytes: 64 * 1024,
  timeoutMinSeconds: 1,
  timeoutMaxSeconds: 900,
  timeoutDefaultSeconds: 60,
  runIdMaxChars: 255,
  runContextMaxBytes: 8 * 1024,
  workingDirectoryMaxChars: 4096,
  /** Captured bytes kept per stream (stdout, stderr); the rest is dropped and flagged. */
  outputCapBytes: 1024 * 1024,
  /**
   * Redis memory budget of one operation's live log (its stream): output bytes of
   * both streams at 5/4 (allocator rounding) plus a fixed charge per chunk. Past
   * it, live output stops with a note; the stored result keeps each stream's tail.
   */
  liveLogMaxBytes: 8 * 1024 * 1024,
  /** Longest an accepted operation may wait for its runner (RUNNER_DELIVERY_TIMEOUT_SECONDS at most). */
  deliveryTimeoutMaxSeconds: 3600,
  /**
   * The youngest a row without a job can be when a dispatcher's sweeper re-enqueues it (REQUEUE_AFTER_SECONDS'
   * minimum).
   */
  requeueAfterMinSeconds: 1,
  /** A cancel request's `reason` (an extension), in characters. */
  cancelReasonMaxChars: 500,
  rateLimitDefault: 100,
  rateLimitMin: 1,
  rateLimitMax: 1000,
  nameMaxChars: 200,
} as const;

/**
 * The runner's own bounds on ending an operation, shared with the dispatchers: the runner enforces them,
 * and a dispatcher's sweeper derives from them how long, past an operation's timeout, a connected runner
 * can still rightly be without its result (RESULT_DUE_AFTER_TIMEOUT_MS).
 */
export const RunnerTimings = {
  /** RUNBRIDGE_KILL_GRACE_SECONDS' maximum: between SIGTERM and SIGKILL of a timed-out process group. */
  killGraceMaxSeconds: 300,
  /** After SIGKILL, how long a command that has not exited (uninterruptible sleep) is waited for before its operation ends without it. */
  unkillableAfterMs: 10_000,
  /** After the command's exit, the longest its output is still read (background processes holding its pipes) before the result is taken. */
  exitOutputMaxWaitMs: 2_000,
  /** How long the runner waits for a dispatcher to acknowledge a result it sent before sending it again. */
  resultAckTimeoutMs: 10_000,
} as const;

/**
 * The longest a runner takes, once an operation's timeout has passed, to have its result — held in its
 * ledger (which a ledger query then answers with) and sent: the longest kill grace a runner may be
 * configured with, then the wait for a command that outlives SIGKILL, then the last read of its output,
 * then one send of the result. A connected runner that, this long past the timeout (and the dispatcher's
 * RESULT_GRACE_SECONDS for clocks and the start's hand-over), still answers "running", or does not answer,
 * is not going to deliver the result: the sweeper ends the operation (FailureCause.ResultOverdue).
 */
export const RESULT_DUE_AFTER_TIMEOUT_MS =
  RunnerTimings.killGraceMaxSeconds * 1000 + RunnerTimings.unkillableAfterMs + RunnerTimings.exitOutputMaxWaitMs + RunnerTimings.resultAckTimeoutMs;

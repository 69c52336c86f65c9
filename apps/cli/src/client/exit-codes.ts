/**
 * Exit codes of the runbridge CLI (and the numbers the GitHub Action reports).
 *
 * A completed operation exits with the remote command's own exit code, so a CI
 * step fails exactly when the remote command failed. Everything else gets a
 * code of its own: GNU timeout's 124 for a timeout, 125 for "could not run it"
 * (as timeout/env use 125 for their own failures), 130 for cancelled (the
 * shell's code for an interrupted command), and sysexits(3) codes for problems
 * on this side of the API. A remote command can exit with one of these numbers
 * too; the CLI's last stderr line always says which case it was.
 */
export const ExitCode = {
  Ok: 0,
  /** Bad flags or arguments; nothing was sent. (EX_USAGE) */
  Usage: 64,
  /** The API refused the request: 404, 409 (no runner connected), 422 and other 4xx. (EX_DATAERR) */
  Rejected: 65,
  /** The API could not be reached, or answered 5xx, after every retry. (EX_UNAVAILABLE) */
  Network: 69,
  /** Still rate limited (429) after waiting out Retry-After several times. (EX_TEMPFAIL) */
  RateLimited: 75,
  /** 401 or 403: the key is invalid, revoked, expired, or not allowed this server/operation/IP. (EX_NOPERM) */
  Auth: 77,
  /** The operation hit its timeout_seconds and was killed. */
  Timeout: 124,
  /** The platform could not run the operation (runner offline or lost, bad working directory, ...). */
  Failed: 125,
  /** The operation was cancelled. */
  Cancelled: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

import type { TerminalStatus } from "./operations";

/**
 * The wire between dispatcher and runner (socket.io). Shared by both sides so a
 * change to an event breaks the build of each, not production.
 */

/** What to execute; the dispatcher maps each operation type to one of these. */
export type ProcessSpec =
  /** `sh -c command` */
  | { kind: "shell"; command: string }
  /** Executed directly, never through a shell (argv[0] looked up on PATH). */
  | { kind: "argv"; argv: string[] }
  /** The runner's own configured reboot command (RUNBRIDGE_REBOOT_COMMAND). */
  | { kind: "reboot" };

export interface StartOperation {
  operationId: string;
  spec: ProcessSpec;
  cwd?: string;
  env?: Record<string, string>;
  /**
   * Non-secret variables the platform provides (e.g. RUNBRIDGE_COMMIT_REF for a
   * deploy): added to the command's environment after `env` and, unlike `env`
   * values, never masked in output.
   */
  vars?: Record<string, string>;
  /** Written to the process's stdin, then stdin is closed (passwords go here, never in argv). */
  stdin?: string;
  timeoutSeconds: number;
  /**
   * ISO time after which the runner must refuse to start it: by then the
   * platform may have failed it as undelivered, so running it would be running
   * it late and unseen (e.g. a start event buffered while the runner was frozen).
   */
  notAfter?: string;
  /**
   * Report a command that could not be started, or that timed out, as a
   * completed run with the exit code a shell or timeout(1) gives (127 not
   * found, 126 not runnable, 124 timed out) and the reason on stderr, instead
   * of `failed` / `timeout`. For registry logout, whose failures the spec
   * answers as "a completed operation with a non-zero exit code".
   */
  failureAsExitCode?: boolean;
}

export type StartAck =
  | { ok: true; state: "started" | "already-started" | "already-finished" }
  /**
   * Not started. `retryable`: not now, but offer it again later (a runner
   * draining for a restart: the next runner process takes it); without it the
   * refusal is final and the operation fails. Older runners never send it.
   * `busy` (with `retryable`): the runner holds as many operations as it may
   * (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS) and takes this one once a place frees:
   * the dispatcher keeps it waiting past its delivery deadline, up to
   * RUNNER_BUSY_WAIT_MAX_SECONDS, instead of failing it there.
   */
  | { ok: false; error: string; retryable?: true; busy?: true };

/**
 * `ok`: a running process was told to stop (its result follows as `cancelled`).
 * Not ok: nothing to stop now — `finished` when the runner already ran it to
 * its end (its result, re-sent meanwhile, is the outcome: nothing may end it
 * as cancelled), else not started yet (the runner will not run it when its
 * start arrives). Older runners never send `finished`.
 */
export type CancelAck = { ok: true } | { ok: false; finished?: true };

export interface OperationResult {
  operationId: string;
  status: TerminalStatus;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
  startedAt: string;
  /** Why the operation failed, timed out or was cancelled. */
  error?: string;
}

export interface OutputChunk {
  operationId: string;
  stream: "stdout" | "stderr";
  /** Byte offset of this chunk in its stream, for resumable live logs. */
  offset: number;
  data: string;
}

export interface LedgerQueryReply {
  /** Per operation id: unknown to the runner, still running, or its result. */
  [operationId: string]: { state: "unknown" } | { state: "running" } | { state: "finished"; result: OperationResult };
}

/**
 * A dispatcher → runner message with its signature for the event and the connection it is sent on
 * (@runbridge/common's signForRunner): the runner acts on none without a valid one. Optional in the
 * receiving types only because dispatchers of earlier releases sent none.
 */
export type Signed<T> = T & { sig: string };

export interface DispatcherToRunnerEvents {
  "operation:start": (op: Signed<StartOperation>, ack: (res: StartAck) => void) => void;
  /** `reason`: the one given to the cancel endpoint, for the operation's error text. */
  "operation:cancel": (req: Signed<CancelRequest>, ack: (res: CancelAck) => void) => void;
  "operation:query": (req: Signed<LedgerQuery>, ack: (res: LedgerQueryReply) => void) => void;
  /**
   * A newer connection with this server's token took over; the receiver must not reconnect. `resultsTicket`
   * admits it once more, on ResultsNamespace, to deliver the results of what it was running then.
   */
  "runner:replaced": (info?: Signed<{ resultsTicket?: string }>) => void;
  /**
   * The server's runner token was rotated: this connection's token no longer
   * works and never will again. Sent just before the dispatcher disconnects
   * it; the receiver must not reconnect with that token.
   */
  "runner:token-revoked": (info?: Signed<object>) => void;
}

export interface CancelRequest {
  operationId: string;
  reason?: string;
}

export interface LedgerQuery {
  operationIds: string[];
}

/** A dispatcher's answer to `runner:clock`: the platform's time (ISO), PostgreSQL's clock as the dispatcher reads it; signed. */
export interface PlatformTime {
  now: string;
  sig?: string;
}

/**
 * A dispatcher's answer to `operation:result`: whether it stored the result; signed when stored. A
 * runner keeps (and sends again) a result whose answer is not signed for its connection.
 */
export interface ResultAck {
  stored: boolean;
  operationId?: string;
  sig?: string;
}

/**
 * What the dispatcher's answers to a runner are signed as (see @runbridge/common's runner-signature).
 * Answers are signed too: the socket.io Redis adapter re-broadcasts whatever packet is published on
 * its channels, acknowledgements included, and a runner takes an acknowledgement for the question
 * of the same number. Unsigned, anyone on Redis could have runners drop results as stored, or set
 * their clocks.
 */
export const SignedAnswer = {
  Result: "answer:operation:result",
  Clock: "answer:runner:clock",
} as const;

export interface RunnerToDispatcherEvents {
  /**
   * The platform's time: PostgreSQL's clock, by which every delivery deadline (`notAfter`) is set.
   * A runner measures its own clock against it when it connects and every few minutes, so that a
   * server whose clock is off neither refuses timely starts nor takes late ones, and stamps its
   * starts in the platform's time. Dispatchers of an earlier release do not answer.
   */
  "runner:clock": (ack: (reply: PlatformTime) => void) => void;
  "operation:started": (ev: { operationId: string; startedAt: string }) => void;
  "operation:output": (chunk: OutputChunk) => void;
  /** Acked once the result is durably stored; the runner re-sends until then. */
  "operation:result": (result: OperationResult, ack: (res: ResultAck) => void) => void;
  /**
   * What keeps the runner from taking operations, if anything, shown on its server (runner_problem):
   * sent on every connection and whenever it changes. Not acknowledged: a report lost with its
   * connection is sent again on the next. Dispatchers of an earlier release ignore it; runners of an
   * earlier release never send it (their server shows no problem).
   */
  "runner:health": (health: RunnerHealth) => void;
}

/**
 * A runner's health: `problem` null while it takes operations, else why it refuses them and what to do
 * (e.g. its state directory cannot be written), at most RUNNER_PROBLEM_MAX_CHARS characters.
 */
export interface RunnerHealth {
  problem: string | null;
}

/**
 * The longest problem a runner reports, in UTF-16 code units (a JavaScript string's length, what the
 * dispatcher's check counts): runnerProblemText cuts one to it; a dispatcher drops a longer report.
 */
export const RUNNER_PROBLEM_MAX_CHARS = 1000;

/**
 * A problem as a runner reports it: at most RUNNER_PROBLEM_MAX_CHARS long (a state directory's path
 * may be long), cut with an ellipsis, and storable in PostgreSQL text (storableText).
 */
export function runnerProblemText(problem: string): string {
  const text = storableText(problem);
  if (text.length <= RUNNER_PROBLEM_MAX_CHARS) return text;
  let end = RUNNER_PROBLEM_MAX_CHARS - 1;
  // Not between the two halves of a surrogate pair: half a character is not text PostgreSQL stores.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

export interface RunnerHandshakeAuth {
  token: string;
  /** Runner software version (RUNNER_VERSION_PATTERN), recorded as the server's runner_version. */
  version?: string;
  /** ResultsNamespace only: the ticket the runner was given with `runner:replaced`. */
  resultsTicket?: string;
  /**
   * The runner's problem as it connects (RunnerHealth; absent: none). Said in the handshake, so that
   * the admission records the connection's health with it, in one write: a `runner:health` sent after
   * connecting could reach the server's row before the admission and be overwritten by it.
   */
  problem?: string;
}

export const SocketPath = "/runner";

/** What a runner may report as its version (semver and the like); anything else is recorded as not said. */
export const RUNNER_VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$/;

/**
 * The socket.io namespace of a replaced runner's last connection, made only to deliver the results of what
 * it was running when it was replaced: it replaces nothing, shows no runner as connected, is sent nothing,
 * and needs the ticket that came with `runner:replaced`. A namespace of its own, so that a dispatcher of an
 * earlier version refuses it ("Invalid namespace") instead of taking it for the server's runner.
 */
export const ResultsNamespace = "/results";

/** Why a dispatcher refuses a runner's handshake (the connect_error message the runner sees). */
export const HandshakeRefusal = {
  /** Not a runner token, or no server has it: a person must fix the runner's configuration. */
  InvalidToken: "invalid runner token",
  /** The dispatcher could not look the token up (PostgreSQL down): worth retrying soon. */
  Unavailable: "dispatcher unavailable, retry",
  /** Too many tokens that name no server from this address this minute (RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE): retry later. */
  Throttled: "too many unknown runner tokens from this address, retry later",
  /** The dispatcher is shutting down: connect again (the proxy or load balancer picks another one). */
  ShuttingDown: "dispatcher shutting down, retry",
  /** A results connection without a valid ticket (none given, expired, or another server's). */
  NoResultsTicket: "no valid results ticket",
} as const;

/**
 * Largest message the dispatcher accepts from a runner (socket.io's
 * maxHttpBufferSize): a bigger one closes the connection, so a result must be
 * built to fit it.
 */
export const RunnerMessageMaxBytes = 4 * 1024 * 1024;

/**
 * Output text as a result may carry it: PostgreSQL text (and jsonb, where the
 * audit event copies the error) cannot hold U+0000, so it becomes U+FFFD.
 * Runners apply it before sending; the dispatcher again, for older runners.
 */
export function storableText(text: string): string {
  return text.replaceAll("\u0000", "\uFFFD");
}

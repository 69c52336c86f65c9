export const OperationType = {
  Exec: "exec",
  Deploy: "deploy",
  Restart: "restart",
  Reboot: "reboot",
  RegistryLogin: "registry_login",
  RegistryLogout: "registry_logout",
} as const;
export type OperationType = (typeof OperationType)[keyof typeof OperationType];
export const OPERATION_TYPES = Object.values(OperationType) as OperationType[];

/**
 * The spec's status values, plus `cancelled` (an extension: an operation stopped
 * through the cancel endpoint).
 */
export const OperationStatus = {
  Running: "running",
  Completed: "completed",
  Failed: "failed",
  Timeout: "timeout",
  Cancelled: "cancelled",
} as const;
export type OperationStatus = (typeof OperationStatus)[keyof typeof OperationStatus];
export type TerminalStatus = Exclude<OperationStatus, "running">;
export const TERMINAL_STATUSES: readonly TerminalStatus[] = Object.values(OperationStatus).filter((s): s is TerminalStatus => s !== OperationStatus.Running);
export function isTerminal(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/**
 * The exit codes a registry logout that did not run to its end is answered with: the spec answers
 * its failures as "a completed operation with a non-zero exit code". 124, 126 and 127 are what
 * timeout(1) and a shell give (the runner's executor); 125 is the platform's own failure (not
 * delivered, runner lost or refused, queue unreachable), recorded with the finish (the db's
 * OperationStore), as `docker run` uses it for a failure of its own rather than the command's.
 */
export const FailureExitCode = { TimedOut: 124, NotRun: 125, NotExecutable: 126, NotFound: 127 } as const;

/** Reasons the platform gives when an operation is `failed` (it could not run it). */
export const FailureReason = {
  RunnerOffline: "runner offline: the server's runner was not connected to take the operation",
  /** Never handed over: its runner was connected but left the deliveries sent to it unanswered (delivery-gate). */
  RunnerUnresponsive:
    "runner unresponsive: the server's runner was connected but did not acknowledge the deliveries sent to it before the operation's delivery deadline (frozen, swapping, or its disk stalled?); nothing ran",
  /** Never handed over, and no delivery of it ever looked for its runner (its job waited in the queue). */
  QueueBacklog:
    "not delivered: no dispatcher got to the operation before its delivery deadline (its job waited in the queue: dispatchers stopped, paused or behind a backlog); its runner was never asked, and nothing ran",
  RunnerLost: "runner lost: the runner disconnected and did not report a result in time",
  RunnerUnconfirmed: "runner offline: the runner went away before reporting the operation running, and did not come back in time",
  ResultLost: "result lost: the runner has no record of this operation",
  /** Its runner, connected, did not answer for it (nor deliver its result) long past its timeout and every grace a runner may take (RESULT_DUE_AFTER_TIMEOUT_MS). */
  ResultOverdueUnanswered:
    "result overdue: the server's runner stayed connected but neither delivered the result nor answered when asked about the operation, long after its timeout plus the longest kill grace a runner may take; ended without its result, so whether the command ran to its end (and what it printed) is unknown",
  /** Its runner, connected, kept saying it was running long past its timeout and every grace a runner may take (RESULT_DUE_AFTER_TIMEOUT_MS). */
  ResultOverdueStillRunning:
    "result overdue: the server's runner kept reporting the operation as running long after its timeout plus the longest kill grace a runner may take (a process it could not end, or a start it lost track of); ended without its result, so whether the command ran to its end (and what it printed) is unknown",
  QueueLost: "queue lost: the job queue (Redis) lost this operation before delivery, with its secret inputs; nothing ran. Retry the request",
  /** A lost deploy job whose deployment row was never written: it cannot wait its turn behind the application's other deploys. */
  DeploymentNotRecorded:
    "deployment not recorded: the gateway failed before recording this deploy, so it could not wait for the application's other deploys; nothing ran. Retry the request",
  /** Recorded though PostgreSQL never confirmed it to the gateway, which told its client it was not started, or to look it up. */
  NotConfirmed:
    "not confirmed: PostgreSQL did not confirm recording this operation to the gateway (its answer was lost), so it was never queued and the client was not told it was accepted; nothing ran. Retry the request",
  /** A registry login whose credential was deleted (or can no longer be decrypted) before it was delivered. */
  CredentialGone:
    "registry credential gone: the credential was deleted, or can no longer be decrypted with the configured keys, before the login reached the runner; nothing ran",
  /**
   * A reboot claimed for a cloud provider API call whose answer was never recorded (the
   * dispatcher died, or could not store it): rebooting again through the runner could reboot
   * the server twice.
   */
  RebootOutcomeUnknown:
    "reboot outcome unknown: the dispatcher calling the cloud provider's reboot API stopped (or lost its database) before recording the answer, so whether the server rebooted is unknown. It was not rebooted again through the runner: check the server before retrying",
  /**
   * A cloud provider's reboot API that may have received the call but gave no definite answer
   * (time-out, connection cut after the request, a gateway's 502/504): same hazard as above.
   */
  RebootProviderNoAnswer:
    "reboot outcome unknown: the cloud provider's reboot API gave no definite answer (no reply in time, the connection cut after the request was sent, or a gateway error), so whether the server rebooted is unknown. It was not rebooted again through the runner: check the server before retrying",
} as const;

/**
 * A deploy whose env_overrides its application no longer accepts when it is delivered: its
 * allowed_env_overrides changed while it waited, or a gateway of an earlier release, which did
 * not know a refusal, accepted it.
 */
export function envOverrideRefusedAtDelivery(refusal: string): string {
  return `env_overrides refused when the deploy was delivered (the application's allowed_env_overrides changed after it was accepted, or it was accepted by an older gateway): ${refusal}; nothing ran`;
}

/**
 * An operation its server's runner kept refusing for later (retryably) until the delivery deadline
 * passed: the runner was connected, and "runner offline" would send its operator looking for a
 * network fault. `why` is the runner's own reason for the last refusal (e.g. an earlier deploy of
 * the application still running there).
 */
export function runnerDeferredUntilDeadline(why: string): string {
  return `not started: the server's runner was connected but asked for it later until its delivery deadline passed (last reason given: ${why}); nothing ran`;
}

/** The error of an operation ended by a cancel request (by the gateway, or by a dispatcher withholding its start). */
export function cancelledOnRequest(reason?: string): string {
  return `cancelled on request${reason ? `: ${reason}` : ""}`;
}

/** The error of an operation its runner stopped on a cancel request, or did not start because of one. */
export function cancelledByRunner(reason: string | undefined, beforeStart: boolean): string {
  if (!beforeStart) return `${cancelledOnRequest(reason)}; the process group was killed`;
  return reason ? `${cancelledOnRequest(reason)}; it had not started, and the command was not run` : cancelledOnRequest("before it started; the command was not run");
}

/**
 * Why an operation ended `failed`, as the finished-operations metric's `reason` label: bounded, and
 * told apart where the error text cannot be (it carries details). The other statuses count as `none`.
 */
export const FailureCause = {
  /** The runner reported it: the command could not be run (or was stopped for an error). */
  Runner: "runner",
  /** The runner refused the start (e.g. a deploy whose application it does not know). */
  RunnerRefused: "runner_refused",
  RunnerOffline: "runner_offline",
  /** Not started: its runner, connected, refused it for later until the delivery deadline (runnerDeferredUntilDeadline). */
  RunnerDeferred: "runner_deferred",
  /** Not started: its runner, connected, left deliveries unanswered until the delivery deadline. */
  RunnerUnresponsive: "runner_unresponsive",
  /** Not started: its job waited in the queue, untaken by any dispatcher, until the delivery deadline. */
  QueueBacklog: "queue_backlog",
  RunnerLost: "runner_lost",
  RunnerUnconfirmed: "runner_unconfirmed",
  ResultLost: "result_lost",
  /** Its runner, connected, neither answered for it nor delivered its result, or kept saying it was running, long past its timeout (FailureReason.ResultOverdue*). */
  ResultOverdue: "result_overdue",
  QueueLost: "queue_lost",
  /** The gateway recorded it but could not queue it (Redis unreachable). */
  NotQueued: "not_queued",
  DeploymentNotRecorded: "deployment_not_recorded",
  /** A deploy refused (409) because its application was changed while the deploy was accepted; nothing ran. */
  ApplicationChanged: "application_changed",
  /** Recorded although the gateway's insert went unconfirmed and its client was told "not started". */
  NotConfirmed: "not_confirmed",
  CredentialGone: "credential_gone",
  /** A deploy's env_overrides refused when it was delivered (see envOverrideRefusedAtDelivery). */
  EnvOverrideRefused: "env_override_refused",
  /** The dispatcher could not open its sealed inputs (an encryption key missing from its configuration). */
  InputsUnreadable: "inputs_unreadable",
  /** A reboot through a cloud provider whose outcome is unknown (see FailureReason). */
  RebootOutcomeUnknown: "reboot_outcome_unknown",
} as const;
export type FailureCause = (typeof FailureCause)[keyof typeof FailureCause];

/** How an operation ends: a failure always says why (its label in the finished-operations metric). */
export type Ending = { status: Exclude<TerminalStatus, "failed"> } | { status: "failed"; cause: FailureCause };

/** The `reason` label of an ending. */
export function endingReason(ending: Ending): FailureCause | "none" {
  return ending.status === "failed" ? ending.cause : "none";
}

/**
 * The finished-operations metric's labels for an ending as it was recorded. The status is the
 * recorded one, which clients see: a registry logout the platform failed is recorded as completed
 * with exit 125/124 (the spec's rule for every logout failure). The reason stays the platform's, so
 * those logouts can still be told from ones whose docker command failed.
 */
export function finishedLabels(ending: Ending, recordedStatus: string, type: string): { status: string; type: string; reason: FailureCause | "none" } {
  return { status: recordedStatus, type, reason: endingReason(ending) };
}

/**
 * The one metric both dispatchers and gateways count (each end of an operation is a
 * conditional transition exactly one process wins, and only the winner counts it), so that a
 * sum over every process is every operation that ended. Its name keeps the dispatcher prefix
 * it was first published with, for existing dashboards.
 */
export const OperationsFinishedMetric = {
  name: "runbridge_dispatcher_operations_finished_total",
  help: "Operations this process moved to a terminal status, by the status recorded, operation type and, for the ones that failed, reason (runner: the runner reported it; the others are the platform's: runner_offline, runner_deferred, runner_lost, queue_lost...; a registry logout the platform failed is recorded completed, exit 125/124, and keeps the platform's reason; none for the rest). Dispatchers and gateways both count: sum over every process, each ended operation is counted once",
  labelNames: ["status", "type", "reason"] as const,
};

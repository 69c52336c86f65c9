import type { Operation, Server } from "@runbridge/db";

/** Operation result as the API shows it. */
/** An operation row, or one read without its output columns (lists asked for `output=false`). */
export type OperationRow = Omit<Operation, "stdout" | "stderr"> & Partial<Pick<Operation, "stdout" | "stderr">>;

/** The result of an ended operation; without `stdout`/`stderr` when the row was read without them. */
export function resultOf(op: OperationRow) {
  if (op.status === "running") return null;
  return {
    exit_code: op.exitCode,
    ...("stdout" in op ? { stdout: op.stdout ?? "", stderr: op.stderr ?? "" } : {}),
    duration_ms: op.durationMs,
    stdout_truncated: op.stdoutTruncated,
    stderr_truncated: op.stderrTruncated,
  };
}

/** Response of a synchronous POST: the full result when terminal, else `{operation_id, status: "running"}`. */
export function syncResponse(op: Operation) {
  if (op.status === "running") return { operation_id: op.id, status: op.status };
  return {
    operation_id: op.id,
    status: op.status,
    ...resultOf(op),
    ...(op.error ? { error: op.error } : {}),
  };
}

/** GET /operations/{id}, as in the spec, plus `error` and `created_at`. */
export function operationView(op: OperationRow & { server?: Pick<Server, "name"> | null }) {
  return {
    operation_id: op.id,
    operation_type: op.type,
    server_id: op.serverId,
    server_name: op.server?.name ?? null,
    status: op.status,
    result: resultOf(op),
    error: op.error,
    run_id: op.runId,
    run_context: op.runContext,
    command: op.command,
    params: op.params,
    working_directory: op.workingDirectory,
    timeout_seconds: op.timeoutSeconds,
    env_keys: op.envKeys,
    automation_key_id: op.automationKeyId,
    created_at: op.createdAt.toISOString(),
    started_at: op.startedAt?.toISOString() ?? null,
    completed_at: op.completedAt?.toISOString() ?? null,
  };
}

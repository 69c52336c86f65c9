/** The API's operation shapes, as much of them as the client reads. */

export type Status = "running" | "completed" | "failed" | "timeout" | "cancelled";

export interface OperationResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
  duration_ms: number | null;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
}

/** GET /operations/{id} (the fields the client uses). */
export interface OperationView {
  operation_id: string;
  operation_type?: string;
  server_id?: string;
  server_name?: string | null;
  status: Status | string;
  result: OperationResult | null;
  error?: string | null;
  run_id?: string | null;
  run_context?: Record<string, unknown> | null;
  [more: string]: unknown;
}

/** What a POST answers: `{operation_id, status}` plus, for a finished synchronous operation, the result fields. */
export interface AcceptedOperation {
  operation_id: string;
  status: Status | string;
  exit_code?: number | null;
  stdout?: string;
  stderr?: string;
  duration_ms?: number | null;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  error?: string;
  deployment_id?: string;
  registry_url?: string;
  registry_type?: string;
  [more: string]: unknown;
}

export interface OperationPage {
  data: OperationView[];
  next_cursor: string | null;
}

/** Where the remote output and the client's own notes go. */
export interface OutputSink {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The client's own progress notes (never remote output, never secrets). */
  note(text: string): void;
}

/** The synchronous answer of a POST, as the operation view GET would show. */
export function viewFromAccepted(a: AcceptedOperation): OperationView {
  return {
    operation_id: a.operation_id,
    status: a.status,
    error: a.error ?? null,
    result:
      a.status === "running"
        ? null
        : {
            exit_code: a.exit_code ?? null,
            stdout: a.stdout ?? "",
            stderr: a.stderr ?? "",
            duration_ms: a.duration_ms ?? null,
            stdout_truncated: a.stdout_truncated,
            stderr_truncated: a.stderr_truncated,
          },
  };
}

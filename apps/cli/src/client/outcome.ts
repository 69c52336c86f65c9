import { ExitCode } from "./exit-codes";
import type { OperationView } from "./types";

export interface Outcome {
  exitCode: number;
  /** One line saying what happened, for the end of the log. */
  summary: string;
}

/** The CLI's exit code for a finished operation: the remote exit code when it completed. */
export function outcomeOf(op: OperationView): Outcome {
  const id = op.operation_id;
  const why = op.error ? `: ${op.error}` : "";
  const took = typeof op.result?.duration_ms === "number" ? ` in ${(op.result.duration_ms / 1000).toFixed(1)} s` : "";
  switch (op.status) {
    case "completed": {
      const code = op.result?.exit_code ?? 0;
      return { exitCode: code, summary: `operation ${id} completed with exit code ${code}${took}` };
    }
    case "timeout":
      return { exitCode: ExitCode.Timeout, summary: `operation ${id} timed out${why} (exit ${ExitCode.Timeout})` };
    case "cancelled":
      return { exitCode: ExitCode.Cancelled, summary: `operation ${id} was cancelled${why} (exit ${ExitCode.Cancelled})` };
    case "failed":
      return { exitCode: ExitCode.Failed, summary: `operation ${id} failed${why} (exit ${ExitCode.Failed})` };
    default:
      return { exitCode: ExitCode.Failed, summary: `operation ${id} ended with unknown status "${op.status}" (exit ${ExitCode.Failed})` };
  }
}

export function isTerminalStatus(status: string): boolean {
  return status !== "running";
}

import { randomUUID } from "node:crypto";
import { ExitCode } from "../client/exit-codes";
import { outcomeOf } from "../client/outcome";
import type { OperationRequest } from "../client/requests";
import { submitOperation, type Invocation, type Submitted } from "../client/submit";
import type { Connection } from "./connection";

export interface RunOptions {
  follow: boolean;
  /** A completed operation with a non-zero exit is only a warning (registry logout, as the spec asks). */
  nonZeroIsWarning?: boolean;
}

/**
 * Submits an operation and follows it, printing the remote output live, then
 * returns the exit code that mirrors the outcome. Ctrl-C / SIGTERM (a CI job
 * being cancelled) cancels the remote operation instead of leaving it running.
 */
export async function runOperation(
  conn: Connection,
  req: OperationRequest,
  inv: Invocation,
  opts: RunOptions,
): Promise<{ code: number; submitted: Submitted }> {
  const { client, sink } = conn;
  let operationId: string | undefined;
  let interrupted = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted || !operationId) {
      sink.note(`${signal}: exiting without waiting for the operation`);
      process.exit(ExitCode.Cancelled);
    }
    interrupted = true;
    const id = operationId;
    sink.note(`${signal}: cancelling operation ${id} (again to exit at once)`);
    client
      .post<{ detail?: string }>(`/operations/${encodeURIComponent(id)}/cancel`, { body: {}, idempotencyKey: randomUUID(), accept: [404, 405, 409] })
      .then((res) => {
        if (res.status === 404 || res.status === 405) {
          sink.note("this server cannot cancel operations; it keeps running there");
          process.exit(ExitCode.Cancelled);
        }
        // 409: it had already finished; the follow below reports how.
      })
      .catch((err: unknown) => {
        sink.note(`could not cancel: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(ExitCode.Cancelled);
      });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const submitted = await submitOperation(client, req, inv, sink, {
      follow: opts.follow,
      onOperation: (id) => {
        operationId = id;
        if (opts.follow) sink.note(`operation ${id} accepted (run ${inv.runId})`);
      },
    });
    if (!submitted.final) return { code: ExitCode.Ok, submitted };
    const outcome = outcomeOf(submitted.final);
    if (opts.nonZeroIsWarning && submitted.final.status === "completed" && outcome.exitCode !== 0) {
      sink.note(`warning: ${outcome.summary}`);
      return { code: ExitCode.Ok, submitted };
    }
    sink.note(outcome.summary);
    return { code: outcome.exitCode, submitted };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

import { exitWhenFlushed } from "../exit";
import { CancelOnSignal } from "../client/cancel-on-signal";
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
 * being cancelled) cancels the remote operation instead of leaving it running,
 * even when it comes before the operation's id is known.
 */
export async function runOperation(
  conn: Connection,
  req: OperationRequest,
  inv: Invocation,
  opts: RunOptions,
): Promise<{ code: number; submitted: Submitted }> {
  const { client, sink } = conn;
  const canceller = new CancelOnSignal(client, {
    note: (text) => sink.note(text),
    exit: (reason) => {
      sink.note(reason);
      // Output still on its way to the CI log's pipe goes out first (exit.ts).
      void exitWhenFlushed(ExitCode.Cancelled);
    },
  });
  canceller.install();
  try {
    const submitted = await submitOperation(client, req, inv, sink, {
      follow: opts.follow,
      onOperation: (id) => {
        if (opts.follow) sink.note(`operation ${id} accepted (run ${inv.runId})`);
        canceller.known(id);
      },
    });
    // Without following, the command returns as soon as the operation is accepted: a cancel asked for meanwhile is sent first.
    await canceller.settled();
    if (!submitted.final) {
      const interrupted = canceller.interruption();
      if (!interrupted) return { code: ExitCode.Ok, submitted };
      // Interrupted (a cancelled CI job): exit as every interrupted command does, never 0, which would pass the CI step.
      sink.note(`operation ${submitted.operationId} ${cancelNote(interrupted.cancel)} (${interrupted.signal}); not following it`);
      return { code: ExitCode.Cancelled, submitted };
    }
    const outcome = outcomeOf(submitted.final);
    if (opts.nonZeroIsWarning && submitted.final.status === "completed" && outcome.exitCode !== 0) {
      sink.note(`warning: ${outcome.summary}`);
      return { code: ExitCode.Ok, submitted };
    }
    sink.note(outcome.summary);
    return { code: outcome.exitCode, submitted };
  } finally {
    canceller.uninstall();
  }
}

/** What became of the cancel an interruption sent, for an operation that is not followed to its end. */
function cancelNote(answer: string | undefined): string {
  if (answer === "cancelled") return "was cancelled";
  if (answer === "running") return "is being cancelled";
  if (answer === "ended") return "had already ended when the cancel arrived";
  return answer ? `had already ended (${answer}) when the cancel arrived` : "was asked to cancel";
}

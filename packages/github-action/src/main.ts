import { ApiClient, ApiError, NetworkError, UsageError, checkApiKey, checkApiUrl, cleartextWarning } from "../../../apps/cli/src/client/api";
import { CancelOnSignal } from "../../../apps/cli/src/client/cancel-on-signal";
import { ExitCode } from "../../../apps/cli/src/client/exit-codes";
import { outcomeOf } from "../../../apps/cli/src/client/outcome";
import { newInvocation, submitOperation } from "../../../apps/cli/src/client/submit";
import { exitWhenFlushed } from "../../../apps/cli/src/exit";
import { envInput, requestFromInputs } from "./request";
import { addMask, endGroup, error, getInput, info, remoteOutput, saveState, setOutput, startGroup, warning } from "./workflow";

/** What the post step needs to log out after a registry-login: its operation (for the registry), server and run. */
function rememberLogin(operationId: string, serverId: string, runId: string): void {
  saveState("login_operation_id", operationId);
  saveState("server_id", serverId);
  saveState("run_id", runId);
  const given = getInput("registry-url");
  if (given) saveState("registry_url", given);
}

/**
 * The Action's main step: runs one operation through the Automation API,
 * streams its output into a log group, sets the outputs, and fails the step
 * unless the operation completed with exit code 0.
 */
async function main(): Promise<number> {
  const apiKey = getInput("api-key");
  // Masks first, before anything else can print a secret.
  addMask(apiKey);
  const env = envInput();
  for (const value of Object.values(env)) addMask(value);

  const url = getInput("url");
  if (!url) throw new UsageError('input "url" is required');
  checkApiUrl(url, 'input "url"');
  if (!apiKey) throw new UsageError('input "api-key" is required');
  checkApiKey(apiKey, 'input "api-key"');
  // An annotation on the run, outside the log group where it would be folded away; the post step, sending
  // the key to the same URL, does not say it again.
  const clear = cleartextWarning(url, 'input "url"');
  if (clear) warning(`runbridge: ${clear}`);
  const inv = newInvocation(getInput("run-id") || undefined);
  const req = requestFromInputs(env);

  // Retry notes go through note(), which keeps lines whole around remote output.
  const client = new ApiClient({ url, apiKey, notify: (m) => note(m), userAgent: "runbridge-github-action/0.1" });
  startGroup(`runbridge ${req.operation}${typeof req.body.command === "string" ? `: ${req.body.command.split("\n")[0]?.slice(0, 80)}` : ""}`);
  const { write, note, resume } = remoteOutput();
  /** Leaves the log group with workflow commands working again; once, whichever way the step ends. */
  let closed = false;
  const closeGroup = () => {
    if (closed) return;
    closed = true;
    resume();
    endGroup();
  };
  // A cancelled workflow run sends SIGINT (then SIGTERM): cancel the remote operation too.
  const canceller = new CancelOnSignal(client, {
    note,
    exit: (reason) => {
      closeGroup();
      error(`runbridge: ${reason}`);
      setOutput("exit-code", String(ExitCode.Cancelled));
      // Once the log has left: process.exit() drops what the pipe has not taken yet, and with the remote output
      // still pouring in that was the error line and the resumed workflow commands.
      void exitWhenFlushed(1);
    },
  });
  canceller.install();
  let submitted;
  try {
    submitted = await submitOperation(client, req, inv, { stdout: write, stderr: write, note }, {
      follow: true,
      onOperation: (id) => {
        note(`operation ${id} (run ${inv.runId})`);
        canceller.known(id);
        // The login exists on the server from now on: whatever happens to this step (following fails,
        // the run is cancelled), the post step must log out, and finds what of by this operation.
        if (req.operation === "registry-login") rememberLogin(id, String(req.body.server_id), inv.runId);
      },
    });
    await canceller.settled();
  } finally {
    canceller.uninstall();
    closeGroup();
  }

  setOutput("operation-id", submitted.operationId);
  if (req.operation === "registry-login") {
    // Known now without asking again: the post step logs out of it even if this step fails afterwards.
    const fromApi = submitted.accepted?.registry_url ?? (submitted.final?.params as { registry_url?: string } | undefined)?.registry_url;
    const registry = getInput("registry-url") || fromApi;
    if (registry) saveState("registry_url", registry);
  }
  const final = submitted.final;
  if (!final) throw new Error("the operation was accepted but its result is unknown");
  const outcome = outcomeOf(final);
  setOutput("status", String(final.status));
  setOutput("exit-code", String(outcome.exitCode));
  setOutput("stdout", final.result?.stdout ?? "");
  if (outcome.exitCode !== 0) {
    error(`runbridge: ${outcome.summary}`);
    return 1;
  }
  info(`runbridge: ${outcome.summary}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ApiError) error(`runbridge: the API refused the request: HTTP ${err.status}: ${err.detail}`);
    else if (err instanceof NetworkError || err instanceof UsageError) error(`runbridge: ${err.message}`);
    else error(`runbridge: ${err instanceof Error ? err.message : String(err)}`);
    setOutput("exit-code", String(err instanceof ApiError || err instanceof NetworkError || err instanceof UsageError ? err.exitCode : ExitCode.Failed));
    process.exitCode = 1;
  },
);

import { ApiClient } from "../../../apps/cli/src/client/api";
import { outcomeOf } from "../../../apps/cli/src/client/outcome";
import { registryLogoutRequest } from "../../../apps/cli/src/client/requests";
import { newInvocation, submitOperation } from "../../../apps/cli/src/client/submit";
import { getOperation } from "../../../apps/cli/src/client/follow";
import { addMask, getInput, getState, info, remoteOutput, warning } from "./workflow";

/**
 * The Action's post step: after a registry-login, runs registry logout on the
 * same server, so no registry credential stays on it after the job. A failed
 * logout is a warning (as the API documents), never a failed job.
 */
async function post(): Promise<void> {
  const serverId = getState("server_id");
  const loginId = getState("login_operation_id");
  if (!serverId) return;
  const apiKey = getInput("api-key");
  addMask(apiKey);
  const url = getInput("url");
  const inv = newInvocation(getState("run_id") || undefined);
  const client = new ApiClient({ url, apiKey, notify: (m) => info(`runbridge: ${m}`), userAgent: "runbridge-github-action/0.1" });
  // The main step may have ended before it learnt the registry (it failed or was cancelled while following): its login operation says.
  const registry = getState("registry_url") || (loginId ? ((await getOperation(client, loginId)).params as { registry_url?: string } | undefined)?.registry_url : undefined);
  if (!registry) return;
  info(`runbridge: logging out of ${registry} on server ${serverId}`);
  // The remote output is docker's, but printed into the log all the same: no workflow command in it may act.
  const output = remoteOutput();
  let submitted;
  try {
    submitted = await submitOperation(client, registryLogoutRequest(serverId, registry), inv, { stdout: output.write, stderr: output.write, note: output.note }, { follow: true });
  } finally {
    output.resume();
  }
  const { final } = submitted;
  if (!final) return;
  const outcome = outcomeOf(final);
  if (outcome.exitCode !== 0) warning(`runbridge: registry logout: ${outcome.summary}`);
  else info(`runbridge: ${outcome.summary}`);
}

post().catch((err: unknown) => warning(`runbridge: registry logout failed: ${err instanceof Error ? err.message : String(err)}`));

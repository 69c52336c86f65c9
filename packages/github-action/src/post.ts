import { ApiClient } from "../../../apps/cli/src/client/api";
import { outcomeOf } from "../../../apps/cli/src/client/outcome";
import { registryLogoutRequest } from "../../../apps/cli/src/client/requests";
import { newInvocation, submitOperation } from "../../../apps/cli/src/client/submit";
import { addMask, getInput, getState, info, warning } from "./workflow";

/**
 * The Action's post step: after a registry-login, runs registry logout on the
 * same server, so no registry credential stays on it after the job. A failed
 * logout is a warning (as the API documents), never a failed job.
 */
async function post(): Promise<void> {
  const registry = getState("registry_url");
  const serverId = getState("server_id");
  if (!registry || !serverId) return;
  const apiKey = getInput("api-key");
  addMask(apiKey);
  const url = getInput("url");
  const inv = newInvocation(getState("run_id") || undefined);
  const client = new ApiClient({ url, apiKey, notify: (m) => info(`runbridge: ${m}`), userAgent: "runbridge-github-action/0.1" });
  info(`runbridge: logging out of ${registry} on server ${serverId}`);
  const { final } = await submitOperation(
    client,
    registryLogoutRequest(serverId, registry),
    inv,
    { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stdout.write(t), note: (t) => info(`runbridge: ${t}`) },
    { follow: true },
  );
  if (!final) return;
  const outcome = outcomeOf(final);
  if (outcome.exitCode !== 0) warning(`runbridge: registry logout: ${outcome.summary}`);
  else info(`runbridge: ${outcome.summary}`);
}

post().catch((err: unknown) => warning(`runbridge: registry logout failed: ${err instanceof Error ? err.message : String(err)}`));

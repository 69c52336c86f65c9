import { actionId, postJson } from "./http";
import type { RebootRequest, RebootOutcome } from "./types";

/** Hetzner Cloud: POST {base}/servers/{id}/actions/reboot (a soft reboot through ACPI). */
export async function rebootHetzner(req: RebootRequest): Promise<RebootOutcome> {
  const url = `${req.baseUrl.replace(/\/+$/, "")}/servers/${encodeURIComponent(req.providerServerId)}/actions/reboot`;
  const reply = await postJson({ url, token: req.token, timeoutMs: req.timeoutMs });
  return { actionId: actionId(reply) };
}

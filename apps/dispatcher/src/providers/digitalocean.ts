import { actionId, postJson } from "./http";
import type { RebootRequest, RebootOutcome } from "./types";

/** DigitalOcean: POST {base}/droplets/{id}/actions with {"type": "reboot"} (a graceful reboot). */
export async function rebootDigitalOcean(req: RebootRequest): Promise<RebootOutcome> {
  const url = `${req.baseUrl.replace(/\/+$/, "")}/droplets/${encodeURIComponent(req.providerServerId)}/actions`;
  const reply = await postJson({ url, token: req.token, body: { type: "reboot" }, timeoutMs: req.timeoutMs });
  return { actionId: actionId(reply) };
}

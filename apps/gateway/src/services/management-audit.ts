import type { Prisma } from "@runbridge/db";
import type { ManagementAuth } from "../auth/locals";

/**
 * A management change's audit event, with who made it: the general API key (`by_api_key_id`) and
 * whether through the API or a dashboard session signed in with that key (`via`), besides the
 * address. Every management event is built here, so none can leave its actor out: with several
 * general keys, or dashboard users behind one proxy, the address alone does not say who widened a
 * key's scope or changed a deploy command.
 */
export function managementEvent(
  auth: ManagementAuth,
  type: string,
  data: Record<string, unknown>,
  refs: { serverId?: string; automationKeyId?: string } = {},
): Prisma.AuditEventUncheckedCreateInput {
  return {
    tenantId: auth.tenantId,
    type,
    ...refs,
    clientIp: auth.clientIp,
    data: { ...data, by_api_key_id: auth.apiKeyId, via: auth.via } as Prisma.InputJsonObject,
  };
}

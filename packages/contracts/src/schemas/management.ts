import Joi from "joi";
import { Limits } from "../limits";
import { OPERATION_TYPES, OperationStatus, type OperationType } from "../operations";
import { type AutomationListOperationsQuery, operationPageKeys } from "./automation-extensions";
import { createdWindowKeys, instant, uuid } from "./common";
import { name } from "./fields";

/** Request bodies and queries of the management API (/api/v1). */

export const createServerSchema = Joi.object<{ name: string }>({ name: name().required() });

export interface AutomationKeyScopes {
  allowed_server_ids?: string[];
  allowed_operations?: OperationType[];
  allowed_credential_ids?: string[];
  ip_allowlist?: string[];
  rate_limit?: number;
  expires_at?: string | null;
}

export interface CreateAutomationKeyRequest extends AutomationKeyScopes {
  name: string;
}

/** An IP or CIDR; checked for real by the gateway with ipaddr.js. */
const ipOrCidr = () => Joi.string().max(64);

const scopeFields = {
  allowed_server_ids: Joi.array().items(uuid()).max(1000).unique(),
  allowed_operations: Joi.array()
    .items(Joi.string().valid(...OPERATION_TYPES))
    .unique(),
  allowed_credential_ids: Joi.array().items(uuid()).max(1000).unique(),
  ip_allowlist: Joi.array().items(ipOrCidr()).max(500),
  rate_limit: Joi.number().integer().min(Limits.rateLimitMin).max(Limits.rateLimitMax),
  // As the list filters read instants: a time zone required (isoDate read one without as the gateway's local
  // time), a day that exists (2030-02-30 became March 2nd), years PostgreSQL can store (year 10000 was a 500).
  expires_at: Joi.alternatives(instant(), null),
};

export const createAutomationKeySchema = Joi.object<CreateAutomationKeyRequest>({
  name: name().required(),
  ...scopeFields,
});

export const updateAutomationKeySchema = Joi.object<Partial<CreateAutomationKeyRequest>>({
  name: name(),
  ...scopeFields,
}).min(1);

/** GET /operations (management): the Automation API list's filters plus the key that started the operation. */
export interface ListOperationsQuery extends AutomationListOperationsQuery {
  automation_key_id?: string;
}

export const listOperationsQuerySchema = Joi.object<ListOperationsQuery>({
  automation_key_id: uuid(),
  run_id: Joi.string().max(Limits.runIdMaxChars),
  server_id: uuid(),
  status: Joi.string().valid(...Object.values(OperationStatus)),
  type: Joi.string().valid(...OPERATION_TYPES),
  ...operationPageKeys,
  ...createdWindowKeys,
}).prefs({ convert: true });

export const createApiKeySchema = Joi.object<{ name: string }>({ name: name().required() });

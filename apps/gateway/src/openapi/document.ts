import { AUTOMATION_BASE } from "../routes/automation/paths";
import type Joi from "joi";
import {
  CLOUD_PROVIDERS,
  IDEMPOTENCY_TTL_HOURS,
  Limits,
  OPERATION_TYPES,
  OperationStatus,
  RUNNER_PROBLEM_MAX_CHARS,
  automationListOperationsQuerySchema,
  cancelOperationRequestSchema,
  createApiKeySchema,
  createApplicationSchema,
  createAutomationKeySchema,
  createRegistryCredentialSchema,
  createServerSchema,
  deployRequestSchema,
  execRequestSchema,
  listOperationsQuerySchema,
  operationLogsQuerySchema,
  rebootRequestSchema,
  registryLoginRequestSchema,
  registryLogoutRequestSchema,
  restartRequestSchema,
  serverProviderLinkSchema,
  updateApplicationSchema,
  updateAutomationKeySchema,
} from "@runbridge/contracts";
import { joiToJsonSchema, joiToQueryParameters, type JsonSchema } from "./joi-schema";

/**
 * The OpenAPI 3.1 document of the Automation API and the management API.
 * Request schemas come from the same Joi contracts the gateway validates with
 * (one source of truth); responses are described here, next to the serializers' shapes.
 */
const AUTOMATION = AUTOMATION_BASE;
const MANAGEMENT = "/api/v1";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ "application/json": { schema } });
const nullable = (type: string, extra: JsonSchema = {}) => ({ type: [type, "null"], ...extra });

const ERRORS: Record<string, string> = {
  "400": "Malformed JSON in the request body",
  "401": "Invalid, revoked or expired API key",
  "403": "Operation or server not in the key's scope; IP not in the allowlist",
  "404": "Server, application, credential or operation not found",
  "409": "Conflict (e.g. the server has no connected runner, the operation already ended)",
  "422": "Validation error: the detail names the field",
  "429": "Rate limit exceeded; see Retry-After",
  "503": "A backing store is unreachable or did not answer in time; retry after Retry-After",
};

function errors(...codes: string[]): Record<string, unknown> {
  return Object.fromEntries(codes.map((c) => [c, { $ref: `#/components/responses/Error${c}` }]));
}

const statusSchema = { type: "string", enum: Object.values(OperationStatus), description: "The spec's statuses plus `cancelled` (extension)." };

/** What an ended operation reports: the sync answer's fields and an operation's `result`. */
const resultProperties = () => ({
  exit_code: nullable("integer"),
  stdout: { type: "string" },
  stderr: { type: "string" },
  duration_ms: nullable("integer"),
  stdout_truncated: { type: "boolean" },
  stderr_truncated: { type: "boolean" },
});

/** Built on the first request for the document, not at start-up: converting every Joi contract costs ~100 ms. */
function componentSchemas(): Record<string, JsonSchema> {
  return {
    Error: { type: "object", required: ["detail"], properties: { detail: { type: "string" } } },
    OperationStatus: statusSchema,
    ExecRequest: joiToJsonSchema(execRequestSchema),
    DeployRequest: joiToJsonSchema(deployRequestSchema),
    RestartRequest: joiToJsonSchema(restartRequestSchema),
    RebootRequest: joiToJsonSchema(rebootRequestSchema),
    RegistryLoginRequest: joiToJsonSchema(registryLoginRequestSchema),
    RegistryLogoutRequest: joiToJsonSchema(registryLogoutRequestSchema),
    CancelRequest: joiToJsonSchema(cancelOperationRequestSchema),
    CreateServerRequest: joiToJsonSchema(createServerSchema),
    CreateAutomationKeyRequest: joiToJsonSchema(createAutomationKeySchema),
    UpdateAutomationKeyRequest: joiToJsonSchema(updateAutomationKeySchema),
    CreateApiKeyRequest: joiToJsonSchema(createApiKeySchema),
    ServerProviderLinkRequest: joiToJsonSchema(serverProviderLinkSchema),
    CreateApplicationRequest: joiToJsonSchema(createApplicationSchema),
    UpdateApplicationRequest: joiToJsonSchema(updateApplicationSchema),
    CreateRegistryCredentialRequest: joiToJsonSchema(createRegistryCredentialSchema),
    Application: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        server_id: { type: "string", format: "uuid" },
        working_directory: { type: "string" },
        deploy_branch: { type: "string" },
        deploy_command: { type: "string" },
        allowed_env_overrides: nullable("array", {
          items: { type: "string" },
          description:
            "Names and PREFIX* patterns a deploy's env_overrides may use, and nothing else. null: any name except the refused list, a deny list that cannot cover every program a deploy command may run (docs/operations-reference.md).",
        }),
        created_at: { type: "string", format: "date-time" },
        updated_at: { type: "string", format: "date-time" },
      },
    },
    RegistryCredential: {
      type: "object",
      description: "The password is never returned.",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        registry_url: { type: "string" },
        registry_type: { type: "string" },
        username: { type: "string" },
        created_at: { type: "string", format: "date-time" },
      },
    },
    OperationResult: {
      type: "object",
      required: ["operation_id", "status"],
      description: "`{operation_id, status: running}` while running; the full result once it ended.",
      properties: {
        operation_id: { type: "string", format: "uuid" },
        status: ref("OperationStatus"),
        ...resultProperties(),
        error: { type: "string", description: "Why it failed, timed out or was cancelled." },
      },
    },
    AcceptedOperation: {
      type: "object",
      required: ["operation_id", "status"],
      properties: {
        operation_id: { type: "string", format: "uuid" },
        status: ref("OperationStatus"),
        deployment_id: { type: "string", format: "uuid", description: "deploy only" },
        registry_url: { type: "string", description: "registry-auth/login only" },
        registry_type: { type: "string", description: "registry-auth/login only" },
      },
    },
    Operation: {
      type: "object",
      required: ["operation_id", "operation_type", "server_id", "status", "result", "run_id", "started_at", "completed_at"],
      properties: {
        operation_id: { type: "string", format: "uuid" },
        operation_type: { type: "string", enum: OPERATION_TYPES },
        server_id: { type: "string", format: "uuid" },
        server_name: nullable("string"),
        status: ref("OperationStatus"),
        result: {
          oneOf: [
            { type: "null" },
            {
              type: "object",
              properties: resultProperties(),
            },
          ],
        },
        error: nullable("string"),
        run_id: nullable("string"),
        run_context: { type: ["object", "null"] },
        command: nullable("string"),
        params: { type: "object" },
        working_directory: nullable("string"),
        timeout_seconds: { type: "integer" },
        env_keys: { type: "array", items: { type: "string" }, description: "Names only: values are never stored." },
        automation_key_id: nullable("string", { format: "uuid" }),
        created_at: { type: "string", format: "date-time" },
        started_at: nullable("string", { format: "date-time" }),
        completed_at: nullable("string", { format: "date-time" }),
      },
    },
    OperationPage: {
      type: "object",
      required: ["data", "next_cursor"],
      properties: { data: { type: "array", items: ref("Operation") }, next_cursor: nullable("string", { description: "Pass as `cursor` for the next page." }) },
    },
    CancelResponse: {
      type: "object",
      required: ["operation_id", "status", "cancel_requested"],
      properties: { operation_id: { type: "string", format: "uuid" }, status: ref("OperationStatus"), cancel_requested: { const: true } },
    },
    Server: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        runner_connected: { type: "boolean" },
        last_seen_at: nullable("string", { format: "date-time" }),
        runner_version: nullable("string", { description: "The version the server's runner reported when it last connected (null: none has, or one too old to say)." }),
        runner_problem: nullable("string", {
          maxLength: RUNNER_PROBLEM_MAX_CHARS,
          description:
            "What keeps the server's runner from taking operations, as it last reported it (its state directory cannot be written: it is connected but refuses every operation until it can). Null when it reports none, or is too old to say. Kept while the runner is not connected: what it said before it went away.",
        }),
        runner_problem_since: nullable("string", { format: "date-time", description: "Since when the runner has reported a problem (null while it reports none)." }),
        provider: nullable("string", { enum: [...CLOUD_PROVIDERS, null], description: "The cloud provider the server is linked to for reboots (null: reboots go through the runner)." }),
        provider_server_id: nullable("string", { description: "The server's id at its cloud provider." }),
        provider_token_set: { type: "boolean", description: "Whether a provider API token is stored (the token itself is never returned)." },
        runner_token: { type: "string", description: "Only in the response to POST /servers: shown once." },
        created_at: { type: "string", format: "date-time" },
      },
    },
    RunnerTokenRotation: {
      type: "object",
      required: ["id", "name", "runner_token"],
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        runner_token: { type: "string", description: "The server's new runner token (rbr_...): shown once." },
      },
    },
    AutomationKey: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        prefix: { type: "string" },
        status: { type: "string", enum: ["active", "revoked", "expired"] },
        allowed_server_ids: { type: "array", items: { type: "string", format: "uuid" } },
        allowed_operations: { type: "array", items: { type: "string", enum: OPERATION_TYPES } },
        allowed_credential_ids: { type: "array", items: { type: "string", format: "uuid" } },
        ip_allowlist: { type: "array", items: { type: "string" } },
        rate_limit: { type: "integer", minimum: Limits.rateLimitMin, maximum: Limits.rateLimitMax },
        expires_at: nullable("string", { format: "date-time" }),
        key: { type: "string", description: "Only in the response to POST /automation-keys: shown once." },
      },
    },
    ApiKey: {
      type: "object",
      description: "A general API key (rbk_...). Only its SHA-256 is stored, and that is never returned.",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string" },
        prefix: { type: "string" },
        status: { type: "string", enum: ["active", "revoked"] },
        created_at: { type: "string", format: "date-time" },
        last_used_at: nullable("string", { format: "date-time" }),
        revoked_at: nullable("string", { format: "date-time" }),
        current: { type: "boolean", description: "Whether this request was made with this key (revoking it ends the caller's access)." },
        key: { type: "string", description: "Only in the response to POST /api-keys: shown once." },
      },
    },
  };
}

const idempotencyHeader = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: `Extension. The same key and body within ${IDEMPOTENCY_TTL_HOURS} h return the original response (header Idempotent-Replayed: true) without running anything again; the same key with a different body is refused with 422.`,
  schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x21-\\x7e]+$" },
};

const operationIdParam = { name: "operation_id", in: "path", required: true, schema: { type: "string", format: "uuid" } };
const idParam = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } };

function automationPost(summary: string, request: string, success: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    post: {
      summary,
      security: [{ automationKey: [] }],
      parameters: [idempotencyHeader],
      requestBody: { required: true, content: json(ref(request)) },
      responses: { ...success, ...errors("400", "401", "403", "404", "409", "422", "429", "503") },
      ...extra,
    },
  };
}

const ok = (description: string, schema: string) => ({ description, content: json(ref(schema)) });

/** `{data: [...]}`; items unspecified (`null`) where the shape is not described here. */
function list(description: string, item: string | null) {
  return { description, content: json({ type: "object", required: ["data"], properties: { data: { type: "array", items: item ? ref(item) : { type: "object" } } } }) };
}

function managementBody(schema: string) {
  return { required: true, content: json(ref(schema)) };
}

function queryParams(schema: Joi.ObjectSchema) {
  return joiToQueryParameters(schema);
}

export function buildOpenApiDocument(): Record<string, unknown> {
  const mgmt = { security: [{ managementKey: [] }] };
  return {
    openapi: "3.1.0",
    info: {
      title: "runbridge Automation API",
      version: "1.0.0",
      description:
        "Run operations on your servers from CI. Extensions beyond the Automation API spec: status `cancelled`, the cancel endpoint, live logs (SSE), listing by run_id, and the Idempotency-Key header (see docs/api-extensions.md). Every error is `{ \"detail\": \"...\" }`.",
    },
    paths: {
      [`${AUTOMATION}/exec`]: automationPost("Execute a shell command", "ExecRequest", {
        "200": ok("The full result if it ended within the wait bound, else `{operation_id, status: running}`", "OperationResult"),
      }),
      [`${AUTOMATION}/deploy`]: automationPost("Trigger a deployment (always asynchronous)", "DeployRequest", { "202": ok("Accepted", "AcceptedOperation") }),
      [`${AUTOMATION}/restart`]: automationPost("Restart a container", "RestartRequest", { "200": ok("Result, or running", "OperationResult") }),
      [`${AUTOMATION}/reboot`]: automationPost("Reboot a server", "RebootRequest", { "202": ok("Accepted", "AcceptedOperation") }),
      [`${AUTOMATION}/registry-auth/login`]: automationPost("Log in to a container registry", "RegistryLoginRequest", { "202": ok("Accepted", "AcceptedOperation") }),
      [`${AUTOMATION}/registry-auth/logout`]: automationPost("Log out of a container registry", "RegistryLogoutRequest", { "200": ok("Result", "OperationResult") }),
      [`${AUTOMATION}/operations`]: {
        get: {
          summary: "List the calling key's operations (extension), e.g. one CI run's with run_id",
          security: [{ automationKey: [] }],
          parameters: queryParams(automationListOperationsQuerySchema),
          responses: { "200": ok("A page, newest first", "OperationPage"), ...errors("401", "403", "422", "429", "503") },
        },
      },
      [`${AUTOMATION}/operations/{operation_id}`]: {
        get: {
          summary: "Poll an operation",
          security: [{ automationKey: [] }],
          parameters: [operationIdParam],
          responses: { "200": ok("The operation", "Operation"), ...errors("401", "403", "404", "429", "503") },
        },
      },
      [`${AUTOMATION}/operations/{operation_id}/cancel`]: {
        post: {
          summary: "Cancel an operation (extension): its whole process group is stopped (TERM, grace, KILL)",
          security: [{ automationKey: [] }],
          parameters: [operationIdParam, idempotencyHeader],
          requestBody: { required: false, content: json(ref("CancelRequest")) },
          responses: {
            "202": ok("Cancel accepted; `status` is `cancelled` once confirmed, `running` while the kill is in flight", "CancelResponse"),
            ...errors("400", "401", "403", "404", "409", "422", "429", "503"),
          },
        },
      },
      [`${AUTOMATION}/operations/{operation_id}/logs`]: {
        get: {
          summary: "Live output as Server-Sent Events (extension)",
          description:
            "Events `stdout`/`stderr` with data `{stream, offset, data}` and `id:` = the log entry id; resume with the Last-Event-ID header (or `last_event_id`). One `cut_off` event `{note, cut_at}` marks where live output stopped at the live log's size limit (the stored result keeps the last 1 MiB of each stream). The stream ends with `event: end` carrying `{operation_id, status, exit_code, duration_ms, error}` and closes. A `: keep-alive` comment is sent every 15 s.",
          security: [{ automationKey: [] }],
          parameters: [
            operationIdParam,
            { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" } },
            ...queryParams(operationLogsQuerySchema),
          ],
          responses: {
            "200": { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } },
            ...errors("401", "403", "404", "422", "429", "503"),
          },
        },
      },
      [`${AUTOMATION}/openapi.json`]: {
        get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1 document", content: json({ type: "object" }) } } },
      },
      [`${MANAGEMENT}/servers`]: {
        post: {
          summary: "Create a server (returns its runner token once)",
          description: "Recorded as a `server.created` audit event (never the token).",
          ...mgmt,
          requestBody: managementBody("CreateServerRequest"),
          responses: { "201": ok("Created", "Server"), ...errors("401", "422") },
        },
        get: { summary: "List servers", ...mgmt, responses: { "200": { description: "Servers", content: json({ type: "object", properties: { data: { type: "array", items: ref("Server") } } }) }, ...errors("401") } },
      },
      [`${MANAGEMENT}/servers/{id}`]: {
        get: { summary: "Get a server", ...mgmt, parameters: [idParam], responses: { "200": ok("The server", "Server"), ...errors("401", "404") } },
        patch: {
          summary: "Link the server to its cloud provider for reboots (provider: null unlinks)",
          ...mgmt,
          parameters: [idParam],
          requestBody: managementBody("ServerProviderLinkRequest"),
          responses: { "200": ok("Updated", "Server"), ...errors("401", "404", "422") },
        },
        delete: {
          summary: "Delete a server with its operations, applications and deployments",
          description:
            "Refused with 409 while any of its operations is running. The audit trail keeps the server's events and records a `server.deleted` event. Its runner is told `runner:token-revoked`, disconnected on every dispatcher, and exits; its token is refused from then on.",
          ...mgmt,
          parameters: [idParam],
          responses: { "204": { description: "Deleted" }, ...errors("401", "404", "409") },
        },
      },
      [`${MANAGEMENT}/servers/{id}/runner-token`]: {
        post: {
          summary: "Rotate the server's runner token (returns the new one once)",
          description:
            "The old token stops working at once: new handshakes with it are refused, and every runner connection made with it is told `runner:token-revoked` and disconnected, on every dispatcher. The runner must be restarted with the new token. Recorded as a `server.runner_token_rotated` audit event.",
          ...mgmt,
          parameters: [idParam],
          responses: { "200": ok("The new token", "RunnerTokenRotation"), ...errors("401", "404", "409") },
        },
      },
      [`${MANAGEMENT}/applications`]: {
        post: {
          summary: "Create an application",
          description: "A `server_id` that is not a server of the caller's tenant is refused with 422.",
          ...mgmt,
          requestBody: managementBody("CreateApplicationRequest"),
          responses: { "201": ok("Created", "Application"), ...errors("401", "422") },
        },
        get: { summary: "List applications", ...mgmt, responses: { "200": list("Applications", "Application"), ...errors("401") } },
      },
      [`${MANAGEMENT}/applications/{id}`]: {
        get: { summary: "Get an application", ...mgmt, parameters: [idParam], responses: { "200": ok("The application", "Application"), ...errors("401", "404") } },
        patch: {
          summary: "Update an application",
          description: "Moving it to another server_id is refused with 409 while any of its deployments is in progress or waiting its turn.",
          ...mgmt,
          parameters: [idParam],
          requestBody: managementBody("UpdateApplicationRequest"),
          responses: { "200": ok("Updated", "Application"), ...errors("401", "404", "409", "422") },
        },
        delete: {
          summary: "Delete an application with its deployments",
          description: "Refused with 409 while any of its deployments is running or waiting its turn.",
          ...mgmt,
          parameters: [idParam],
          responses: { "204": { description: "Deleted" }, ...errors("401", "404", "409") },
        },
      },
      [`${MANAGEMENT}/applications/{id}/deployments`]: {
        get: { summary: "An application's latest deployments", ...mgmt, parameters: [idParam], responses: { "200": list("Deployments", null), ...errors("401", "404") } },
      },
      [`${MANAGEMENT}/registry-credentials`]: {
        post: {
          summary: "Store a registry credential (the password is sealed at rest, never returned)",
          ...mgmt,
          requestBody: managementBody("CreateRegistryCredentialRequest"),
          responses: { "201": ok("Created", "RegistryCredential"), ...errors("401", "422") },
        },
        get: { summary: "List registry credentials", ...mgmt, responses: { "200": list("Credentials", "RegistryCredential"), ...errors("401") } },
      },
      [`${MANAGEMENT}/registry-credentials/{id}`]: {
        get: { summary: "Get a registry credential", ...mgmt, parameters: [idParam], responses: { "200": ok("The credential", "RegistryCredential"), ...errors("401", "404") } },
        delete: { summary: "Delete a registry credential", ...mgmt, parameters: [idParam], responses: { "204": { description: "Deleted" }, ...errors("401", "404") } },
      },
      [`${MANAGEMENT}/audit-events`]: {
        get: {
          summary: "The tenant's audit trail, newest first",
          description: "Filters: automation_key_id, run_id, type (e.g. operation.created, operation.cancel_requested, rate_limited), operation_id, server_id, and the window [created_from, created_before) (ISO 8601 date-times with a time zone, or dates: midnight UTC); paginated with cursor and limit (1-200).",
          ...mgmt,
          responses: { "200": list("Audit events", null), ...errors("401", "422") },
        },
      },
      [`${MANAGEMENT}/automation-keys`]: {
        post: {
          summary: "Create an automation key (returns it once)",
          ...mgmt,
          requestBody: managementBody("CreateAutomationKeyRequest"),
          responses: { "201": ok("Created", "AutomationKey"), ...errors("401", "422") },
        },
        get: { summary: "List automation keys", ...mgmt, responses: { "200": { description: "Keys", content: json({ type: "object", properties: { data: { type: "array", items: ref("AutomationKey") } } }) }, ...errors("401") } },
      },
      [`${MANAGEMENT}/automation-keys/{id}`]: {
        get: { summary: "Get an automation key", ...mgmt, parameters: [idParam], responses: { "200": ok("The key", "AutomationKey"), ...errors("401", "404") } },
        patch: {
          summary: "Update an automation key's name or scopes",
          description: "A revoked key cannot be changed: refused with 409.",
          ...mgmt,
          parameters: [idParam],
          requestBody: managementBody("UpdateAutomationKeyRequest"),
          responses: { "200": ok("Updated", "AutomationKey"), ...errors("401", "404", "409", "422") },
        },
        delete: {
          summary: "Revoke an automation key",
          description: "Idempotent: revoking a revoked key answers with it as it is, keeping the first `revoked_at`, and records no second `key.revoked` audit event.",
          ...mgmt,
          parameters: [idParam],
          responses: { "200": ok("Revoked", "AutomationKey"), ...errors("401", "404") },
        },
      },
      [`${MANAGEMENT}/api-keys`]: {
        post: {
          summary: "Create a general API key (returns it once)",
          description: "Recorded as an `api_key.created` audit event (never the key).",
          ...mgmt,
          requestBody: managementBody("CreateApiKeyRequest"),
          responses: { "201": ok("Created", "ApiKey"), ...errors("401", "422") },
        },
        get: { summary: "List general API keys, newest first", ...mgmt, responses: { "200": list("Keys", "ApiKey"), ...errors("401") } },
      },
      [`${MANAGEMENT}/api-keys/{id}`]: {
        delete: {
          summary: "Revoke a general API key",
          description:
            "It is refused from then on, in the dashboard sessions signed in with it too. Idempotent: revoking a revoked key answers with it as it is, keeping the first `revoked_at`, and records no second `api_key.revoked` audit event.",
          ...mgmt,
          parameters: [idParam],
          responses: { "200": ok("Revoked", "ApiKey"), ...errors("401", "404") },
        },
      },
      [`${MANAGEMENT}/operations`]: {
        get: {
          summary: "List the tenant's operations",
          ...mgmt,
          parameters: queryParams(listOperationsQuerySchema),
          responses: { "200": ok("A page, newest first", "OperationPage"), ...errors("401", "422") },
        },
      },
    },
    components: {
      securitySchemes: {
        automationKey: { type: "http", scheme: "bearer", description: "Automation API key (rca_...)" },
        managementKey: { type: "http", scheme: "bearer", description: "General API key (rbk_...)" },
      },
      schemas: componentSchemas(),
      responses: Object.fromEntries(Object.entries(ERRORS).map(([code, description]) => [`Error${code}`, { description, content: json(ref("Error")) }])),
    },
  };
}

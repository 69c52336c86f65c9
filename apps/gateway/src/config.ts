import Joi from "joi";
import { commonEnv, compilableTrustProxy, loadConfigOrExit } from "@runbridge/common";
import { Limits } from "@runbridge/contracts";

export const gatewayEnvSchema = Joi.object({
  ...commonEnv,
  PORT: Joi.number().port().default(8080).description("HTTP port of the gateway"),
  HOST: Joi.string().default("0.0.0.0").description("Address the gateway listens on"),
  TRUST_PROXY: Joi.string()
    .allow("")
    .default("")
    .custom(compilableTrustProxy)
    .description("Express trust proxy: a hop count (e.g. 1) or comma-separated proxy addresses/subnets; empty = use the socket address"),
  EXEC_MAX_WAIT_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(900)
    .default(55)
    .description("Longest a synchronous request (exec, restart, logout) is held open before answering status running"),
  RUNNER_DELIVERY_TIMEOUT_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(Limits.deliveryTimeoutMaxSeconds)
    .default(30)
    .description("How long an accepted operation may wait for its runner before it fails as runner offline"),
  HTTP_HEADERS_TIMEOUT_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(600)
    .default(20)
    .description("A request whose headers have not all arrived this long after the connection opened (the first request) or after its first byte (later ones on a kept-alive connection) is answered 408 and its connection closed"),
  HTTP_REQUEST_TIMEOUT_SECONDS: Joi.number()
    .integer()
    .min(Joi.ref("HTTP_HEADERS_TIMEOUT_SECONDS"))
    .max(3600)
    .default(60)
    .description(
      "A request (headers and body) not wholly received this long after it began (as for HTTP_HEADERS_TIMEOUT_SECONDS) is answered 408 and its connection closed; the time the gateway then holds the request (EXEC_MAX_WAIT_SECONDS) does not count",
    ),
  DB_POOL_SIZE: Joi.number().integer().min(1).max(200).default(10).description("PostgreSQL connections per gateway process"),
  LOGS_MAX_STREAMS_PER_KEY: Joi.number()
    .integer()
    .min(1)
    .max(10_000)
    .default(20)
    .description("Live log streams (GET /operations/{id}/logs) one automation key may hold open at once on each gateway process; more are refused with 429"),
  LOGS_MAX_STREAMS: Joi.number()
    .integer()
    .min(1)
    .max(100_000)
    .default(1000)
    .description(
      "Live log streams each gateway process holds open at once, for all keys together (each holds a Redis connection); more are refused with 503 and Retry-After",
    ),
  LOGS_CLIENT_STALL_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(3600)
    .default(30)
    .description("A live log stream whose client has not read enough for what waits to be sent to go out within this long is closed, freeing its slot and Redis connection"),
  OPERATION_COUNT_REFRESH_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(86_400)
    .default(300)
    .description(
      "How often each gateway process recounts an automation key's older operations for operation_count (newer ones are counted on every call); operations deleted by retention or with their server leave the count within this time",
    ),
  OPERATION_LIST_OUTPUT_MAX_BYTES: Joi.number()
    .integer()
    .min(1024)
    // Above this, a page of output that is all control bytes (6 bytes each in JSON) nears V8's 512 MiB string limit.
    .max(64 * 1024 * 1024)
    .default(16 * 1024 * 1024)
    .description(
      "Stored stdout and stderr bytes one page of GET /operations (Automation and management API) may carry: a page ends before the operation that would pass it (its first operation is always included), and next_cursor continues from there",
    ),
  UNKNOWN_KEY_LOOKUPS_PER_MINUTE: Joi.number()
    .integer()
    .min(1)
    .max(1_000_000)
    .default(120)
    .description(
      "Database lookups of tokens that name no automation key, per client address and minute, on each gateway process; past it, tokens not seen recently get 429 without a lookup (warm keys are never affected)",
    ),
});

export interface GatewayConfig {
  DATABASE_URL: string;
  REDIS_URL: string;
  REDIS_PREFIX: string;
  LOG_LEVEL: string;
  RUNBRIDGE_ENCRYPTION_KEY: string;
  RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: string;
  PORT: number;
  HOST: string;
  TRUST_PROXY: string;
  EXEC_MAX_WAIT_SECONDS: number;
  RUNNER_DELIVERY_TIMEOUT_SECONDS: number;
  HTTP_HEADERS_TIMEOUT_SECONDS: number;
  HTTP_REQUEST_TIMEOUT_SECONDS: number;
  DB_POOL_SIZE: number;
  LOGS_MAX_STREAMS_PER_KEY: number;
  LOGS_MAX_STREAMS: number;
  LOGS_CLIENT_STALL_SECONDS: number;
  OPERATION_COUNT_REFRESH_SECONDS: number;
  OPERATION_LIST_OUTPUT_MAX_BYTES: number;
  UNKNOWN_KEY_LOOKUPS_PER_MINUTE: number;
}

export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return loadConfigOrExit<GatewayConfig>("gateway", gatewayEnvSchema, env);
}

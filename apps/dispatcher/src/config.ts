import { hostname } from "node:os";
import Joi from "joi";
import { commonEnv, compilableTrustProxy, keyPairProblem, loadConfigOrExit, pemFile } from "@runbridge/common";
import { Limits } from "@runbridge/contracts";

/**
 * A TLS file is only read when the listener is created, after the database and
 * Redis are reached; checked here, a missing partner, an unreadable file, one
 * that is not the PEM it should be, or a key that does not match the
 * certificate is listed with the other bad variables. Empty values skip custom() (allow("")),
 * so each side checks that its partner is set.
 */
function tlsFile(kind: "certificate" | "private key", partner: string): Joi.CustomValidator<string> {
  const pem = pemFile(kind);
  return (file, h) => {
    const parent = h.state.ancestors[0] as Record<string, unknown>;
    if (!parent[partner]) {
      return h.message(
        { custom: "{#label} is set but {#partner} is not: set both (the dispatcher serves TLS) or neither (behind a TLS-terminating proxy)" },
        { partner },
      );
    }
    const checked = pem(file, h);
    if (typeof checked !== "string" || kind === "certificate") return checked;
    const mismatch = keyPairProblem(String(parent[partner]), file);
    return mismatch ? h.message({ custom: "{#label} {#mismatch} in {#partner}" }, { mismatch, partner }) : file;
  };
}

export const dispatcherEnvSchema = Joi.object({
  ...commonEnv,
  DISPATCHER_PORT: Joi.number().port().default(8081).description("Port runners connect to (socket.io, path /runner)"),
  DISPATCHER_HOST: Joi.string().default("0.0.0.0").description("Address the dispatcher listens on"),
  DISPATCHER_TLS_CERT_FILE: Joi.string()
    .allow("")
    .default("")
    .custom(tlsFile("certificate", "DISPATCHER_TLS_KEY_FILE"))
    .description("PEM certificate chain: when set (with DISPATCHER_TLS_KEY_FILE) the dispatcher serves TLS itself and runners connect with https:// or wss://"),
  DISPATCHER_TLS_KEY_FILE: Joi.string().allow("").default("").custom(tlsFile("private key", "DISPATCHER_TLS_CERT_FILE")).description("PEM private key of DISPATCHER_TLS_CERT_FILE"),
  DISPATCHER_ID: Joi.string()
    .max(100)
    .default(`${hostname()}-${process.pid}`)
    .description("Name of this dispatcher in logs and presence records"),
  WORKER_CONCURRENCY: Joi.number().integer().min(1).max(1000).default(50).description("Deliveries in flight per dispatcher"),
  RUNNER_ACK_TIMEOUT_MS: Joi.number().integer().min(100).max(60000).default(5000).description("How long a runner has to acknowledge an operation"),
  RESULT_GRACE_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(3600)
    .default(60)
    .description("After an operation's timeout, how long to wait for its result before asking the runner's ledger or failing it"),
  RUNNER_LOST_GRACE_SECONDS: Joi.number()
    .integer()
    .min(0)
    .max(3600)
    .default(30)
    .description(
      "How long a runner must have been away (by PostgreSQL's clock, since its connection closed) before its overdue operations are failed as runner lost; one reconnecting within it delivers their results. 0: at once",
    ),
  SWEEP_INTERVAL_MS: Joi.number().integer().min(100).max(600000).default(5000).description("How often stuck operations are looked for"),
  JOB_LOCK_MS: Joi.number()
    .integer()
    .min(1000)
    .max(600000)
    .default(30000)
    .description("BullMQ job lock; a crashed dispatcher's deliveries are taken over by another within about 1.5 times this"),
  REQUEUE_AFTER_SECONDS: Joi.number()
    .integer()
    .min(Limits.requeueAfterMinSeconds)
    .max(3600)
    .default(10)
    .description("An undelivered operation whose job is missing from the queue (Redis lost or flushed) is re-enqueued after this age"),
  TRUST_PROXY: Joi.string()
    .allow("")
    .default("")
    .custom(compilableTrustProxy)
    .description(
      "Proxies in front of the dispatcher, for a runner's client address (RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE and RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS count per address): a hop count (e.g. 1) or comma-separated proxy addresses/subnets; empty = use the socket address",
    ),
  RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE: Joi.number()
    .integer()
    .min(1)
    .max(1_000_000)
    .default(120)
    .description(
      "Database lookups of runner tokens that name no server, per client address and minute, on each dispatcher process; past it, handshakes with tokens this dispatcher has not accepted before are refused without a lookup until the minute ends (the runner retries)",
    ),
  RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS: Joi.number()
    .integer()
    .min(1)
    .max(1_000_000)
    .default(256)
    .description(
      "Runner connections whose token has not (yet) been accepted, per client address (per /64 for IPv6), on each dispatcher process; one more closes the address's oldest that is not having its token checked (the runner retries with backoff)",
    ),
  RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX: Joi.number()
    .integer()
    .min(1)
    .max(1_000_000)
    .default(4096)
    .description(
      "Runner connections whose token has not (yet) been accepted, from all addresses together, on each dispatcher process; one more closes the oldest that is not having its token checked, or the oldest of all when every one is (the runner retries with backoff)",
    ),
  RUNNER_HANDSHAKE_TIMEOUT_MS: Joi.number()
    .integer()
    .min(1000)
    .max(60000)
    .default(10000)
    .description("How long a runner connection may stay open before its token is accepted; then it is closed (the runner reconnects)"),
  DB_POOL_SIZE: Joi.number().integer().min(1).max(200).default(10).description("PostgreSQL connections per dispatcher process"),
  HCLOUD_API_URL: Joi.string()
    .uri({ scheme: ["http", "https"] })
    .default("https://api.hetzner.cloud/v1")
    .description("Base URL of the Hetzner Cloud API, used to reboot servers linked to Hetzner"),
  DIGITALOCEAN_API_URL: Joi.string()
    .uri({ scheme: ["http", "https"] })
    .default("https://api.digitalocean.com/v2")
    .description("Base URL of the DigitalOcean API, used to reboot droplets linked to DigitalOcean"),
  PROVIDER_API_TIMEOUT_MS: Joi.number()
    .integer()
    .min(100)
    .max(120000)
    .default(10000)
    .description("How long a cloud provider API call may take; unanswered, the reboot fails with its outcome unknown (never retried through the runner: the provider may have rebooted it)"),
  DEPLOY_TURN_GRACE_SECONDS: Joi.number()
    .integer()
    .min(5)
    .max(3600)
    .default(30)
    .description("How long a deploy that waited its turn behind another deploy of its application may then wait for its runner"),
  RUNNER_BUSY_WAIT_MAX_SECONDS: Joi.number()
    .integer()
    .min(0)
    .max(86400)
    .default(3600)
    .description(
      "How long after its acceptance an operation may wait for a place on a runner that refuses it for now because it runs as many operations as RUNBRIDGE_MAX_CONCURRENT_OPERATIONS allows: its delivery deadline moves forward while it waits, up to this; then it fails as not started (runner_deferred). 0: not at all, it fails at its delivery deadline",
    ),
  RUNNER_TOKEN_RECHECK_SECONDS: Joi.number()
    .integer()
    .min(1)
    .max(3600)
    .default(60)
    .description("How often the runner connections held here are checked against their servers' current tokens, should a rotation's announcement have been lost"),
  OPERATION_RETENTION_DAYS: Joi.number()
    .integer()
    .min(0)
    .max(36500)
    .default(90)
    .description("Ended operations (with their output) older than this many days are deleted, except each application's latest deployment; 0 keeps them forever"),
  AUDIT_RETENTION_DAYS: Joi.number().integer().min(0).max(36500).default(365).description("Audit events older than this many days are deleted; 0 keeps them forever"),
});

export interface DispatcherConfig {
  DATABASE_URL: string;
  REDIS_URL: string;
  REDIS_PREFIX: string;
  LOG_LEVEL: string;
  RUNBRIDGE_ENCRYPTION_KEY: string;
  RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: string;
  DISPATCHER_PORT: number;
  DISPATCHER_HOST: string;
  DISPATCHER_TLS_CERT_FILE: string;
  DISPATCHER_TLS_KEY_FILE: string;
  DISPATCHER_ID: string;
  WORKER_CONCURRENCY: number;
  RUNNER_ACK_TIMEOUT_MS: number;
  RESULT_GRACE_SECONDS: number;
  RUNNER_LOST_GRACE_SECONDS: number;
  SWEEP_INTERVAL_MS: number;
  JOB_LOCK_MS: number;
  REQUEUE_AFTER_SECONDS: number;
  TRUST_PROXY: string;
  RUNNER_UNKNOWN_TOKEN_LOOKUPS_PER_MINUTE: number;
  RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS: number;
  RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX: number;
  RUNNER_HANDSHAKE_TIMEOUT_MS: number;
  DB_POOL_SIZE: number;
  HCLOUD_API_URL: string;
  DIGITALOCEAN_API_URL: string;
  PROVIDER_API_TIMEOUT_MS: number;
  DEPLOY_TURN_GRACE_SECONDS: number;
  RUNNER_BUSY_WAIT_MAX_SECONDS: number;
  RUNNER_TOKEN_RECHECK_SECONDS: number;
  OPERATION_RETENTION_DAYS: number;
  AUDIT_RETENTION_DAYS: number;
}

export function loadDispatcherConfig(env: NodeJS.ProcessEnv = process.env): DispatcherConfig {
  return loadConfigOrExit<DispatcherConfig>("dispatcher", dispatcherEnvSchema, env);
}

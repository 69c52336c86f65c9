import Joi from "joi";
import { previousKeyList } from "./sealing";

export class ConfigError extends Error {
  constructor(
    readonly service: string,
    readonly problems: string[],
  ) {
    super(`${service}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/**
 * Validates the whole environment against one schema and reports every bad
 * variable at once, so an operator fixes them in one go. Throws ConfigError;
 * `loadConfigOrExit` is the boot-time wrapper.
 */
export function parseConfig<T>(service: string, schema: Joi.ObjectSchema<T>, env: NodeJS.ProcessEnv): T {
  const { value, error } = schema.validate(env, {
    abortEarly: false,
    allowUnknown: true,
    stripUnknown: true,
    convert: true,
    errors: { wrap: { label: false } },
  });
  if (error) throw new ConfigError(service, error.details.map((d) => d.message));
  return value;
}

export function loadConfigOrExit<T>(service: string, schema: Joi.ObjectSchema<T>, env: NodeJS.ProcessEnv = process.env): T {
  try {
    return parseConfig(service, schema, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

/** An AES-256-GCM key as the sealer takes it: 32 bytes, base64-encoded. */
function encryptionKey(): Joi.StringSchema {
  return Joi.string()
    .base64()
    .custom((v: string, h) => (Buffer.from(v, "base64").length === 32 ? v : h.error("any.invalid")));
}

/**
 * Every retired key must be one the sealer can load: it throws on a bad one
 * when it is built, after the database and Redis are reached. Entries are
 * named by position, never by value: they are secrets even when malformed.
 */
function retiredKeys(raw: string, h: Joi.CustomHelpers): string | Joi.ErrorReport {
  const keys = previousKeyList(raw);
  const bad = keys.map((k, i) => (encryptionKey().validate(k).error ? i + 1 : 0)).filter((n) => n > 0);
  if (bad.length === 0) return raw;
  return h.message(
    { custom: "{#label}: {#which}; each key must be 32 bytes, base64-encoded (openssl rand -base64 32), separated by commas" },
    { which: bad.length === 1 ? `entry ${bad[0]} of ${keys.length} is not a key` : `entries ${bad.join(", ")} of ${keys.length} are not keys` },
  );
}

/** Shared variable definitions, so every app spells and checks them the same way. */
export const commonEnv = {
  DATABASE_URL: Joi.string()
    .uri({ scheme: ["postgres", "postgresql"] })
    .required()
    .description("PostgreSQL connection URL"),
  REDIS_URL: Joi.string()
    .uri({ scheme: ["redis", "rediss"] })
    .default("redis://127.0.0.1:6379")
    .description("Redis connection URL (BullMQ queue, presence, pub/sub, rate limits)"),
  REDIS_PREFIX: Joi.string()
    .pattern(/^[A-Za-z0-9_.-]+$/)
    .default("rb")
    .description("Prefix of every Redis key, so deployments can share a Redis"),
  LOG_LEVEL: Joi.string().valid("error", "warn", "info", "http", "verbose", "debug", "silly").default("info"),
  RUNBRIDGE_ENCRYPTION_KEY: encryptionKey()
    .required()
    .messages({ "any.invalid": "RUNBRIDGE_ENCRYPTION_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)" })
    .description("Active AES-256-GCM key for secrets at rest and in the queue (32 bytes, base64)"),
  RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: Joi.string()
    .allow("")
    .default("")
    .custom(retiredKeys)
    .description("Comma-separated retired keys, still accepted for decryption during rotation"),
};

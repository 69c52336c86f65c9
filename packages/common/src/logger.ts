import { AsyncLocalStorage } from "node:async_hooks";
import winston from "winston";

export type Logger = winston.Logger;

/**
 * Structured JSON logs on stdout. Fields that could carry secrets are dropped
 * by name before any transport sees them, as a last line of defence: callers
 * must not log env values or passwords in the first place.
 */
const SECRET_FIELDS = new Set(["env", "env_overrides", "password", "stdin", "token", "authorization", "sealed", "secrets"]);

const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_FIELDS.has(key.toLowerCase())) info[key] = "[redacted]";
  }
  return info;
});

/**
 * Ids of the unit of work in progress (a request, an operation's delivery),
 * added to every line logged inside it, so callers deep in a call chain need
 * not thread them through by hand.
 */
export type LogContext = { requestId?: string; operationId?: string };
const logContext = new AsyncLocalStorage<LogContext>();

export function withLogContext<T>(fields: LogContext, fn: () => T): T {
  return logContext.run({ ...logContext.getStore(), ...fields }, fn);
}

/**
 * winston copies defaultMeta into each entry synchronously, in the caller's
 * async context (formats may run later, under backpressure), so the ids are
 * read there through enumerable getters. An explicit field on the call wins.
 */
function metaWithContext(service: string): Record<string, unknown> {
  const meta: Record<string, unknown> = { service };
  for (const key of ["requestId", "operationId"] as const) {
    Object.defineProperty(meta, key, { enumerable: true, get: () => logContext.getStore()?.[key] });
  }
  return meta;
}

export function createLogger(service: string, level = "info"): Logger {
  return winston.createLogger({
    level,
    defaultMeta: metaWithContext(service),
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ["error", "warn"] })],
  });
}

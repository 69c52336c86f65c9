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
  const logger = winston.createLogger({
    level,
    defaultMeta: metaWithContext(service),
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ["error", "warn"] })],
  });
  // winston formats every entry (timestamp, JSON) before its transport drops
  // those below the level: on the request path that is an access line and a
  // few debug lines per operation, for nothing. Disabled levels return at once.
  type LevelMethod = (this: Logger, ...args: unknown[]) => Logger;
  const methods = logger as unknown as Record<string, LevelMethod>;
  for (const name of Object.keys(winston.config.npm.levels)) {
    const write = methods[name];
    // `this`, not `logger`: child loggers inherit these methods and must keep their own metadata.
    if (write)
      methods[name] = function (this: Logger, ...args: unknown[]) {
        return this.isLevelEnabled(name) ? write.apply(this, args) : this;
      };
  }
  return logger;
}

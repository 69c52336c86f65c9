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

export function createLogger(service: string, level = "info"): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { service },
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ["error", "warn"] })],
  });
}

import Joi from "joi";
import { Limits } from "../limits";
import { NO_NUL } from "./fields";

/** Options every API body is validated with: no type coercion, unknown fields refused. */
export const VALIDATION_OPTIONS: Joi.ValidationOptions = {
  abortEarly: true,
  convert: false,
  allowUnknown: false,
  errors: { wrap: { label: '"' } },
};

const CANONICAL_UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

/**
 * A UUID in any form joi accepts (upper case, in braces), given on as
 * PostgreSQL prints it: lower case, bare. PostgreSQL finds `3F1C…` as well
 * as `3f1c…`, but ids are also compared as text — Redis keys (is the
 * server's runner connected), a key's allowed_server_ids — where the two
 * differ.
 */
export const uuid = () =>
  Joi.string()
    .guid({ version: ["uuidv1", "uuidv4", "uuidv5", "uuidv7"], separator: "-" })
    .custom((value: string) => CANONICAL_UUID.exec(value.toLowerCase())?.[0] ?? value);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The path of the first `__proto__` key in a parsed JSON body, or null. JSON.parse makes it an
 * ordinary key, but joi copies objects by assignment, which drops it without a word: an env
 * variable of that name (a valid POSIX name) would be left out of the command. Refused instead.
 */
export function reservedKeyPath(body: unknown): string | null {
  const stack: Array<[unknown, string]> = [[body, ""]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [value, path] = item;
    if (value === null || typeof value !== "object") continue;
    if (!Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, "__proto__")) return path ? `${path}.__proto__` : "__proto__";
    for (const [k, v] of Object.entries(value)) if (v !== null && typeof v === "object") stack.push([v, path ? `${path}.${k}` : k]);
  }
  return null;
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/**
 * Env for a command: ≤ 200 keys, ≤ 64 KiB of keys plus values (UTF-8 bytes),
 * POSIX names, string values without NUL (which no process environment can hold).
 */
export const envSchema = (label: string) =>
  Joi.object()
    .pattern(
      Joi.string().pattern(ENV_NAME).message(`"${label}" key {{#value}} is not a valid environment variable name`),
      Joi.string()
        .allow("")
        .pattern(NO_NUL)
        .message(`"${label}" values cannot contain NUL bytes`),
    )
    .max(Limits.envMaxKeys)
    .custom((value: Record<string, string>, helpers) => {
      let total = 0;
      for (const [k, v] of Object.entries(value)) total += utf8Bytes(k) + utf8Bytes(v);
      if (total > Limits.envMaxBytes) return helpers.error("env.bytes", { total });
      return value;
    })
    .messages({
      "object.max": `"${label}" has more than ${Limits.envMaxKeys} keys`,
      "env.bytes": `"${label}" is {{#total}} bytes; the limit is ${Limits.envMaxBytes} bytes of keys and values`,
      // A key that fails the name pattern surfaces as "unknown".
      "object.unknown": "{{#label}} is not a valid environment variable name (letters, digits and _, not starting with a digit)",
    })
    .label(label);

export const timeoutSchema = () =>
  Joi.number()
    .integer()
    .min(Limits.timeoutMinSeconds)
    .max(Limits.timeoutMaxSeconds)
    .default(Limits.timeoutDefaultSeconds);

/**
 * A CI run's id. CI systems number their runs, and a template that writes
 * `"run_id": ${{ github.run_id }}` unquoted sends a JSON number: taken, and
 * kept as its decimal string, so it groups with the same run sent quoted.
 */
export const runIdSchema = () =>
  Joi.alternatives<string>().try(
    Joi.string().min(1).max(Limits.runIdMaxChars),
    Joi.number()
      .integer()
      .min(0)
      .max(Number.MAX_SAFE_INTEGER)
      .custom((n: number) => String(n)),
  );

/**
 * CI metadata: the known fields are strings — or empty or null, as CI
 * systems fill them (GitHub's head_ref is "" on a push); other fields are kept,
 * bounded in size.
 */
const contextText = (max: number) => Joi.string().max(max).allow("", null);
export const runContextSchema = () =>
  Joi.object({
    provider: contextText(100),
    repository: contextText(500),
    workflow: contextText(500),
    trigger: contextText(100),
    actor: contextText(200),
    sha: contextText(100),
    ref: contextText(500),
  })
    .pattern(Joi.string().max(100), Joi.alternatives(Joi.string().max(2000), Joi.number(), Joi.boolean(), null))
    .custom((value: unknown, helpers) => {
      if (utf8Bytes(JSON.stringify(value)) > Limits.runContextMaxBytes) return helpers.error("runContext.bytes");
      return value;
    })
    .messages({ "runContext.bytes": `"run_context" is larger than ${Limits.runContextMaxBytes} bytes` });

/**
 * A date-time with its time zone (a time without one would be read in the server's zone), or a date
 * alone. Fractions to the millisecond, as records are stamped: a finer one would be cut to it, and move
 * the window's edge.
 */
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,3})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))?$/;

/**
 * An instant in a query, as ISO 8601: `2026-11-01T12:00:00Z`,
 * `2026-11-01T14:00:00+02:00`, or `2026-11-01` (its midnight UTC). Given on
 * as the canonical `toISOString()` form. A day that does not exist
 * (2026-02-30) is refused rather than rolled over into March, as `Date` would.
 */
export const instant = () =>
  Joi.string()
    .pattern(INSTANT)
    .message("{{#label}} must be an ISO 8601 date-time with a time zone, like 2026-11-01T00:00:00Z, or a date like 2026-11-01 (midnight UTC)")
    .custom((value: string, helpers) => {
      const [, y, m, d] = INSTANT.exec(value) ?? [];
      // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
      const day = new Date(0);
      day.setUTCFullYear(Number(y), Number(m) - 1, Number(d));
      if (day.getUTCFullYear() !== Number(y) || day.getUTCMonth() !== Number(m) - 1 || day.getUTCDate() !== Number(d)) return helpers.message({ custom: `{{#label}} names a day that does not exist (${value})` });
      return new Date(value).toISOString();
    });

/**
 * `created_from` (inclusive) and `created_before` (exclusive) of a list: the
 * window [from, before), so that consecutive windows (one per day, say) take
 * every record exactly once.
 */
export interface CreatedWindowQuery {
  created_from?: string;
  created_before?: string;
}

export const createdWindowKeys = {
  created_from: instant().description("Only records created at or after this instant (ISO 8601 with a time zone, or a date: its midnight UTC)"),
  created_before: instant().description("Only records created before this instant (exclusive: windows one after the other take each record once)"),
};

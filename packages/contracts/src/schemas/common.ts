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
  return findInJson(body, (key, _value, path) => (key === "__proto__" ? path : null));
}

/** Half of a UTF-16 surrogate pair, alone: JSON can spell it (\ud800), UTF-8 and PostgreSQL cannot hold it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * What in a validated body PostgreSQL cannot store, as a 422 detail, or null: a NUL character (text and
 * jsonb refuse it) or a lone surrogate, in any string or key. Fields whose schema refuses these already
 * say so in their own words; this catches every other (names, run_context, filters), which gave a 500.
 */
export function unstorableText(body: unknown): string | null {
  const why = (s: string) => (s.includes("\0") ? "cannot contain NUL characters" : LONE_SURROGATE.test(s) ? "is not valid Unicode (it holds half of a surrogate pair)" : null);
  return findInJson(body, (key, value, path) => {
    const problem = (key !== null && why(key)) || (typeof value === "string" && why(value));
    // The path itself may hold what is refused: shown escaped, so the detail is clean text.
    return problem ? `"${(path || "body").replace(/\0/g, "\\0").replace(new RegExp(LONE_SURROGATE.source, "g"), "\uFFFD")}" ${problem}` : null;
  });
}

/** Walks a parsed JSON value depth first; the first non-null answer of `visit` (given each key, value and path) is returned. */
function findInJson(root: unknown, visit: (key: string | null, value: unknown, path: string) => string | null): string | null {
  const stack: Array<[string | null, unknown, string]> = [[null, root, ""]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [key, value, path] = item;
    const found = visit(key, value, path);
    if (found !== null) return found;
    if (value === null || typeof value !== "object") continue;
    for (const [k, v] of Object.entries(value)) stack.push([Array.isArray(value) ? null : k, v, path ? `${path}.${k}` : k]);
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
      const at = new Date(value);
      if (!storableInstant(at)) return helpers.message({ custom: `{{#label}} must be within the years 0001 to 9999 (UTC), got ${value}` });
      return at.toISOString();
    });

/** Years 0001-9999 in UTC: what PostgreSQL's timestamptz and Prisma's DateTime both take (beyond, a query or write failed with a 500). */
export function storableInstant(at: Date): boolean {
  return Number.isFinite(at.getTime()) && at.getUTCFullYear() >= 1 && at.getUTCFullYear() <= 9999;
}

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

import Joi from "joi";
import { Limits } from "../limits";

/** Field helpers the schema files share (internal: not re-exported by the package). */

/** A display name: trimmed, 1 to Limits.nameMaxChars characters. */
export const name = () => Joi.string().trim().min(1).max(Limits.nameMaxChars);

/** How maxChars() describes itself (schema.describe()), for the OpenAPI document's maxLength. */
export const MAX_CHARS_DESCRIPTION = "max characters: ";

/**
 * At most `max` characters, counted as the spec's limits are: Unicode
 * characters (code points). Joi's max() counts UTF-16 code units, in which an
 * emoji or a rarer CJK character is two. Refused as "string.max", like max().
 * The description is read by the OpenAPI document (maxLength counts code
 * points in JSON Schema too).
 */
export const maxChars = (max: number) =>
  [
    (value: string, helpers: Joi.CustomHelpers) => (value.length <= max || [...value].length <= max ? value : helpers.error("string.max", { limit: max })),
    `${MAX_CHARS_DESCRIPTION}${max}`,
  ] as const;

/** No NUL character anywhere (no process argument, path or environment can hold one). */
export const NO_NUL = /^[^\0]*$/;

/** One or more characters, none of them whitespace or NUL (a ref, branch, user name). */
export const NO_SPACE_OR_NUL = /^[^\s\0]+$/;

/**
 * A registry as `docker login` / `docker logout` take it: a host, an optional
 * port and path, optionally with its scheme. It cannot begin with "-", so it is
 * never read as a docker option.
 */
const REGISTRY_URL = /^(https?:\/\/)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?(\/[A-Za-z0-9._\-/]*)?$/;

export const registryUrl = () =>
  Joi.string()
    .max(500)
    .pattern(REGISTRY_URL)
    .messages({ "string.pattern.base": '"registry_url" must be a registry host such as ghcr.io or registry.example.com:5000/path' });

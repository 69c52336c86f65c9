import Joi from "joi";
import { envNameMatches, refusedDeployEnvReason } from "./deploy-env-refused";
import { Limits } from "./limits";

/**
 * Which `env_overrides` names a deploy accepts: never the platform's own
 * RUNBRIDGE_* variables; by default any other name except the refused list
 * (deploy-env-refused.ts); and when the application sets
 * `allowed_env_overrides`, only the names that list matches.
 */

/** RUNBRIDGE_* in any case: the platform sets these for the deploy command; no override, no allowance. */
export function isPlatformEnvName(name: string): boolean {
  return name.toUpperCase().startsWith("RUNBRIDGE_");
}

const label = '"env_overrides" key';

/** What the caller can do instead, appended to a refusal. */
const alternatives = (name: string) =>
  `A deploy key may only start the application's deploy command: a key allowed to exec can pass ${name} to a command with exec, ` +
  `or the application can allow it by listing ${name} in its allowed_env_overrides`;

/**
 * The 422 detail for the first name a deploy refuses, or null when it accepts every one.
 * `allowed` is the application's `allowed_env_overrides`. A refused name passes only
 * when the list names it exactly, the operator's explicit choice: a prefix pattern
 * (`FEATURE_*`) is meant for a family of harmless names and never lifts a refusal.
 */
export function deployEnvOverrideRefusal(names: Iterable<string>, allowed: readonly string[] | null): string | null {
  for (const name of names) {
    if (isPlatformEnvName(name)) return `${label} ${name} is reserved: RUNBRIDGE_* variables are set by the platform`;
    const refused = refusedDeployEnvReason(name);
    if (allowed === null) {
      if (refused) return `${label} ${name} is refused: ${refused}. ${alternatives(name)}`;
      continue;
    }
    if (allowed.includes(name)) continue;
    const pattern = allowed.find((entry) => entry.endsWith("*") && envNameMatches(entry, name));
    if (!pattern) {
      const none = allowed.length === 0 ? " (the list is empty: this application takes no overrides)" : "";
      return `${label} ${name} is not in the application's allowed_env_overrides${none}`;
    }
    if (refused) {
      return `${label} ${name} matches ${pattern} in the application's allowed_env_overrides but is refused: ${refused}. Only the exact name ${name} in allowed_env_overrides allows it`;
    }
  }
  return null;
}

/** A variable name, or a name prefix followed by `*`. A bare `*` is not one: allowing everything is the default (null). */
const ALLOWANCE = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;
const ALLOWANCE_MAX_CHARS = 255;

/**
 * `allowed_env_overrides` of an application: null (any name not refused by
 * default) or a list of names and `PREFIX*` patterns; an empty list takes no
 * overrides at all.
 */
export const allowedEnvOverridesSchema = () =>
  Joi.array()
    .items(
      Joi.string()
        .max(ALLOWANCE_MAX_CHARS)
        .pattern(ALLOWANCE)
        .custom((value: string, helpers) => (isPlatformEnvName(value) ? helpers.error("allowance.platform") : value))
        .messages({
          "string.pattern.base": "{{#label}} must be a variable name (letters, digits and _, not starting with a digit), optionally ending in * for a prefix",
          "string.max": `{{#label}} is longer than ${ALLOWANCE_MAX_CHARS} characters`,
          "allowance.platform": "{{#label}} cannot be allowed: RUNBRIDGE_* variables are set by the platform",
        }),
    )
    .max(Limits.envMaxKeys)
    .unique()
    .allow(null)
    .messages({
      "array.max": `{{#label}} has more than ${Limits.envMaxKeys} entries`,
      "array.unique": "{{#label}} lists {{#value}} twice",
    });

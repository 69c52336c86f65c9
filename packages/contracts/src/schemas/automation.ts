import Joi from "joi";
import { Limits } from "../limits";
import { envSchema, runContextSchema, runIdSchema, timeoutSchema, uuid } from "./common";
import { NO_NUL, maxChars, registryUrl } from "./fields";

/** Request bodies of the Automation API (/api/automation/v1), field names as in the spec. */

export interface RunContext {
  provider?: string | null;
  repository?: string | null;
  workflow?: string | null;
  trigger?: string | null;
  actor?: string | null;
  sha?: string | null;
  ref?: string | null;
  [extra: string]: string | number | boolean | null | undefined;
}

export interface ExecRequest {
  server_id: string;
  command: string;
  working_directory?: string;
  env?: Record<string, string>;
  timeout_seconds: number;
  run_id?: string;
  run_context?: RunContext;
}

/**
 * An optional field sent as `null` is a field not sent (its default applies): clients that always
 * serialise every field (Python's None, a template's unset value) send it so, and the spec marks
 * these fields optional without saying how "absent" is spelled.
 */
const optional = <S extends Joi.Schema>(schema: S): S => schema.empty(null) as S;

const workingDirectory = () =>
  Joi.string()
    .min(1)
    .max(Limits.workingDirectoryMaxChars)
    .pattern(NO_NUL)
    .message('"working_directory" cannot contain NUL bytes');

export const execRequestSchema = Joi.object<ExecRequest>({
  server_id: uuid().required(),
  command: Joi.string()
    .custom(...maxChars(Limits.commandMaxChars))
    .pattern(/\S/)
    .pattern(NO_NUL, "no NUL")
    .required()
    .messages({
      "string.pattern.base": '"command" cannot be blank',
      "string.pattern.name": '"command" cannot contain NUL bytes',
      "string.max": `"command" is longer than ${Limits.commandMaxChars} characters`,
    }),
  working_directory: optional(workingDirectory()),
  env: optional(envSchema("env")),
  timeout_seconds: optional(timeoutSchema()),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

export interface DeployRequest {
  application_id: string;
  commit_ref?: string;
  env_overrides?: Record<string, string>;
  timeout_seconds: number;
  run_id?: string;
  run_context?: RunContext;
}

export const deployRequestSchema = Joi.object<DeployRequest>({
  application_id: uuid().required(),
  commit_ref: optional(
    Joi.string()
      .min(1)
      .max(255)
      // No whitespace or NUL, and no leading "-": no branch, tag or SHA starts with one, and a value
      // that does is read as an option by the git the deploy command hands it to (--output=<file>,
      // --upload-pack=<program>), quoted or not.
      .pattern(/^[^\s\0-][^\s\0]*$/)
      .message('"commit_ref" must be a branch, tag or SHA without whitespace, not starting with "-"'),
  ),
  env_overrides: optional(envSchema("env_overrides")),
  timeout_seconds: optional(timeoutSchema()),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

/** Docker's container-name grammar: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (we also accept one-character names). */
export const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface RestartRequest {
  server_id: string;
  container_name: string;
  timeout_seconds: number;
  run_id?: string;
  run_context?: RunContext;
}

export const restartRequestSchema = Joi.object<RestartRequest>({
  server_id: uuid().required(),
  container_name: Joi.string()
    .max(255)
    .pattern(CONTAINER_NAME)
    .required()
    .messages({ "string.pattern.base": '"container_name" must match [a-zA-Z0-9][a-zA-Z0-9_.-]*' }),
  timeout_seconds: optional(timeoutSchema()),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

export interface RebootRequest {
  server_id: string;
  run_id?: string;
  run_context?: RunContext;
}

export const rebootRequestSchema = Joi.object<RebootRequest>({
  server_id: uuid().required(),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

export interface RegistryLoginRequest {
  server_id: string;
  credential_id: string;
  run_id?: string;
  run_context?: RunContext;
}

export const registryLoginRequestSchema = Joi.object<RegistryLoginRequest>({
  server_id: uuid().required(),
  credential_id: uuid().required(),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

export interface RegistryLogoutRequest {
  server_id: string;
  registry_url: string;
  run_id?: string;
  run_context?: RunContext;
}

export const registryLogoutRequestSchema = Joi.object<RegistryLogoutRequest>({
  server_id: uuid().required(),
  registry_url: registryUrl().required(),
  run_id: optional(runIdSchema()),
  run_context: optional(runContextSchema()),
});

export const operationIdParamSchema = uuid().required().label("operation_id");

import Joi from "joi";
import { allowedEnvOverridesSchema } from "../deploy-env";
import { Limits } from "../limits";
import { uuid } from "./common";
import { NO_NUL, NO_SPACE_OR_NUL, maxChars, name, registryUrl } from "./fields";

/**
 * Management API bodies for what the deploy, reboot and registry operations
 * act on: applications, registry credentials, a server's cloud provider link.
 * Plus the names those operations expose (deploy variables, reboot paths).
 */

const noNul = (label: string) =>
  Joi.string()
    .pattern(NO_NUL)
    .message(`"${label}" cannot contain NUL bytes`);

export interface ApplicationFields {
  name: string;
  server_id: string;
  working_directory: string;
  deploy_branch: string;
  deploy_command: string;
  /** null: any env_overrides name except the refused list; a list: only the names and PREFIX* patterns on it. */
  allowed_env_overrides: string[] | null;
}

const applicationFields = {
  name: name(),
  server_id: uuid(),
  working_directory: noNul("working_directory").min(1).max(Limits.workingDirectoryMaxChars),
  deploy_branch: Joi.string()
    .min(1)
    .max(255)
    .pattern(NO_SPACE_OR_NUL)
    .message('"deploy_branch" must be a branch, tag or SHA without whitespace'),
  deploy_command: noNul("deploy_command")
    .custom(...maxChars(Limits.commandMaxChars))
    .pattern(/\S/, "not blank")
    .messages({ "string.pattern.name": '"deploy_command" cannot be blank', "string.max": `"deploy_command" is longer than ${Limits.commandMaxChars} characters` }),
  allowed_env_overrides: allowedEnvOverridesSchema(),
};

export const createApplicationSchema = Joi.object<ApplicationFields>({
  name: applicationFields.name.required(),
  server_id: applicationFields.server_id.required(),
  working_directory: applicationFields.working_directory.required(),
  deploy_branch: applicationFields.deploy_branch.default("main"),
  deploy_command: applicationFields.deploy_command.required(),
  allowed_env_overrides: applicationFields.allowed_env_overrides.default(null),
});

export const updateApplicationSchema = Joi.object<Partial<ApplicationFields>>(applicationFields).min(1);

/** Registry types resolved from a registry URL's host. */
export const RegistryType = {
  Ghcr: "ghcr",
  DockerHub: "dockerhub",
  Ecr: "ecr",
  Gcr: "gcr",
  Gar: "gar",
  Acr: "acr",
  Gitlab: "gitlab",
  Generic: "generic",
} as const;
export type RegistryType = (typeof RegistryType)[keyof typeof RegistryType];

export interface CreateRegistryCredentialRequest {
  name: string;
  registry_url: string;
  username: string;
  password: string;
}

export const createRegistryCredentialSchema = Joi.object<CreateRegistryCredentialRequest>({
  name: name().required(),
  registry_url: registryUrl().required(),
  username: Joi.string()
    .min(1)
    .max(255)
    .pattern(NO_SPACE_OR_NUL)
    .required()
    .messages({ "string.pattern.base": '"username" cannot contain whitespace' }),
  // Goes to `docker login --password-stdin`, which reads one line: no newlines.
  password: Joi.string()
    .min(1)
    .max(10_000)
    .pattern(/^[^\r\n\0]+$/)
    .required()
    .messages({ "string.pattern.base": '"password" cannot contain newlines or NUL bytes' }),
});

export const CloudProvider = {
  Hetzner: "hetzner",
  DigitalOcean: "digitalocean",
} as const;
export type CloudProvider = (typeof CloudProvider)[keyof typeof CloudProvider];
export const CLOUD_PROVIDERS = Object.values(CloudProvider) as CloudProvider[];

export interface ServerProviderLinkRequest {
  provider: CloudProvider | null;
  provider_server_id?: string;
  provider_token?: string;
}

/** PATCH /servers/{id}: link a server to its cloud provider (or `provider: null` to unlink). */
export const serverProviderLinkSchema = Joi.object<ServerProviderLinkRequest>({
  provider: Joi.string()
    .valid(...CLOUD_PROVIDERS)
    .allow(null)
    .required(),
  provider_server_id: Joi.when("provider", {
    is: null,
    then: Joi.forbidden(),
    otherwise: Joi.string()
      .pattern(/^[0-9]{1,20}$/)
      .required()
      .messages({ "string.pattern.base": '"provider_server_id" must be the numeric server (droplet) id at the provider' }),
  }),
  provider_token: Joi.when("provider", {
    is: null,
    then: Joi.forbidden(),
    otherwise: Joi.string()
      .min(1)
      .max(500)
      .pattern(/^[\x21-\x7e]+$/)
      .required()
      .messages({ "string.pattern.base": '"provider_token" must be printable ASCII without spaces' }),
  }),
});

/** Variables the platform gives a deploy command (never masked; documented in docs/operations-reference.md). */
export const DeployVar = {
  CommitRef: "RUNBRIDGE_COMMIT_REF",
  DeploymentId: "RUNBRIDGE_DEPLOYMENT_ID",
  ApplicationId: "RUNBRIDGE_APPLICATION_ID",
  ApplicationName: "RUNBRIDGE_APPLICATION_NAME",
  OperationId: "RUNBRIDGE_OPERATION_ID",
} as const;

/** `params.reboot_path` of a reboot operation: how the reboot was done. */
export const RebootPath = {
  Provider: "provider",
  Runner: "runner",
} as const;
export type RebootPath = (typeof RebootPath)[keyof typeof RebootPath];

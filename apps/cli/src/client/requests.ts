import { UsageError } from "./api";

/**
 * The operation requests the clients send, built in one place so the CLI and
 * the GitHub Action (which bundles this file) cannot drift apart. Optional
 * fields are left out when unset rather than sent empty. run_id and
 * run_context are not here: submitOperation adds them to every request.
 */
export interface OperationRequest {
  path: string;
  body: Record<string, unknown>;
}

type Env = Record<string, string>;

/** `name: env` only when there is at least one variable. */
const envField = (name: string, env: Env | undefined) => (env && Object.keys(env).length > 0 ? { [name]: env } : {});
const timeoutField = (timeout: number | undefined) => (timeout === undefined ? {} : { timeout_seconds: timeout });

export function execRequest(p: { serverId: string; command: string; cwd?: string; env?: Env; timeout?: number }): OperationRequest {
  return {
    path: "/exec",
    body: {
      server_id: p.serverId,
      command: p.command,
      ...(p.cwd ? { working_directory: p.cwd } : {}),
      ...envField("env", p.env),
      ...timeoutField(p.timeout),
    },
  };
}

export function deployRequest(p: { applicationId: string; ref?: string; env?: Env; timeout?: number }): OperationRequest {
  return {
    path: "/deploy",
    body: {
      application_id: p.applicationId,
      ...(p.ref ? { commit_ref: p.ref } : {}),
      ...envField("env_overrides", p.env),
      ...timeoutField(p.timeout),
    },
  };
}

export function restartRequest(p: { serverId: string; container: string; timeout?: number }): OperationRequest {
  return { path: "/restart", body: { server_id: p.serverId, container_name: p.container, ...timeoutField(p.timeout) } };
}

export function rebootRequest(serverId: string): OperationRequest {
  return { path: "/reboot", body: { server_id: serverId } };
}

export function registryLoginRequest(serverId: string, credentialId: string): OperationRequest {
  return { path: "/registry-auth/login", body: { server_id: serverId, credential_id: credentialId } };
}

export function registryLogoutRequest(serverId: string, registryUrl: string): OperationRequest {
  return { path: "/registry-auth/logout", body: { server_id: serverId, registry_url: registryUrl } };
}

/** A timeout setting (`--timeout S`, input "timeout"): whole seconds; the API checks the range (1-900). */
export function seconds(value: string | undefined, flag = "--timeout"): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${flag} must be a whole number of seconds, got "${value}"`);
  return Number(value.trim());
}

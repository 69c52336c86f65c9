/** Shapes of the management API's JSON (snake_case, as on the wire). */

export const OPERATION_TYPES = ["exec", "deploy", "restart", "reboot", "registry_login", "registry_logout"] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];
export const OPERATION_STATUSES = ["running", "completed", "failed", "timeout", "cancelled"] as const;

export interface Session {
  tenant_id: string;
  tenant_name: string | null;
  api_key_id: string;
  api_key_name: string | null;
  api_key_prefix: string | null;
  csrf_token: string;
}

export interface AutomationKey {
  id: string;
  name: string;
  prefix: string;
  status: "active" | "revoked" | "expired";
  allowed_server_ids: string[];
  allowed_operations: OperationType[];
  allowed_credential_ids: string[];
  ip_allowlist: string[];
  rate_limit: number;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  created_at: string;
  operation_count?: number;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  status?: "active" | "revoked";
  last_used_at?: string | null;
  revoked_at?: string | null;
  created_at: string;
  /** The key the current session signed in with. */
  current?: boolean;
}

export interface Server {
  id: string;
  name: string;
  runner_connected: boolean;
  last_seen_at: string | null;
  runner_version?: string | null;
  /** What keeps its runner from taking operations, as it last said (absent from gateways of earlier versions). */
  runner_problem?: string | null;
  runner_problem_since?: string | null;
  provider?: string | null;
  created_at: string;
}

export interface RunContext {
  provider?: string;
  repository?: string;
  workflow?: string;
  trigger?: string;
  actor?: string;
  sha?: string;
  ref?: string;
  [extra: string]: unknown;
}

export interface Operation {
  operation_id: string;
  operation_type: OperationType;
  server_id: string;
  server_name: string | null;
  status: string;
  result: {
    exit_code: number | null;
    stdout: string;
    stderr: string;
    duration_ms: number | null;
    stdout_truncated?: boolean;
    stderr_truncated?: boolean;
  } | null;
  error: string | null;
  run_id: string | null;
  run_context: RunContext | null;
  command: string | null;
  working_directory: string | null;
  timeout_seconds: number;
  env_keys: string[];
  automation_key_id: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface Application {
  id: string;
  name: string;
  server_id: string;
  working_directory: string;
  deploy_branch: string;
  deploy_command: string;
  /** null: any name except the refused list; a list: only these names and PREFIX* patterns. */
  allowed_env_overrides: string[] | null;
  created_at?: string;
}

export interface RegistryCredential {
  id: string;
  name: string;
  registry_url: string;
  username: string;
  registry_type?: string;
  created_at?: string;
}

export interface Page<T> {
  data: T[];
  next_cursor?: string | null;
}

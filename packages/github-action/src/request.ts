import { UsageError } from "../../../apps/cli/src/client/api";
import { parseEnvLines } from "../../../apps/cli/src/client/env-vars";
import { getInput } from "./workflow";

export const OPERATIONS = ["exec", "deploy", "restart", "reboot", "registry-login"] as const;
export type ActionOperation = (typeof OPERATIONS)[number];

export interface ActionRequest {
  operation: ActionOperation;
  path: string;
  body: Record<string, unknown>;
  /** Env values (secrets) to mask before anything is printed. */
  secrets: string[];
}

function need(name: string, operation: string): string {
  const v = getInput(name);
  if (!v) throw new UsageError(`input "${name}" is required for operation ${operation}`);
  return v;
}

function timeout(): number | undefined {
  const raw = getInput("timeout");
  if (!raw) return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError(`input "timeout" must be a whole number of seconds, got "${raw}"`);
  return Number(raw);
}

/** The `env` input: multi-line KEY=VALUE (as in an env file). */
export function envInput(): Record<string, string> {
  const raw = process.env.INPUT_ENV ?? "";
  return raw.trim() ? parseEnvLines(raw, 'input "env"') : {};
}

/** The API request the inputs describe; errors name the input, never a value. */
export function requestFromInputs(env: Record<string, string>): ActionRequest {
  const op = (getInput("operation") || "exec") as ActionOperation;
  if (!OPERATIONS.includes(op)) throw new UsageError(`input "operation" must be one of ${OPERATIONS.join(", ")}, got "${op}"`);
  const hasEnv = Object.keys(env).length > 0;
  const t = timeout();
  const withTimeout = t === undefined ? {} : { timeout_seconds: t };
  const secrets = Object.values(env);
  switch (op) {
    case "exec": {
      const cwd = getInput("working-directory");
      return {
        operation: op,
        path: "/exec",
        body: {
          server_id: need("server-id", op),
          command: need("command", op),
          ...(cwd ? { working_directory: cwd } : {}),
          ...(hasEnv ? { env } : {}),
          ...withTimeout,
        },
        secrets,
      };
    }
    case "deploy": {
      const ref = getInput("ref");
      return {
        operation: op,
        path: "/deploy",
        body: { application_id: need("application-id", op), ...(ref ? { commit_ref: ref } : {}), ...(hasEnv ? { env_overrides: env } : {}), ...withTimeout },
        secrets,
      };
    }
    case "restart":
      return { operation: op, path: "/restart", body: { server_id: need("server-id", op), container_name: need("container", op), ...withTimeout }, secrets };
    case "reboot":
      return { operation: op, path: "/reboot", body: { server_id: need("server-id", op) }, secrets };
    case "registry-login":
      return { operation: op, path: "/registry-auth/login", body: { server_id: need("server-id", op), credential_id: need("credential-id", op) }, secrets };
  }
}

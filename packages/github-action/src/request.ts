import { UsageError } from "../../../apps/cli/src/client/api";
import { parseEnvLines } from "../../../apps/cli/src/client/env-vars";
import {
  deployRequest,
  execRequest,
  rebootRequest,
  registryLoginRequest,
  restartRequest,
  seconds,
  type OperationRequest,
} from "../../../apps/cli/src/client/requests";
import { getInput } from "./workflow";

export const OPERATIONS = ["exec", "deploy", "restart", "reboot", "registry-login"] as const;
export type ActionOperation = (typeof OPERATIONS)[number];

export interface ActionRequest extends OperationRequest {
  operation: ActionOperation;
}

function need(name: string, operation: string): string {
  const v = getInput(name);
  if (!v) throw new UsageError(`input "${name}" is required for operation ${operation}`);
  return v;
}

/** The `env` input: multi-line KEY=VALUE (as in an env file). */
export function envInput(): Record<string, string> {
  const raw = process.env.INPUT_ENV ?? "";
  return raw.trim() ? parseEnvLines(raw, 'input "env"') : {};
}

/** The API request the inputs describe (built by the CLI's own builders); errors name the input, never a value. */
export function requestFromInputs(env: Record<string, string>): ActionRequest {
  const op = (getInput("operation") || "exec") as ActionOperation;
  if (!OPERATIONS.includes(op)) throw new UsageError(`input "operation" must be one of ${OPERATIONS.join(", ")}, got "${op}"`);
  // An empty input means unset; it is checked for every operation, even one that takes no timeout.
  const timeout = seconds(getInput("timeout") || undefined, 'input "timeout"');
  return { operation: op, ...operationRequest(op, env, timeout) };
}

function operationRequest(op: ActionOperation, env: Record<string, string>, timeout: number | undefined): OperationRequest {
  switch (op) {
    case "exec":
      return execRequest({ serverId: need("server-id", op), command: need("command", op), cwd: getInput("working-directory"), env, timeout });
    case "deploy":
      return deployRequest({ applicationId: need("application-id", op), ref: getInput("ref"), env, timeout });
    case "restart":
      return restartRequest({ serverId: need("server-id", op), container: need("container", op), timeout });
    case "reboot":
      return rebootRequest(need("server-id", op));
    case "registry-login":
      return registryLoginRequest(need("server-id", op), need("credential-id", op));
  }
}

import { DeployVar, type OperationSecrets, type ProcessSpec, type StartOperation } from "@runbridge/contracts";
import type { Operation } from "@runbridge/db";

/**
 * What the runner executes for each operation type. Adding an operation type
 * without a mapping here fails the build (the switch is exhaustive).
 */
export function startMessage(op: Operation, secrets: OperationSecrets): StartOperation {
  const base = { operationId: op.id, timeoutSeconds: op.timeoutSeconds, notAfter: op.deliverBy.toISOString(), ...(secrets.env ? { env: secrets.env } : {}) };
  const params = (op.params ?? {}) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = params[k];
    if (typeof v !== "string") throw new Error(`operation ${op.id} is missing parameter ${k}`);
    return v;
  };
  let spec: ProcessSpec;
  switch (op.type) {
    case "exec":
      spec = { kind: "shell", command: op.command ?? "" };
      return { ...base, spec, ...(op.workingDirectory ? { cwd: op.workingDirectory } : {}) };
    case "deploy": {
      spec = { kind: "shell", command: op.command ?? "" };
      const vars: Record<string, string> = {
        [DeployVar.CommitRef]: str("commit_ref"),
        [DeployVar.DeploymentId]: str("deployment_id"),
        [DeployVar.ApplicationId]: str("application_id"),
        [DeployVar.ApplicationName]: str("application_name"),
        [DeployVar.OperationId]: op.id,
      };
      return { ...base, spec, vars, ...(op.workingDirectory ? { cwd: op.workingDirectory } : {}) };
    }
    case "restart":
      spec = { kind: "argv", argv: ["docker", "restart", str("container_name")] };
      return { ...base, spec };
    case "reboot":
      spec = { kind: "reboot" };
      return { ...base, spec };
    case "registry_login":
      spec = { kind: "argv", argv: ["docker", "login", str("registry_url"), "--username", str("username"), "--password-stdin"] };
      return { ...base, spec, stdin: secrets.password ?? "" };
    case "registry_logout":
      spec = { kind: "argv", argv: ["docker", "logout", str("registry_url")] };
      return { ...base, spec, failureAsExitCode: true };
    default:
      throw new Error(`no process mapping for operation type ${op.type}`);
  }
}

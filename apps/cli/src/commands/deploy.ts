import type { ApiClient } from "../client/api";
import { EnvBuilder } from "../client/env-vars";
import { getOperation } from "../client/follow";
import { deployRequest, seconds } from "../client/requests";
import { newInvocation } from "../client/submit";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";
import { runOperation } from "./run-operation";

export const DEPLOY_USAGE = `usage: runbridge deploy --app ID [--ref REF] [--env K=V | --env K]... [--env-file FILE]...
                       [--timeout S] [--run-id ID] [--wait]

Triggers a deployment. Without --wait, prints {"operation_id", "deployment_id", ...}
and exits 0 once it is accepted (130 if interrupted before: the deployment is then
cancelled); with --wait, streams its output and exits like exec.
`;

export async function deployCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    app: { type: "string" },
    ref: { type: "string" },
    env: { type: "string", multiple: true },
    "env-file": { type: "string", multiple: true },
    timeout: { type: "string" },
    "run-id": { type: "string" },
    wait: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(DEPLOY_USAGE);
    return 0;
  }
  const appId = required(values.app, "--app");
  const env = new EnvBuilder();
  for (const file of values["env-file"] ?? []) env.file(file);
  for (const spec of values.env ?? []) env.flag(spec);
  const timeout = seconds(values.timeout);

  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = deployRequest({ applicationId: appId, ref: values.ref, env: env.vars, timeout });
  const wait = values.wait ?? false;
  const { code, submitted } = await runOperation(conn, req, inv, { follow: wait });
  if (!wait) process.stdout.write(`${JSON.stringify(submitted.accepted ?? (await acceptedFromOperation(conn.client, submitted.operationId)))}\n`);
  return code;
}

/**
 * The accepted answer of a deploy found by its run after its POST's answer was lost: read from the
 * operation itself (its deployment_id is in its params), with its status as it is now.
 */
async function acceptedFromOperation(client: ApiClient, id: string): Promise<Record<string, unknown>> {
  const op = await getOperation(client, id);
  const params = op.params as { deployment_id?: unknown } | undefined;
  return { operation_id: id, status: op.status, deployment_id: typeof params?.deployment_id === "string" ? params.deployment_id : null };
}

import { restartRequest, seconds } from "../client/requests";
import { newInvocation } from "../client/submit";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";
import { runOperation } from "./run-operation";

export const RESTART_USAGE = `usage: runbridge restart --server ID --container NAME [--timeout S] [--run-id ID]
`;

export async function restartCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONNECTION_OPTIONS,
    server: { type: "string" },
    container: { type: "string" },
    timeout: { type: "string" },
    "run-id": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(RESTART_USAGE);
    return 0;
  }
  const serverId = required(values.server, "--server");
  const container = required(values.container, "--container");
  const timeout = seconds(values.timeout);
  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = restartRequest({ serverId, container, timeout });
  return (await runOperation(conn, req, inv, { follow: true })).code;
}

import { rebootRequest } from "../client/requests";
import { newInvocation } from "../client/submit";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";
import { runOperation } from "./run-operation";

export const REBOOT_USAGE = `usage: runbridge reboot --server ID [--run-id ID]
`;

export async function rebootCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, server: { type: "string" }, "run-id": { type: "string" } });
  if (values.help) {
    process.stdout.write(REBOOT_USAGE);
    return 0;
  }
  const serverId = required(values.server, "--server");
  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = rebootRequest(serverId);
  return (await runOperation(conn, req, inv, { follow: true })).code;
}

import { UsageError } from "../client/api";
import { registryLoginRequest, registryLogoutRequest } from "../client/requests";
import { newInvocation } from "../client/submit";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";
import { runOperation } from "./run-operation";

export const REGISTRY_USAGE = `usage: runbridge registry login --server ID --credential ID [--run-id ID]
       runbridge registry logout --server ID --registry URL [--run-id ID]

login runs docker login on the server with a registry credential stored in
runbridge (the password never passes through CI) and exits like exec.
logout runs docker logout; a failing logout is a warning and exits 0.
`;

export async function registryCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "login") return login(rest);
  if (sub === "logout") return logout(rest);
  if (sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(REGISTRY_USAGE);
    return 0;
  }
  throw new UsageError(sub ? `unknown registry command "${sub}"` : "registry needs login or logout");
}

async function login(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, server: { type: "string" }, credential: { type: "string" }, "run-id": { type: "string" } });
  if (values.help) {
    process.stdout.write(REGISTRY_USAGE);
    return 0;
  }
  const serverId = required(values.server, "--server");
  const credentialId = required(values.credential, "--credential");
  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = registryLoginRequest(serverId, credentialId);
  const { code, submitted } = await runOperation(conn, req, inv, { follow: true });
  const a = submitted.accepted;
  if (a?.registry_url) conn.sink.note(`registry ${a.registry_url} (${a.registry_type ?? "generic"})`);
  return code;
}

async function logout(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, server: { type: "string" }, registry: { type: "string" }, "run-id": { type: "string" } });
  if (values.help) {
    process.stdout.write(REGISTRY_USAGE);
    return 0;
  }
  const serverId = required(values.server, "--server");
  const registryUrl = required(values.registry, "--registry");
  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = registryLogoutRequest(serverId, registryUrl);
  return (await runOperation(conn, req, inv, { follow: true, nonZeroIsWarning: true })).code;
}

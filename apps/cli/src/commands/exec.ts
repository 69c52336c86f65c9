import { UsageError } from "../client/api";
import { EnvBuilder } from "../client/env-vars";
import { execRequest, seconds } from "../client/requests";
import { newInvocation } from "../client/submit";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";
import { runOperation } from "./run-operation";

export const EXEC_USAGE = `usage: runbridge exec --server ID [--cwd DIR] [--env K=V | --env K]... [--env-file FILE]...
                     [--timeout S] [--run-id ID] -- command [args...]

Runs a shell command on the server, prints its output while it runs, and exits
with its exit code. Several words after -- are joined with spaces (as ssh does);
quote the whole command to keep shell syntax intact: -- 'cd /app && make'.
`;

export async function execCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...CONNECTION_OPTIONS,
      server: { type: "string" },
      cwd: { type: "string" },
      env: { type: "string", multiple: true },
      "env-file": { type: "string", multiple: true },
      timeout: { type: "string" },
      "run-id": { type: "string" },
    },
    "after --",
  );
  if (values.help) {
    process.stdout.write(EXEC_USAGE);
    return 0;
  }
  const serverId = required(values.server, "--server");
  if (positionals.length === 0) throw new UsageError("no command: put it after --, e.g. runbridge exec --server ID -- uptime");
  const command = positionals.join(" ");
  const env = new EnvBuilder();
  for (const file of values["env-file"] ?? []) env.file(file);
  for (const spec of values.env ?? []) env.flag(spec);
  const timeout = seconds(values.timeout);

  const conn = connect(values);
  const inv = newInvocation(values["run-id"]);
  const req = execRequest({ serverId, command, cwd: values.cwd, env: env.vars, timeout });
  return (await runOperation(conn, req, inv, { follow: true })).code;
}

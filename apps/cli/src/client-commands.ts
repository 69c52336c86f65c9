import { ExitCode } from "./client/exit-codes";
import { reportError } from "./commands/connection";
import { DEPLOY_USAGE, deployCommand } from "./commands/deploy";
import { EXEC_USAGE, execCommand } from "./commands/exec";
import { OPERATIONS_USAGE, operationsCommand } from "./commands/operations";
import { REBOOT_USAGE, rebootCommand } from "./commands/reboot";
import { REGISTRY_USAGE, registryCommand } from "./commands/registry";
import { RESTART_USAGE, restartCommand } from "./commands/restart";

/**
 * The API client commands. They need nothing but Node 20 (no database, no
 * workspace packages), so they also ship as one standalone file for CI
 * machines: apps/cli/standalone/runbridge.cjs.
 */
export const CLIENT_USAGE = `Operations (Automation API; RUNBRIDGE_URL and RUNBRIDGE_API_KEY from the
environment, or --url / --api-key; --quiet hides the client's own notes):
  runbridge exec --server ID [--cwd DIR] [--env K=V]... [--env-file FILE] [--timeout S] -- command
  runbridge deploy --app ID [--ref REF] [--env K=V]... [--wait]
  runbridge restart --server ID --container NAME
  runbridge reboot --server ID
  runbridge registry login --server ID --credential ID
  runbridge registry logout --server ID --registry URL
  runbridge operations get ID | list --run-id ID | logs ID [--follow]
  exec, deploy, restart, reboot and registry take --run-id ID (default: the CI
  run's id); operations list needs it; operations get and logs take an operation
  id instead. Every command takes --help.

Exit codes: the remote command's own exit code when it completed; 124 timeout;
125 failed (could not run); 130 cancelled; 64 usage; 65 refused by the API
(404/409/422); 69 API unreachable or 5xx; 75 still rate limited; 77 auth (401/403).
`;

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; usage: string }> = {
  exec: { run: execCommand, usage: EXEC_USAGE },
  deploy: { run: deployCommand, usage: DEPLOY_USAGE },
  restart: { run: restartCommand, usage: RESTART_USAGE },
  reboot: { run: rebootCommand, usage: REBOOT_USAGE },
  registry: { run: registryCommand, usage: REGISTRY_USAGE },
  operations: { run: operationsCommand, usage: OPERATIONS_USAGE },
};

/** Runs a client command; null if `command` is not one. */
export async function runClientCommand(command: string, args: string[]): Promise<number | null> {
  const entry = COMMANDS[command];
  if (!entry) return null;
  try {
    return await entry.run(args);
  } catch (err) {
    return reportError(err, entry.usage);
  }
}

export function unknownCommand(command: string, usage: string): number {
  process.stderr.write(`runbridge: unknown command "${command}"\n\n${usage}`);
  return ExitCode.Usage;
}

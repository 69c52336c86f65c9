import { ConfigError } from "@runbridge/common";
import { ExitCode } from "./client/exit-codes";
import { bootstrap } from "./commands/bootstrap";
import { reportError } from "./commands/connection";
import { DEPLOY_USAGE, deployCommand } from "./commands/deploy";
import { EXEC_USAGE, execCommand } from "./commands/exec";
import { OPERATIONS_USAGE, operationsCommand } from "./commands/operations";
import { REBOOT_USAGE, rebootCommand } from "./commands/reboot";
import { REGISTRY_USAGE, registryCommand } from "./commands/registry";
import { RESTART_USAGE, restartCommand } from "./commands/restart";

const USAGE = `runbridge — command-line client of runbridge

Operations (Automation API; RUNBRIDGE_URL and RUNBRIDGE_API_KEY from the
environment, or --url / --api-key; --quiet hides the client's own notes):
  runbridge exec --server ID [--cwd DIR] [--env K=V]... [--env-file FILE] [--timeout S] -- command
  runbridge deploy --app ID [--ref REF] [--env K=V]... [--wait]
  runbridge restart --server ID --container NAME
  runbridge reboot --server ID
  runbridge registry login --server ID --credential ID
  runbridge registry logout --server ID --registry URL
  runbridge operations get ID | list --run-id ID | logs ID [--follow]
  Every command takes --run-id ID (default: the CI run's id).

Exit codes: the remote command's own exit code when it completed; 124 timeout;
125 failed (could not run); 130 cancelled; 64 usage; 65 refused by the API
(404/409/422); 69 API unreachable or 5xx; 75 still rate limited; 77 auth (401/403).

Administration (talks to PostgreSQL; needs DATABASE_URL):
  runbridge bootstrap --tenant NAME   create a tenant and its first general API key;
                                      prints {"tenant_id": "...", "api_key": "..."}
`;

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; usage: string }> = {
  exec: { run: execCommand, usage: EXEC_USAGE },
  deploy: { run: deployCommand, usage: DEPLOY_USAGE },
  restart: { run: restartCommand, usage: RESTART_USAGE },
  reboot: { run: rebootCommand, usage: REBOOT_USAGE },
  registry: { run: registryCommand, usage: REGISTRY_USAGE },
  operations: { run: operationsCommand, usage: OPERATIONS_USAGE },
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "bootstrap":
      return bootstrap(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? ExitCode.Usage : 0;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`runbridge: unknown command "${command}"\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  try {
    return await entry.run(rest);
  } catch (err) {
    return reportError(err, entry.usage);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `runbridge: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

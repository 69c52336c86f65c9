import { ConfigError } from "@runbridge/common";
import { CLIENT_USAGE, runClientCommand, unknownCommand } from "./client-commands";
import { ExitCode } from "./client/exit-codes";
import { exitWhenFlushed } from "./exit";
import { bootstrap } from "./commands/bootstrap";

const USAGE = `runbridge — command-line client of runbridge

${CLIENT_USAGE}
Administration (talks to PostgreSQL; needs DATABASE_URL):
  runbridge bootstrap --tenant NAME   create a tenant and its first general API key;
                                      prints {"tenant_id": "...", "api_key": "..."}
`;

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
  return (await runClientCommand(command, rest)) ?? unknownCommand(command, USAGE);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `runbridge: ${err instanceof Error ? err.message : String(err)}\n`);
    void exitWhenFlushed(1);
  },
);

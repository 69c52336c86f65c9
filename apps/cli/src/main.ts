import { ConfigError } from "@runbridge/common";
import { bootstrap } from "./commands/bootstrap";

const USAGE = `runbridge — command-line client of runbridge

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
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`runbridge: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `runbridge: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

import { CLIENT_USAGE, runClientCommand, unknownCommand } from "./client-commands";
import { ExitCode } from "./client/exit-codes";
import { exitWhenFlushed } from "./exit";

const USAGE = `runbridge — command-line client of runbridge

${CLIENT_USAGE}
Administration (talks to PostgreSQL; needs DATABASE_URL):
  runbridge bootstrap --tenant NAME   create a tenant and its first general API key;
                                      prints {"tenant_id": "...", "api_key": "..."}
  runbridge migrations rolled-back NAME
                                      mark the failed migration NAME rolled back, so
                                      that migrate applies it again (--help for more)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "bootstrap":
      return runAdmin(async () => (await import("./commands/bootstrap")).bootstrap, rest);
    case "migrations":
      return runAdmin(async () => (await import("./commands/migrations")).migrationsCommand, rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? ExitCode.Usage : 0;
  }
  return (await runClientCommand(command, rest)) ?? unknownCommand(command, USAGE);
}

/**
 * Loaded only for the administration commands: the database client and the services' shared code take
 * most of a second to load (0.6 s of CPU on a slow host), which every API command — one per CI step —
 * paid at start.
 */
async function runAdmin(load: () => Promise<(args: string[]) => Promise<number>>, args: string[]): Promise<number> {
  const [command, { ConfigError }] = await Promise.all([load(), import("@runbridge/common")]);
  try {
    return await command(args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    process.stderr.write(`runbridge: ${err instanceof Error ? err.message : String(err)}\n`);
    void exitWhenFlushed(1);
  },
);

import { CLIENT_USAGE, runClientCommand, unknownCommand } from "./client-commands";
import { ExitCode } from "./client/exit-codes";
import { exitWhenFlushed } from "./exit";

/**
 * Entry of the standalone client (apps/cli/standalone/runbridge.cjs): the API
 * commands only, in one file that needs nothing but Node 20, for CI machines.
 */
const USAGE = `runbridge — command-line client of runbridge (standalone)

${CLIENT_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? ExitCode.Usage : 0;
    case "bootstrap":
      process.stderr.write("runbridge: bootstrap talks to the database; run it from a runbridge installation (pnpm runbridge bootstrap)\n");
      return ExitCode.Usage;
  }
  return (await runClientCommand(command, rest)) ?? unknownCommand(command, USAGE);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    process.stderr.write(`runbridge: ${err instanceof Error ? err.message : String(err)}\n`);
    void exitWhenFlushed(1);
  },
);

import { Shutdown, createLogger } from "@runbridge/common";
import { Agent, RUNNER_VERSION } from "./agent";
import { loadRunnerConfig } from "./config";

function main(): void {
  const config = loadRunnerConfig();
  const logger = createLogger("runner", config.LOG_LEVEL);
  let agent: Agent;
  try {
    agent = new Agent(config, logger);
  } catch (err) {
    // The state directory in use by another runner, or unreadable: nothing has started yet.
    logger.error("runner could not start", { error: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
    return;
  }
  agent.start();
  logger.info("runner started", { version: RUNNER_VERSION, stateDir: config.RUNBRIDGE_STATE_DIR });
  new Shutdown(logger).add("disconnect", () => agent.stop()).listen();
}

main();

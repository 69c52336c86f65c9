import { Shutdown, createLogger } from "@runbridge/common";
import { Agent, RUNNER_VERSION } from "./agent";
import { loadRunnerConfig } from "./config";

function main(): void {
  const config = loadRunnerConfig();
  const logger = createLogger("runner", config.LOG_LEVEL);
  const agent = new Agent(config, logger);
  agent.start();
  logger.info("runner started", { version: RUNNER_VERSION, stateDir: config.RUNBRIDGE_STATE_DIR });
  new Shutdown(logger).add("disconnect", () => agent.stop()).listen();
}

main();

import { Shutdown, createLogger, type Logger } from "@runbridge/common";
import { AccountSwitchError, fillLoginVariables, switchAccount } from "./account";
import { Agent, RUNNER_VERSION, STOP_OVERHEAD_MS } from "./agent";
import { clearTextDispatcher, loadRunnerConfig, type RunnerConfig } from "./config";

/**
 * EX_CONFIG: the systemd unit does not restart on it (RestartPreventExitStatus), since restarting cannot
 * fix the configuration: a revoked token, or a token another runner uses.
 */
const EXIT_BAD_CONFIG = 78;

/** The configuration, read again as RUNBRIDGE_RUN_AS's account if there is one (its defaults are under that account's home). */
function configAsAccount(logger: Logger, first: RunnerConfig): RunnerConfig | null {
  try {
    const account = switchAccount(first.RUNBRIDGE_RUN_AS);
    if (!account) return first;
    logger.info("runner switched account", { account: account.name, uid: account.uid, gid: account.gid, home: account.home });
    if (!account.environmentProtected) {
      logger.warn("commands can read this runner's environment, with its token, at /proc/$PPID/environ: the kernel keeps processes that switched account readable (fs.suid_dumpable is not 0 or 2)");
    }
    return loadRunnerConfig();
  } catch (err) {
    if (!(err instanceof AccountSwitchError)) throw err;
    logger.error("runner could not switch account", { error: err.message });
    process.exitCode = EXIT_BAD_CONFIG;
    return null;
  }
}

function main(): void {
  // Its name in ps, pgrep and killall (and /proc/<pid>/comm, cut to 15 characters): a deploy script's
  // `pkill node` or `killall node`, restarting its application, must not take the runner down with it.
  process.title = "runbridge-runner";
  const first = loadRunnerConfig();
  const logger = createLogger("runner", first.LOG_LEVEL);
  const config = configAsAccount(logger, first);
  if (!config) return;
  fillLoginVariables();
  // The agent's stop bounds itself (drain, kill grace, result flush): the step's own time-out must not cut it short.
  const stopMs = (config.RUNBRIDGE_STOP_DRAIN_SECONDS + config.RUNBRIDGE_KILL_GRACE_SECONDS) * 1000 + STOP_OVERHEAD_MS;
  const shutdown = new Shutdown(logger, stopMs + 5_000);
  let agent: Agent;
  try {
    // Running commands finish; results not delivered stay in the ledger for the runner started next
    // (with the new token, or once this machine is meant to be the server's runner again).
    const stopForGood = () => void shutdown.run().then(() => process.exit(EXIT_BAD_CONFIG));
    // As at boot (below): the supervisor starts it again, and it says why each time.
    const stopToRestart = () => void shutdown.run().then(() => process.exit(1));
    agent = new Agent(config, logger, { onTokenRevoked: stopForGood, onReplaced: stopForGood, onStateDirFailed: stopToRestart });
  } catch (err) {
    // The state directory in use by another runner, or not accessible (a permission): nothing has started yet.
    // A disk full or read-only is not thrown: the runner connects and refuses operations, saying why, until it can record them.
    logger.error("runner could not start", { error: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
    return;
  }
  const clear = clearTextDispatcher(config.RUNBRIDGE_DISPATCHER_URL);
  if (clear) {
    logger.warn(
      "RUNBRIDGE_DISPATCHER_URL is not encrypted: the runner token, the commands with their env values and output, and registry passwords cross the network readable by anyone on the way (and the token lets them connect as this runner). Use wss:// or https://, with the dispatcher's own TLS (DISPATCHER_TLS_CERT_FILE) or a TLS-terminating proxy in front of it",
      { dispatcher: clear },
    );
  }
  agent.start();
  logger.info("runner started", { version: RUNNER_VERSION, stateDir: config.RUNBRIDGE_STATE_DIR });
  shutdown.add("disconnect", () => agent.stop()).listen();
}

main();

import { BlockList, isIP } from "node:net";
import { homedir } from "node:os";
import path from "node:path";
import Joi from "joi";
import { loadConfigOrExit, pemFile } from "@runbridge/common";
import { RunnerTimings } from "@runbridge/contracts";

export const runnerEnvSchema = Joi.object({
  RUNBRIDGE_DISPATCHER_URL: Joi.string()
    .uri({ scheme: ["http", "https", "ws", "wss"] })
    .required()
    .description("Dispatcher URL the runner connects out to (https:// or wss:// in production)"),
  RUNBRIDGE_RUNNER_TOKEN: Joi.string()
    .pattern(/^rbr_[0-9A-Za-z]{42}$/)
    .required()
    .messages({ "string.pattern.base": "RUNBRIDGE_RUNNER_TOKEN must be the rbr_... token shown when the server was created" })
    .description("The server's runner token (shown once at server creation)"),
  // Functions, read when the configuration is: under RUNBRIDGE_RUN_AS it is read again as that account,
  // whose home (HOME, set by the switch) is where these belong — not root's, fixed when this module loaded.
  RUNBRIDGE_STATE_DIR: Joi.string()
    .default(() => path.join(homedir(), ".runbridge"))
    .description("Where the runner keeps its ledger of started operations and undelivered results"),
  RUNBRIDGE_WORKDIR: Joi.string()
    .default(() => homedir())
    .description("Working directory of commands that name none (relative ones resolve against it)"),
  RUNBRIDGE_REBOOT_COMMAND: Joi.string().default("shutdown -r now").description("Shell command the runner uses to reboot its server"),
  RUNBRIDGE_KILL_GRACE_SECONDS: Joi.number()
    .min(0)
    .max(RunnerTimings.killGraceMaxSeconds)
    .default(5)
    .description("Between SIGTERM and SIGKILL of a timed-out or cancelled process group"),
  RUNBRIDGE_STOP_DRAIN_SECONDS: Joi.number()
    .min(0)
    .max(600)
    .default(25)
    .description("On SIGTERM, how long running commands may go on before their process groups are killed (the unit's TimeoutStopSec must cover it)"),
  RUNBRIDGE_MAX_CONCURRENT_OPERATIONS: Joi.number()
    .integer()
    .min(0)
    .max(10_000)
    .default(64)
    .description("The most operations the runner holds at once, running or delivering their results; a start beyond it is refused for later (0: no cap)"),
  // Read only when the runner connects; checked here so a bad path is a configuration error (78), not a crash.
  RUNBRIDGE_CA_FILE: Joi.string().allow("").default("").custom(pemFile("certificate")).description("PEM file of a CA to trust for the dispatcher's TLS certificate"),
  RUNBRIDGE_LEDGER_RETENTION_DAYS: Joi.number().integer().min(1).max(365).default(7).description("How long delivered results stay in the ledger to recognise redeliveries"),
  RUNBRIDGE_CLOCK_SKEW_SECONDS: Joi.number()
    .integer()
    .min(0)
    .max(3600)
    .default(30)
    .description("Tolerated clock difference with the dispatchers when refusing operations that arrive after their delivery deadline"),
  RUNBRIDGE_RUN_AS: Joi.string()
    .allow("")
    .default("")
    .max(32)
    .pattern(/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/)
    .messages({ "string.pattern.base": "RUNBRIDGE_RUN_AS must be an account name" })
    .description(
      "Account the runner switches to at start when started as root (the installed service does this); it and its commands then run as that account, and the commands cannot read the runner's token from its environment",
    ),
  LOG_LEVEL: Joi.string().valid("error", "warn", "info", "http", "verbose", "debug", "silly").default("info"),
});

export interface RunnerConfig {
  RUNBRIDGE_DISPATCHER_URL: string;
  RUNBRIDGE_RUNNER_TOKEN: string;
  RUNBRIDGE_STATE_DIR: string;
  RUNBRIDGE_WORKDIR: string;
  RUNBRIDGE_REBOOT_COMMAND: string;
  RUNBRIDGE_KILL_GRACE_SECONDS: number;
  RUNBRIDGE_STOP_DRAIN_SECONDS: number;
  RUNBRIDGE_MAX_CONCURRENT_OPERATIONS: number;
  RUNBRIDGE_CA_FILE: string;
  RUNBRIDGE_LEDGER_RETENTION_DAYS: number;
  RUNBRIDGE_CLOCK_SKEW_SECONDS: number;
  RUNBRIDGE_RUN_AS: string;
  LOG_LEVEL: string;
}

export function loadRunnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  return loadConfigOrExit<RunnerConfig>("runner", runnerEnvSchema, env);
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * The dispatcher, as `scheme://host:port`, when RUNBRIDGE_DISPATCHER_URL reaches it in clear text on
 * another machine (http:// or ws://, not to localhost, 127.0.0.0/8 or ::1); null otherwise. Allowed all
 * the same: a private network or a compose network's plain hop is the operator's choice to make.
 */
export function clearTextDispatcher(dispatcherUrl: string): string | null {
  const url = new URL(dispatcherUrl);
  if (url.protocol !== "http:" && url.protocol !== "ws:") return null;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const family = isIP(host);
  const local = family === 0 ? /(^|\.)localhost\.?$/.test(host) : LOOPBACK.check(host, family === 4 ? "ipv4" : "ipv6");
  return local ? null : `${url.protocol}//${url.host}`;
}

/** The dispatcher URL as logs may show it: a user and password in it (for a proxy's basic auth) are left out. */
export function dispatcherUrlForLogs(dispatcherUrl: string): string {
  const url = new URL(dispatcherUrl);
  url.username = "";
  url.password = "";
  return url.toString();
}

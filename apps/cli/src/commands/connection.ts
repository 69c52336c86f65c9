import { parseArgs, type ParseArgsConfig } from "node:util";
import { ApiClient, ApiError, NetworkError, UsageError, checkApiKey, checkApiUrl, cleartextWarning } from "../client/api";
import { ExitCode } from "../client/exit-codes";
import type { OutputSink } from "../client/types";

/** Flags every API command takes. The environment gives the defaults; flags override. */
export const CONNECTION_OPTIONS = {
  url: { type: "string" },
  "api-key": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

export interface Connection {
  client: ApiClient;
  sink: OutputSink;
}

export function consoleSink(quiet: boolean): OutputSink {
  // A reader that stops early (`| head`) must not crash the client: the operation is still followed to its end.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    note: (text) => {
      if (!quiet) process.stderr.write(`runbridge: ${text}\n`);
    },
  };
}

export function connect(values: { url?: string; "api-key"?: string; quiet?: boolean }, env: NodeJS.ProcessEnv = process.env): Connection {
  const url = values.url ?? env.RUNBRIDGE_URL;
  const apiKey = values["api-key"] ?? env.RUNBRIDGE_API_KEY;
  if (!url) throw new UsageError("no API URL: set RUNBRIDGE_URL or pass --url");
  checkApiUrl(url, "--url / RUNBRIDGE_URL");
  if (!apiKey) throw new UsageError("no API key: set RUNBRIDGE_API_KEY (an rca_ automation key) or pass --api-key");
  const key = checkApiKey(apiKey, "--api-key / RUNBRIDGE_API_KEY");
  const sink = consoleSink(values.quiet ?? false);
  // On stderr even under --quiet, which hides progress notes a script has no use for: this one says the key
  // itself is readable on the network, which nobody silencing progress meant to stop hearing. Once per run,
  // and it goes away the way it should, by using https://.
  const clear = cleartextWarning(url, "--url / RUNBRIDGE_URL");
  if (clear) sink.stderr(`runbridge: warning: ${clear}\n`);
  const client = new ApiClient({
    url,
    apiKey: key,
    notify: (m) => sink.note(m),
    userAgent: "runbridge-cli/0.1",
    maxAttempts: retryAttempts(env.RUNBRIDGE_RETRY_ATTEMPTS),
    answerWithinMs: requestTimeoutMs(env.RUNBRIDGE_REQUEST_TIMEOUT_SECONDS),
  });
  return { client, sink };
}

/**
 * RUNBRIDGE_RETRY_ATTEMPTS: how many times a request is tried on network errors (1-20, default 6).
 * RUNBRIDGE_REQUEST_TIMEOUT_SECONDS: how long a request may go unanswered before it is retried (1-3600,
 * default 30; a POST the gateway holds while the command runs gets more: see heldForMs).
 */
const retryAttempts = (raw: string | undefined) => wholeNumberSetting("RUNBRIDGE_RETRY_ATTEMPTS", raw, 20);
const requestTimeoutMs = (raw: string | undefined) => {
  const seconds = wholeNumberSetting("RUNBRIDGE_REQUEST_TIMEOUT_SECONDS", raw, 3600);
  return seconds === undefined ? undefined : seconds * 1000;
};

function wholeNumberSetting(name: string, raw: string | undefined, max: number): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  return n;
}

/**
 * A stray argument is not shown: the usual one is a secret, from `--env NAME "$VALUE"` (a space for
 * the `=`), and CI logs do not always mask it (Jenkins, unmasked GitLab variables).
 */
const ENV_HINT = 'Was --env NAME "$VALUE" meant as --env NAME="$VALUE" (or --env NAME, to pass this environment\'s value)?';
const STRAY_ARGUMENT = `unexpected argument (not shown: it may be a secret). ${ENV_HINT}`;

/**
 * parseArgs quotes the argument it could not place: a stray word, or an "unknown option" that is really
 * a value starting with "-" (a PEM key after `--env NAME `). Only what looks like an option name is shown.
 */
function parseErrorMessage(e: { code?: unknown; message: string }): string {
  if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return STRAY_ARGUMENT;
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /'([^']*)'/.exec(e.message)?.[1] ?? "";
    return /^--?[A-Za-z][\w-]{0,40}$/.test(option) ? `unknown option ${option}` : `unknown option (not shown: it may be a secret starting with "-"). ${ENV_HINT}`;
  }
  return e.message;
}

/**
 * node:util parseArgs, with its errors turned into usage errors. `positionals`: "after --" for a remote
 * command, whose words must follow `--` (a stray word before it would be taken into the command sent,
 * and stored); "any" for ids (`operations get ID`).
 */
export function parse<T extends ParseArgsConfig["options"]>(args: string[], options: T, positionals: "none" | "any" | "after --" = "none") {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: positionals !== "none", strict: true, tokens: true });
  } catch (err) {
    throw new UsageError(parseErrorMessage(err as { code?: unknown; message: string }));
  }
  if (positionals === "after --") {
    const dashes = parsed.tokens.find((t) => t.kind === "option-terminator")?.index ?? Number.POSITIVE_INFINITY;
    if (parsed.tokens.some((t) => t.kind === "positional" && t.index < dashes)) {
      throw new UsageError(`the command goes after --, as in: runbridge exec --server ID -- uptime. Before --, an ${STRAY_ARGUMENT}`);
    }
  }
  return parsed;
}

/** One required string flag. */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.trim() === "") throw new UsageError(`${flag} is required`);
  return value;
}

/** Exit code and message for an error; the message never holds the key or env values. */
export function reportError(err: unknown, usage?: string): number {
  if (err instanceof UsageError) {
    process.stderr.write(`runbridge: ${err.message}\n${usage ? `\n${usage}` : ""}`);
    return ExitCode.Usage;
  }
  if (err instanceof ApiError) {
    const hint =
      err.status === 401 ? " (check RUNBRIDGE_API_KEY: an automation key starting rca_)" : err.status === 403 ? " (the key's scopes do not allow this)" : "";
    const what = err.status >= 500 ? "the API failed to answer" : "the API refused the request";
    process.stderr.write(`runbridge: ${what}: HTTP ${err.status}: ${err.detail}${hint}\n`);
    return err.exitCode;
  }
  if (err instanceof NetworkError) {
    process.stderr.write(`runbridge: ${err.message}\n`);
    return err.exitCode;
  }
  throw err;
}

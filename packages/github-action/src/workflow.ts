import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";
import { EOL } from "node:os";

/**
 * The few GitHub Actions workflow commands and environment files this action
 * needs, written to the documented formats (no runtime dependency):
 * https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions
 */

type Env = Record<string, string | undefined>;

/** Command data escaping: %, CR and LF would otherwise end or corrupt the command. */
function escapeData(s: string): string {
  return s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}

function command(name: string, message: string): void {
  process.stdout.write(`::${name}::${escapeData(message)}${EOL}`);
}

/** An input as GitHub passes it: INPUT_<NAME upper-cased, spaces as _>, trimmed. */
export function getInput(name: string, env: Env = process.env): string {
  return (env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] ?? "").trim();
}

/** State saved by the main step, given back to the post step as STATE_<name>. */
export function getState(name: string, env: Env = process.env): string {
  return env[`STATE_${name}`] ?? "";
}

/** Hides a value in the job log. Multi-line values are masked line by line too, as GitHub advises. */
export function addMask(value: string): void {
  if (!value) return;
  command("add-mask", value);
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r?\n/)) if (line.trim()) command("add-mask", line);
  }
}

export const info = (message: string): void => void process.stdout.write(`${message}${EOL}`);
export const warning = (message: string): void => command("warning", message);
export const error = (message: string): void => command("error", message);
export const startGroup = (title: string): void => command("group", title);
export const endGroup = (): void => void process.stdout.write(`::endgroup::${EOL}`);

/**
 * Until `resume()`, the runner ignores workflow commands in the log, so remote
 * output cannot set outputs, add masks or inject anything else into the job.
 */
export function stopCommands(): { resume: () => void } {
  const token = `runbridge-${randomUUID()}`;
  process.stdout.write(`::stop-commands::${token}${EOL}`);
  return { resume: () => void process.stdout.write(`::${token}::${EOL}`) };
}

/**
 * Remote output printed into the log with workflow commands stopped, and the
 * step's own notes kept on lines of their own. Remote output may end
 * mid-line; `resume` (once, however often called) starts a line before the
 * command that resumes them, which must begin one.
 */
export function remoteOutput(): { write: (text: string) => void; note: (text: string) => void; resume: () => void } {
  const guard = stopCommands();
  let atLineStart = true;
  let resumed = false;
  const write = (text: string) => {
    if (!text) return;
    process.stdout.write(text);
    atLineStart = text.endsWith("\n");
  };
  return {
    write,
    note: (text) => write(`${atLineStart ? "" : "\n"}runbridge: ${text}\n`),
    resume: () => {
      if (resumed) return;
      resumed = true;
      if (!atLineStart) process.stdout.write("\n");
      guard.resume();
    },
  };
}

/** `name<<delimiter` blocks in a GITHUB_OUTPUT / GITHUB_STATE file (values may span lines). */
function appendFileCommand(fileVar: "GITHUB_OUTPUT" | "GITHUB_STATE", name: string, value: string, env: Env): boolean {
  const file = env[fileVar];
  if (!file) return false;
  const delimiter = `ghadelimiter_${randomUUID()}`;
  appendFileSync(file, `${name}<<${delimiter}${EOL}${value}${EOL}${delimiter}${EOL}`, "utf8");
  return true;
}

export function setOutput(name: string, value: string, env: Env = process.env): void {
  if (!appendFileCommand("GITHUB_OUTPUT", name, value, env)) warning(`GITHUB_OUTPUT is not set; output ${name} was not saved`);
}

export function saveState(name: string, value: string, env: Env = process.env): void {
  if (!appendFileCommand("GITHUB_STATE", name, value, env)) warning(`GITHUB_STATE is not set; the post step will not see ${name}`);
}

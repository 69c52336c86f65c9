import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { RUNNER_SCRIPT, freePort, nonLoopbackAddress, startNode } from "../helpers/processes";
import { ClientProc, ScriptedGateway, baseEnv, cli, sendJson } from "./cli-process";

/**
 * A runner, the CLI or the Action pointed at a plain http:// (or ws://) URL on another machine sends its
 * token or key, env values and commands readable on the network. It is allowed (private networks, the
 * compose network's plain hop) but said once at start; to loopback it is not. "Another machine" is an
 * address of this one other than loopback: the clients judge the URL, and the test's servers answer on it.
 */
describe("a plain-text URL to another machine is warned about at start", () => {
  const address = nonLoopbackAddress();
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-cleartext-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe("runner", () => {
    const TOKEN = `rbr_${"Ab3".repeat(14)}`;
    let boots = 0;

    /** The runner's warnings about its dispatcher URL, from its log up to "runner started" (logged after them). */
    async function warningsAtStart(dispatcherUrl: string): Promise<Array<Record<string, unknown>>> {
      const runner = startNode(RUNNER_SCRIPT, { RUNBRIDGE_DISPATCHER_URL: dispatcherUrl, RUNBRIDGE_RUNNER_TOKEN: TOKEN, RUNBRIDGE_STATE_DIR: path.join(dir, `state-${++boots}`) });
      try {
        await runner.waitForOutput(/"message":"runner started"/);
      } finally {
        await runner.stop("SIGKILL");
      }
      expect(runner.output).not.toContain(TOKEN);
      return runner.output
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => String(entry.message).includes("RUNBRIDGE_DISPATCHER_URL"));
    }

    it.each(["http", "ws"])("%s:// to another machine: one warning, saying what crosses in clear and what to do", async (scheme) => {
      const port = await freePort();
      const warnings = await warningsAtStart(`${scheme}://${address}:${port}/`);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: "warn", dispatcher: `${scheme}://${address}:${port}` });
      expect(warnings[0]?.message).toMatch(/not encrypted: the runner token, the commands with their env values .* registry passwords .* Use wss:\/\/ or https:\/\/.*TLS-terminating proxy/);
    });

    it.each(["http://127.0.0.1:9", "ws://127.8.9.10:9", "http://localhost:9", "ws://runners.localhost:9", "http://[::1]:9", `https://${address}:9`, `wss://${address}:9`])(
      "%s: no warning",
      async (url) => {
        expect(await warningsAtStart(url)).toEqual([]);
      },
    );
  });

  describe("CLI and GitHub Action", () => {
    // Every request is refused as the gateway refuses an unknown key: the client ends at once, having sent it.
    const refuseKey = () => new ScriptedGateway((_req, res) => sendJson(res, 401, { detail: "invalid API key" }));
    let remote: ScriptedGateway;
    let local: ScriptedGateway;
    beforeAll(async () => {
      [remote, local] = await Promise.all([refuseKey().start(address), refuseKey().start()]);
    });
    afterAll(async () => {
      await Promise.all([remote.stop(), local.stop()]);
    });

    const exec = (url: string, flags: string[] = []) => cli(["exec", ...flags, "--server", "srv", "--", "true"], baseEnv({ RUNBRIDGE_URL: url, RUNBRIDGE_API_KEY: "rca_cleartext_test" }));
    const hostOf = (url: string) => new URL(url).host;

    // --quiet hides the client's notes, not this: the key on the network in clear is not progress.
    it.each([[[]], [["--quiet"]]])("CLI %j: one warning on stderr for http:// to another machine, and the request goes ahead", async (flags) => {
      const before = remote.seen.length;
      const r = await exec(remote.url, flags);
      expect(r.code).toBe(77);
      expect(remote.seen.length).toBeGreaterThan(before);
      const warnings = r.stderr.split("\n").filter((line) => line.startsWith("runbridge: warning:"));
      expect(warnings).toEqual([
        `runbridge: warning: --url / RUNBRIDGE_URL is plain http:// to ${hostOf(remote.url)}: the automation key, the env values sent, and the commands and their output cross the network unencrypted, readable by anyone on the way. Use https:// (a TLS-terminating proxy in front of the gateway)`,
      ]);
      expect(r.stdout).toBe("");
    });

    it("CLI: no warning for http:// to loopback", async () => {
      const r = await exec(local.url);
      expect(r.code).toBe(77);
      expect(local.seen.length).toBeGreaterThan(0);
      expect(r.stderr).not.toMatch(/warning|plain http/);
    });

    /** The Action's main step, as GitHub runs it, to `url`; its whole log. */
    async function actionLog(url: string): Promise<string> {
      const step = mkdtempSync(path.join(dir, "step-"));
      for (const file of ["output", "state"]) writeFileSync(path.join(step, file), "");
      const proc = new ClientProc(
        "packages/github-action/dist/index.js",
        [],
        baseEnv({
          GITHUB_ACTIONS: "true",
          GITHUB_OUTPUT: path.join(step, "output"),
          GITHUB_STATE: path.join(step, "state"),
          INPUT_URL: url,
          "INPUT_API-KEY": "rca_cleartext_test",
          "INPUT_SERVER-ID": "srv",
          INPUT_COMMAND: "true",
        }),
      );
      expect(await proc.exited).toBe(1);
      return proc.stdout + proc.stderr;
    }

    it("Action: one ::warning:: for http:// to another machine, outside the log group", async () => {
      const log = await actionLog(remote.url);
      expect(log).toMatch(/::error::runbridge: the API refused the request: HTTP 401/);
      const warnings = log.split("\n").filter((line) => line.startsWith("::warning::"));
      expect(warnings).toEqual([
        `::warning::runbridge: input "url" is plain http:// to ${hostOf(remote.url)}: the automation key, the env values sent, and the commands and their output cross the network unencrypted, readable by anyone on the way. Use https:// (a TLS-terminating proxy in front of the gateway)`,
      ]);
      expect(log.indexOf("::warning::")).toBeLessThan(log.indexOf("::group::"));
    });

    it("Action: no warning for http:// to loopback", async () => {
      const log = await actionLog(local.url);
      expect(log).toMatch(/::error::runbridge: the API refused the request: HTTP 401/);
      expect(log).not.toContain("::warning::");
    });
  });
});

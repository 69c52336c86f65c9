import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "../helpers/processes";

const MAIN = path.join(ROOT, "apps/cli/dist/main.js");
const HOOK = path.join(ROOT, "tests/helpers/loaded-modules.cjs");
/** The server side's heavy dependencies: the database client, Redis, the queue, the logger. */
const SERVER_SIDE = /[\\/](@prisma|\.prisma|ioredis|bullmq|winston)[\\/]/;

/**
 * The installation's CLI runs once per CI step: loading the database client and the services' shared
 * code (which only `bootstrap` needs) cost every API command most of a second of start-up.
 */
describe("the runbridge CLI's start-up", () => {
  const run = (args: string[], env: Record<string, string> = {}) => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "rb-cli-modules-")), "loaded.json");
    const res = spawnSync(process.execPath, ["-r", HOOK, MAIN, ...args], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", LOADED_MODULES_FILE: file, ...env } });
    return { status: res.status, stderr: res.stderr, loaded: JSON.parse(readFileSync(file, "utf8")) as string[] };
  };

  it("loads none of the server side for help or an API command", () => {
    const help = run(["--help"]);
    expect(help.status).toBe(0);
    // An API command refused for its usage (no server given) has loaded everything it would need to send it.
    const exec = run(["exec", "--", "true"], { RUNBRIDGE_URL: "http://127.0.0.1:9", RUNBRIDGE_API_KEY: "rca_unused" });
    expect(exec.status).toBe(64);
    for (const { loaded } of [help, exec]) {
      expect(loaded.length).toBeGreaterThan(5);
      expect(loaded.filter((f) => SERVER_SIDE.test(f))).toEqual([]);
    }
  });

  it("bootstrap loads what it needs, and names a missing DATABASE_URL in its error (exit 1)", () => {
    const res = run(["bootstrap", "--tenant", "startup"]);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/invalid configuration:\n\s+- DATABASE_URL is required/);
    expect(res.loaded.some((f) => SERVER_SIDE.test(f))).toBe(true);
  });
});

import { spawnSync } from "node:child_process";
import path from "node:path";
import { ROOT } from "../helpers/processes";

/**
 * Every process checks its whole environment at boot and names every bad
 * variable at once, before it opens a single connection (the URLs below point
 * nowhere: reaching them would hang or fail differently).
 */
describe("configuration at boot", () => {
  const boot = (app: string, env: Record<string, string>) =>
    spawnSync(process.execPath, [path.join(ROOT, `apps/${app}/dist/main.js`)], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8", timeout: 15_000 });

  it.each([
    ["gateway", { DATABASE_URL: "mysql://nope", REDIS_URL: "http://nope", PORT: "eighty", RUNBRIDGE_ENCRYPTION_KEY: "short", LOG_LEVEL: "loud" }, ["DATABASE_URL", "REDIS_URL", "PORT", "RUNBRIDGE_ENCRYPTION_KEY", "LOG_LEVEL"]],
    ["dispatcher", { DISPATCHER_PORT: "-1", WORKER_CONCURRENCY: "0" }, ["DATABASE_URL", "RUNBRIDGE_ENCRYPTION_KEY", "DISPATCHER_PORT", "WORKER_CONCURRENCY"]],
    ["runner", { RUNBRIDGE_DISPATCHER_URL: "ftp://x", RUNBRIDGE_RUNNER_TOKEN: "rca_wrongkind" }, ["RUNBRIDGE_DISPATCHER_URL", "RUNBRIDGE_RUNNER_TOKEN"]],
  ] as const)("%s lists every bad variable and exits 78", (app, env, names) => {
    const r = boot(app, env);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`${app}: invalid configuration`);
    for (const name of names) expect(r.stderr).toMatch(new RegExp(`- .*${name}`));
    // The runner's token is a secret even when it is wrong: never echoed.
    if (app === "runner") expect(r.stderr).not.toContain("rca_wrongkind");
  });
});

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testDatabaseUrl, freshPrefix, testRedisUrl } from "../helpers/env";
import { Proc, ROOT, freePort } from "../helpers/processes";

/** The README's promises, exercised the way a new user would follow them. */
describe("README", () => {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");

  it("has a two-command Quick start, and CI runs its test command", () => {
    const quickStart = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(quickStart?.trim().split("\n")).toEqual(["pnpm install && pnpm dev", "pnpm test"]);
    const ci = readFileSync(path.join(ROOT, ".ci/run"), "utf8");
    expect(ci).toMatch(/^pnpm install --frozen-lockfile$/m);
    expect(ci).toMatch(/^pnpm test$/m);
  });

  it("`pnpm --silent runbridge bootstrap --tenant NAME` prints one JSON line", () => {
    const out = execFileSync("pnpm", ["--silent", "runbridge", "bootstrap", "--tenant", "readme-co"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: testDatabaseUrl() },
    }).toString();
    const lines = out.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "")).toEqual({ tenant_id: expect.stringMatching(/^[0-9a-f-]{36}$/), api_key: expect.stringMatching(/^rbk_/) });
  });

  it("`pnpm dev` starts the system and prints a curl command that works as pasted", async () => {
    const [port, dport] = [await freePort(), await freePort()];
    // What `pnpm dev` runs once `pnpm build` is done (the test command already built).
    const dev = new Proc(
      spawn(process.execPath, [path.join(ROOT, "scripts/dist/dev.js")], {
        cwd: ROOT,
        env: {
          ...process.env,
          DATABASE_URL: testDatabaseUrl(),
          REDIS_URL: testRedisUrl(),
          REDIS_PREFIX: freshPrefix("dev"),
          PORT: String(port),
          DISPATCHER_PORT: String(dport),
          RUNBRIDGE_DEV_DIR: mkdtempSync(path.join(tmpdir(), "rb-dev-")),
        },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    try {
      await dev.waitForOutput(/^curl .*$/m, 60_000);
      const curl = /^curl .*$/m.exec(dev.output)?.[0] ?? "";
      expect(curl).toContain(`http://127.0.0.1:${port}/api/automation/v1/exec`);
      const answer = JSON.parse(execFileSync("sh", ["-c", curl]).toString());
      expect(answer).toMatchObject({ status: "completed", exit_code: 0, stdout: expect.stringMatching(/^hello from /) });
    } finally {
      await dev.stop("SIGINT");
    }
    expect(dev.output).toMatch(/runner.*shutting down|disconnect/);
  });
});

describe("docker-compose.dev.yml", () => {
  it("is what `pnpm dev` and the README tell a new user to start, and it is a valid compose file", () => {
    const dev = readFileSync(path.join(ROOT, "scripts/src/dev.ts"), "utf8");
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const command = "docker compose -f docker-compose.dev.yml up -d postgres redis";
    expect(dev).toContain(command);
    expect(readme).toContain(command);
    // Offline validation with Debian's docker-compose (no Docker engine runs here).
    execFileSync("docker-compose", ["-f", path.join(ROOT, "docker-compose.dev.yml"), "config", "-q"], { cwd: ROOT });
    const services = execFileSync("docker-compose", ["-f", path.join(ROOT, "docker-compose.dev.yml"), "config", "--services"], { cwd: ROOT }).toString().trim().split("\n");
    expect(services.sort()).toEqual(["postgres", "redis"]);
  });
});

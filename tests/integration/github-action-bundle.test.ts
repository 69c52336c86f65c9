import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "../helpers/processes";

/**
 * GitHub runs packages/github-action/dist/*.js as committed, without a build:
 * the committed bundle must be exactly what the build makes from the sources
 * today (after a change, run `pnpm --filter @runbridge/github-action build`
 * and commit dist/).
 */
describe("GitHub Action bundle", () => {
  it("is up to date with src/ (and the CLI client it bundles)", () => {
    const out = mkdtempSync(path.join(tmpdir(), "rb-gha-build-"));
    execFileSync(process.execPath, [path.join(ROOT, "packages/github-action/build.mjs"), "--outdir", out], { cwd: ROOT, stdio: "pipe" });
    for (const file of ["index.js", "post.js"]) {
      const fresh = readFileSync(path.join(out, file), "utf8");
      const committed = readFileSync(path.join(ROOT, "packages/github-action/dist", file), "utf8");
      expect(committed === fresh ? "up to date" : `dist/${file} is stale: rebuild with \`pnpm --filter @runbridge/github-action build\``).toBe("up to date");
    }
  });

  it("declares a node24 action with main and post entries that exist", () => {
    const yml = readFileSync(path.join(ROOT, "packages/github-action/action.yml"), "utf8");
    expect(yml).toMatch(/^runs:\n {2}using: node24\n {2}main: dist\/index\.js\n {2}post: dist\/post\.js\n/m);
    for (const input of ["url", "api-key", "operation", "server-id", "application-id", "command", "working-directory", "env", "timeout", "container", "credential-id", "registry-url"]) {
      expect(yml).toMatch(new RegExp(`^ {2}${input}:\\n {4}description: `, "m"));
    }
    for (const output of ["operation-id", "exit-code", "stdout"]) expect(yml).toMatch(new RegExp(`^ {2}${output}:\\n {4}description: `, "m"));
  });
});

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "../helpers/processes";

/**
 * apps/cli/standalone/runbridge.cjs is what CI pipelines download and run with
 * plain Node (examples/ fetch it); it must match the sources and need nothing
 * installed. (examples.test runs it against the real stack.)
 */
describe("standalone CLI bundle", () => {
  const committed = path.join(ROOT, "apps/cli/standalone/runbridge.cjs");

  it("is up to date with apps/cli/src", () => {
    const out = mkdtempSync(path.join(tmpdir(), "rb-cli-build-"));
    execFileSync(process.execPath, [path.join(ROOT, "apps/cli/build-standalone.mjs"), "--outdir", out], { cwd: ROOT, stdio: "pipe" });
    const fresh = readFileSync(path.join(out, "runbridge.cjs"), "utf8");
    expect(readFileSync(committed, "utf8") === fresh ? "up to date" : "stale: rebuild with `pnpm build:cli-standalone`").toBe("up to date");
  });

  it("is executable and requires only Node's own modules", () => {
    expect(statSync(committed).mode & 0o111).not.toBe(0);
    const requires = [...readFileSync(committed, "utf8").matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
    expect(requires.length).toBeGreaterThan(0);
    for (const r of requires) expect(r).toMatch(/^node:/);
    const help = execFileSync(committed, ["--help"], { env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` } }).toString();
    expect(help).toMatch(/runbridge exec --server ID/);
  });
});

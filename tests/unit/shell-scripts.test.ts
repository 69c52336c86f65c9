import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "../helpers/processes";

/**
 * The shell scripts run where our tests cannot follow them: the runner's
 * installer as root on users' servers, the image assembly inside docker build,
 * CI's entry point on a fresh machine. ShellCheck (Debian's `shellcheck`,
 * which `.ci/run` installs) catches what breaks there: unquoted expansions,
 * bashisms under /bin/sh, failures that `set -e` does not see.
 */
function shellcheck(args: string[]) {
  const res = spawnSync("shellcheck", args, { cwd: ROOT, encoding: "utf8" });
  if (res.error) throw new Error(`shellcheck could not run (${res.error.message}): install it with "apt-get install -y shellcheck"`);
  return res;
}

/** Every tracked file that starts with a sh or bash shebang, wherever it lives and whatever its name. */
function trackedShellScripts(): string[] {
  const res = spawnSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`git ls-files failed: ${res.stderr}`);
  return res.stdout
    .split("\0")
    .filter((file) => file !== "")
    .filter((file) => {
      try {
        return /^#!\s*\/(?:usr\/)?bin\/(?:env\s+)?(?:sh|bash)\b/.test(readFileSync(path.join(ROOT, file), "utf8").slice(0, 64));
      } catch {
        return false; // Tracked but deleted in the working tree.
      }
    })
    .sort();
}

describe("shell scripts", () => {
  const scripts = trackedShellScripts();

  it("are found by their shebang", () => {
    expect(scripts).toEqual(expect.arrayContaining([".ci/run", "deploy/runner/install.sh", "docker/assemble.sh", "examples/curl/runbridge-exec.sh"]));
  });

  it("pass ShellCheck with nothing to report", () => {
    const res = shellcheck(["--format=gcc", ...scripts]);
    expect({ status: res.status, findings: res.stdout.trim().split("\n").filter(Boolean) }).toEqual({ status: 0, findings: [] });
  });

  it("would be caught: ShellCheck reports an unquoted expansion in a script like ours", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "shellcheck-"));
    try {
      const bad = path.join(dir, "bad.sh");
      writeFileSync(bad, '#!/bin/sh\nset -eu\nstate_dir=$1\nrm -rf $state_dir/work\n');
      const res = shellcheck(["--format=gcc", bad]);
      expect(res.status).not.toBe(0);
      expect(res.stdout).toContain("SC2086");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

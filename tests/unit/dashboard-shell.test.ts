import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployCurl, shellQuote } from "../../apps/dashboard/web/src/shell";

/**
 * Commands the dashboard offers to paste carry values other users of the tenant chose (an
 * application's deploy branch): run by bash, they must pass exactly those values and run nothing else.
 */
describe("dashboard shell snippets", () => {
  const dirs: string[] = [];
  const emptyDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), "rb-shell-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  /** Runs the snippet in bash with `curl` replaced by a function printing its arguments, one per NUL. */
  const argsOf = (snippet: string, cwd: string) =>
    execFileSync("bash", ["--norc", "--noprofile", "-c", `curl() { printf '%s\\0' "$@"; }\n${snippet}`], { cwd, env: { PATH: process.env.PATH ?? "", RUNBRIDGE_API_KEY: "rca_test" } })
      .toString()
      .split("\0")
      .slice(0, -1);

  it("quotes any string to itself", () => {
    const dir = emptyDir();
    for (const s of ["", "plain", "it's", "a'b'c", "$(touch pwned)", "`touch pwned`", '"; touch pwned; "', "\\'", "line\nbreak", "'$IFS'"]) {
      expect(execFileSync("bash", ["--norc", "--noprofile", "-c", `printf '%s' ${shellQuote(s)}`], { cwd: dir }).toString()).toBe(s);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it("sends a hostile deploy branch as the commit_ref, in valid JSON, and runs nothing", () => {
    const dir = emptyDir();
    const branch = `main'$(touch\${IFS}pwned)'"\`touch pwned2\`\\`;
    const args = argsOf(deployCurl("https://rb.example.com", "0b6c6a7e-1f0e-4c55-9d6f-1b1a9f0e2c3d", branch), dir);
    expect(readdirSync(dir)).toEqual([]);
    expect(args.slice(0, 4)).toEqual(["-sS", "-X", "POST", "https://rb.example.com/api/automation/v1/deploy"]);
    expect(args).toContain("Authorization: Bearer rca_test");
    const body = args[args.indexOf("-d") + 1] ?? "";
    expect(JSON.parse(body)).toEqual({ application_id: "0b6c6a7e-1f0e-4c55-9d6f-1b1a9f0e2c3d", commit_ref: branch });
  });

  it("leaves commit_ref out when none is given, as the dialog's own request does", () => {
    const args = argsOf(deployCurl("http://127.0.0.1:8080", "0b6c6a7e-1f0e-4c55-9d6f-1b1a9f0e2c3d", "  "), emptyDir());
    expect(JSON.parse(args[args.indexOf("-d") + 1] ?? "")).toEqual({ application_id: "0b6c6a7e-1f0e-4c55-9d6f-1b1a9f0e2c3d" });
  });
});

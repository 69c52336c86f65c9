import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface DockerCall {
  argv: string[];
  stdin: string;
}

/**
 * A fake `docker` executable to put first on a runner's PATH (no Docker
 * engine on test machines). Each call records its arguments (one per line)
 * and everything it read on stdin; `failWith` makes a subcommand exit
 * non-zero and `delay` makes it slow.
 */
export class FakeDocker {
  readonly binDir: string;
  readonly recordDir: string;

  constructor() {
    const root = mkdtempSync(path.join(tmpdir(), "rb-fake-docker-"));
    this.binDir = path.join(root, "bin");
    this.recordDir = path.join(root, "calls");
    mkdirSync(this.binDir);
    mkdirSync(this.recordDir);
    const script = `#!/bin/sh
dir='${this.recordDir}'
n="$(date +%s%N)-$$"
for a in "$@"; do printf '%s\\n' "$a"; done > "$dir/$n.argv.tmp"
cat > "$dir/$n.stdin"
mv "$dir/$n.argv.tmp" "$dir/$n.argv"
if [ -f "$dir/sleep-$1" ]; then sleep "$(cat "$dir/sleep-$1")"; fi
if [ -f "$dir/exit-$1" ]; then
  echo "Error response from daemon: fake failure of docker $1" >&2
  exit "$(cat "$dir/exit-$1")"
fi
case "$1" in
  login) echo "Login Succeeded" ;;
  logout) echo "Removing login credentials for $2" ;;
  restart) echo "$2" ;;
  *) echo "fake docker: $*" ;;
esac
`;
    writeFileSync(path.join(this.binDir, "docker"), script);
    chmodSync(path.join(this.binDir, "docker"), 0o755);
  }

  /** PATH for the runner: the fake first, then the usual. */
  get path(): string {
    return `${this.binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`;
  }

  /** Calls so far, oldest first. */
  calls(): DockerCall[] {
    return readdirSync(this.recordDir)
      .filter((f) => f.endsWith(".argv"))
      .sort()
      .map((f) => {
        const base = path.join(this.recordDir, f.slice(0, -".argv".length));
        const argv = readFileSync(`${base}.argv`, "utf8").split("\n").slice(0, -1);
        return { argv, stdin: existsSync(`${base}.stdin`) ? readFileSync(`${base}.stdin`, "utf8") : "" };
      });
  }

  /** Makes `docker <subcommand>` exit with `code` (and a message on stderr) until `succeed`. */
  failWith(subcommand: string, code: number): void {
    writeFileSync(path.join(this.recordDir, `exit-${subcommand}`), String(code));
  }

  succeed(subcommand: string): void {
    rmSync(path.join(this.recordDir, `exit-${subcommand}`), { force: true });
  }

  /** Makes `docker <subcommand>` take `seconds` before answering (0 = at once again). */
  delay(subcommand: string, seconds: number): void {
    const file = path.join(this.recordDir, `sleep-${subcommand}`);
    if (seconds > 0) writeFileSync(file, String(seconds));
    else rmSync(file, { force: true });
  }
}

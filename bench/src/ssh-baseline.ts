import { execFile, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, chmodSync } from "node:fs";
import net from "node:net";
import { userInfo } from "node:os";
import path from "node:path";
import { interleavedLatency, sampler, type LatencyResult, type Operation } from "./load";
import { ensureDebianPackage } from "./debian";
import { freePort, onCleanup, startChild, stopChild, until } from "./procs";

const SSHD = "/usr/sbin/sshd";

export interface SshResult {
  fresh?: LatencyResult;
  multiplexed?: LatencyResult;
  /** runbridge's exec, measured in the blocks between the SSH samples: what the SSH figures are compared with. */
  exec?: LatencyResult;
  skipped?: string;
}

export interface SshSettings {
  freshSamples: number;
  muxSamples: number;
  /** Alternating blocks of fresh, multiplexed and exec samples. */
  blocks: number;
  /** runbridge's exec of `true`, measured alongside (as many samples as multiplexed SSH). */
  exec: Operation;
}

function run(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 30_000 }, (err) => resolve(!err)));
}

/**
 * OpenSSH on loopback, as CI tools that open a fresh connection per step use
 * it: a private sshd (own port, host key and config, accepting only a key
 * generated here), then `ssh host true` fresh and over a ControlMaster, taking
 * turns with runbridge's exec so the ratios compare the same moments.
 *
 * The sshd is leaner than a distribution's default (no PAM session, no rc
 * files): SSH's figures are, if anything, better than on a real server.
 */
export async function sshBaseline(dir: string, logDir: string, settings: SshSettings, log: (line: string) => void): Promise<SshResult> {
  const missing = ensureDebianPackage(SSHD, "openssh-server", log);
  if (missing) return { skipped: missing };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // sshd's privilege separation directory, needed when it runs as root (a non-root sshd does without).
  try {
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  } catch {
    /* not root: sshd runs unprivileged for this user only */
  }
  const hostKey = path.join(dir, "host_ed25519");
  const clientKey = path.join(dir, "client_ed25519");
  for (const key of [hostKey, clientKey]) {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key], { encoding: "utf8" });
    if (r.status !== 0) return { skipped: `ssh-keygen failed: ${r.stderr.trim()}` };
  }
  const authorized = path.join(dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`, "utf8"), { mode: 0o600 });
  const port = await freePort();
  const user = userInfo().username;
  const config = path.join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      // Only the key generated for this run is accepted, for this user only.
      `AuthorizedKeysFile ${authorized}`,
      `AllowUsers ${user}`,
      user === "root" ? "PermitRootLogin prohibit-password" : "PermitRootLogin no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "UsePAM no",
      "StrictModes no",
      "UseDNS no",
      "MaxStartups 100:30:200",
      // See SetEnv below.
      "AcceptEnv SHLVL",
      "MaxSessions 100",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  chmodSync(dir, 0o700);
  const sshd = startChild("sshd", SSHD, ["-D", "-e", "-f", config], { logDir });
  onCleanup(() => stopChild(sshd));
  try {
    await until("sshd to listen", () => new Promise((resolve) => net.connect(port, "127.0.0.1").once("connect", function (this: net.Socket) {
      this.destroy();
      resolve(true);
    }).once("error", () => resolve(false))), 10_000);
  } catch {
    return { skipped: `sshd did not start; see ${path.join(logDir, "sshd.log")}` };
  }

  // bash sources ~/.bashrc and /etc/bash.bashrc for commands run by sshd unless it is a
  // nested shell; on a box whose rc files do slow work (pyenv init, …) that would be
  // measured as SSH's cost. SHLVL=1 makes the remote bash skip them, as a lean server would.
  const base = ["-F", "/dev/null", "-o", "SetEnv=SHLVL=1", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", clientKey, "-p", String(port)];
  const target = `${user}@127.0.0.1`;
  const fresh: Operation = () => run("ssh", [...base, target, "true"]);
  if (!(await fresh())) return { skipped: `ssh to the private sshd failed; see ${path.join(logDir, "sshd.log")}` };
  const control = path.join(dir, "cm-%C");
  const muxArgs = [...base, "-o", "ControlMaster=auto", "-o", `ControlPath=${control}`, "-o", "ControlPersist=120"];
  const mux: Operation = () => run("ssh", [...muxArgs, target, "true"]);
  let masterClosed: Promise<boolean> | undefined;
  const closeMaster = (): Promise<boolean> => (masterClosed ??= run("ssh", [...muxArgs, "-O", "exit", target]));
  onCleanup(() => closeMaster().then(() => undefined));

  log(`ssh fresh (${settings.freshSamples} samples), multiplexed and exec (${settings.muxSamples} each), in ${settings.blocks} alternating blocks ...`);
  const measured = await interleavedLatency(
    {
      fresh: { sample: sampler(fresh), samples: settings.freshSamples, warmup: 2 },
      // The first call opens the master connection; the warm-up keeps it out of the samples.
      multiplexed: { sample: sampler(mux), samples: settings.muxSamples, warmup: 5 },
      exec: { sample: sampler(settings.exec), samples: settings.muxSamples, warmup: 5 },
    },
    settings.blocks,
  );
  // Done with SSH: the master connection and sshd go now, not at the end of the run.
  await closeMaster();
  await stopChild(sshd);
  return measured;
}

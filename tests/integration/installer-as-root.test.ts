import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { PrivateMachine, privateMachineUnavailable } from "../helpers/private-machine";
import { ROOT, type Proc } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

const INSTALL = path.join(ROOT, "deploy/runner/install.sh");
const STATE = "/var/lib/runbridge";

/**
 * deploy/runner/install.sh as it runs on a server: as root, without --root,
 * so that it creates the runner's account with useradd, adds it to the docker
 * group, moves an old install's home with usermod and hands the state
 * directory over with chown — in a private machine (tests/helpers/private-machine.ts)
 * whose /etc, /opt and /var/lib are copies, so this machine's accounts are
 * never changed. packaging.test.ts covers the rest of the script under --root.
 * Needs root and mount namespaces, which CI has; elsewhere it is skipped, saying why.
 */
const unavailable = privateMachineUnavailable(ROOT);
const describeAsRoot = unavailable === null ? describe : describe.skip;

describeAsRoot(`deploy/runner/install.sh as root on a server${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let stack: TestStack;
  let bundle: string;
  const machines: PrivateMachine[] = [];
  const procs: Proc[] = [];

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, "deploy/runner/build-bundle.mjs")], { cwd: ROOT, stdio: "pipe" });
    bundle = path.join(ROOT, "apps/runner/dist/bundle/runbridge-runner.cjs");
    stack = await TestStack.start();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    await stack.stop();
    await closeTestPrisma();
    for (const m of machines) m.remove();
  });

  /** A new machine with a docker group, as one with Docker installed has. */
  const newMachine = () => {
    const m = PrivateMachine.create();
    machines.push(m);
    // Accounts of the tests' names that the host happens to have are removed from the copy.
    m.sh("for u in runbridge deployer; do if id \"$u\" >/dev/null 2>&1; then userdel \"$u\"; fi; done; getent group docker >/dev/null || groupadd --system docker");
    return m;
  };

  // With sudo, install.sh checks its reboot rule with visudo; without it, it says reboots will fail (.ci/run installs sudo).
  const hasSudo = spawnSync("sh", ["-c", "command -v sudo && command -v visudo"]).status === 0;
  const install = (m: PrivateMachine, args: string[], input = "") => {
    const res = m.run(["sh", INSTALL, "--no-start", "--bundle", bundle, ...args], { input });
    const sudoWarning = hasSudo || args.includes("root") || args.includes("--upgrade") ? "" : "warning: sudo is not installed, so reboot operations will fail; install sudo or use --user root\n";
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: sudoWarning });
    return res.stdout;
  };

  const owner = (m: PrivateMachine, machinePath: string) => {
    const s = statSync(m.file(machinePath));
    return { uid: s.uid, gid: s.gid, mode: s.mode & 0o777 };
  };

  /** The runner started as the installed unit starts it: as root, with the unit's environment, env file and working directory. */
  const startAsUnit = (m: PrivateMachine): Proc => {
    const unit = readFileSync(m.file("/etc/systemd/system/runbridge-runner.service"), "utf8");
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    const assign = (line: string) => {
      const kv = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
      if (kv) env[kv[1]!] = kv[2]!.replace(/^"(.*)"$/, "$1");
    };
    for (const line of unit.split("\n")) if (line.startsWith("Environment=")) assign(line.slice("Environment=".length));
    const envFile = /^EnvironmentFile=(.+)$/m.exec(unit)?.[1];
    for (const line of readFileSync(m.file(envFile ?? "/missing"), "utf8").split("\n")) assign(line);
    const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1]?.split(" ") ?? [];
    const cwd = /^WorkingDirectory=(.+)$/m.exec(unit)?.[1] ?? "/missing";
    const proc = m.start(execStart, { env, cwd });
    procs.push(proc);
    return proc;
  };

  it("creates a system account for the runner, owning the state directory; the runner, started as the unit starts it, runs commands as it", async () => {
    const m = newMachine();
    expect(m.account("runbridge")).toBeNull();
    const fx = await createFixture();
    const out = install(m, ["--url", `http://127.0.0.1:${stack.dispatcherPorts[0]}`, "--token", "-"], `${fx.runnerToken}\n`);
    expect(out).toContain("created system user runbridge");

    const account = m.account("runbridge");
    expect(account).toMatchObject({ home: `${STATE}/home`, shell: "/usr/sbin/nologin" });
    // A system account: below the first uid useradd gives people.
    expect(account!.uid).toBeLessThan(1000);
    expect(m.groupMembers("docker")).toContain("runbridge");
    for (const dir of [STATE, `${STATE}/work`, `${STATE}/home`]) expect(owner(m, dir)).toEqual({ uid: account!.uid, gid: account!.gid, mode: 0o700 });
    expect(owner(m, "/etc/runbridge/runner.env")).toEqual({ uid: 0, gid: 0, mode: 0o600 });
    expect(owner(m, "/etc/sudoers.d/runbridge-runner")).toEqual({ uid: 0, gid: 0, mode: 0o440 });
    expect(readFileSync(m.file("/etc/sudoers.d/runbridge-runner"), "utf8")).toMatch(/^runbridge ALL=\(root\) NOPASSWD: \/sbin\/shutdown -r now$/m);

    const runner = startAsUnit(m);
    await stack.waitRunnerConnected(fx.server.id);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: 'id -un; id -Gn | tr " " "\\n" | grep -x docker; pwd; echo "$HOME"' });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `runbridge\ndocker\n${STATE}/work\n${STATE}/home\n` });
    // What the runner wrote in its state directory is the account's, as the next start needs.
    const ledger = owner(m, `${STATE}/ledger`);
    expect({ uid: ledger.uid, gid: ledger.gid }).toEqual({ uid: account!.uid, gid: account!.gid });
    await runner.stop();
  });

  it("upgrades an install of an earlier version, whose account had the state directory as its home: the home moves, the ledger stays", () => {
    const m = newMachine();
    const fx = { runnerToken: `rbr_${"U".repeat(42)}` };
    // What an earlier version's install.sh left: the account's home is the
    // state directory, which holds the ledger and the dot files commands made;
    // commands ran there; the unit started the runner as the account (User=).
    m.sh(
      [
        `useradd --system --home-dir ${STATE} --no-create-home --shell /usr/sbin/nologin runbridge`,
        `mkdir -p ${STATE}/ledger ${STATE}/.docker /opt/runbridge /etc/runbridge /etc/systemd/system`,
        `echo op-1 > ${STATE}/ledger/started.log`,
        `echo '{"auths":{}}' > ${STATE}/.docker/config.json`,
        `chown -R runbridge:runbridge ${STATE} && chmod 0700 ${STATE}`,
        `printf 'RUNBRIDGE_DISPATCHER_URL=https://d.example.com\\nRUNBRIDGE_RUNNER_TOKEN=${fx.runnerToken}\\nRUNBRIDGE_STATE_DIR=${STATE}\\nRUNBRIDGE_WORKDIR=${STATE}\\nLOG_LEVEL=info\\n' > /etc/runbridge/runner.env`,
        "chmod 0600 /etc/runbridge/runner.env",
        `printf '[Service]\\nUser=runbridge\\nEnvironmentFile=/etc/runbridge/runner.env\\nExecStart=/usr/bin/node /opt/runbridge/runbridge-runner.cjs\\nWorkingDirectory=${STATE}\\n' > /etc/systemd/system/runbridge-runner.service`,
        "echo old > /opt/runbridge/runbridge-runner.cjs",
      ].join("\n"),
    );
    const before = m.account("runbridge")!;
    expect(before.home).toBe(STATE);

    const out = install(m, ["--upgrade"]);
    expect(out).toContain(`moved runbridge's home directory from ${STATE} to ${STATE}/home`);
    expect(m.account("runbridge")).toEqual({ ...before, home: `${STATE}/home` });
    expect(readFileSync(m.file(`${STATE}/home/.docker/config.json`), "utf8")).toBe('{"auths":{}}\n');
    expect(existsSync(m.file(`${STATE}/.docker`))).toBe(false);
    expect(readFileSync(m.file(`${STATE}/ledger/started.log`), "utf8")).toBe("op-1\n");
    for (const dir of [STATE, `${STATE}/work`, `${STATE}/home`]) expect(owner(m, dir)).toEqual({ uid: before.uid, gid: before.gid, mode: 0o700 });
    expect(readFileSync(m.file("/etc/runbridge/runner.env"), "utf8")).toMatch(new RegExp(`^RUNBRIDGE_WORKDIR=${STATE}/work$`, "m"));
    const unit = readFileSync(m.file("/etc/systemd/system/runbridge-runner.service"), "utf8");
    expect(unit).toMatch(/^Environment=RUNBRIDGE_RUN_AS=runbridge$/m);
    expect(unit).not.toMatch(/^User=/m);
    expect(readFileSync(m.file("/opt/runbridge/runbridge-runner.cjs"))).toEqual(readFileSync(bundle));
  });

  it("hands a state directory set elsewhere (RUNBRIDGE_STATE_DIR, kept) to the new account too when re-run with --user", () => {
    const m = newMachine();
    const token = `rbr_${"S".repeat(42)}`;
    install(m, ["--url", "https://d.example.com", "--token", token]);
    m.sh(
      [
        "mkdir -p /var/lib/rb-state/ledger && echo op-1 > /var/lib/rb-state/ledger/started.log && chown -R runbridge:runbridge /var/lib/rb-state",
        "sed -i 's#^RUNBRIDGE_STATE_DIR=.*#RUNBRIDGE_STATE_DIR=/var/lib/rb-state#' /etc/runbridge/runner.env",
      ].join("\n"),
    );
    install(m, ["--url", "https://d.example.com", "--token", token, "--user", "deployer"]);
    const deployer = m.account("deployer")!;
    expect(readFileSync(m.file("/etc/runbridge/runner.env"), "utf8")).toMatch(/^RUNBRIDGE_STATE_DIR=\/var\/lib\/rb-state$/m);
    for (const p of ["/var/lib/rb-state", "/var/lib/rb-state/ledger/started.log"]) expect({ p, ...owner(m, p) }).toMatchObject({ p, uid: deployer.uid, gid: deployer.gid });
  });

  it("refuses a node another account could replace, since the service starts it as root", () => {
    const m = newMachine();
    // A node under someone's own directory (nvm in a home, say), first on PATH as with `sudo env PATH=$PATH`.
    m.sh(`mkdir -p /opt/alice/bin && ln -s ${process.execPath} /opt/alice/bin/node-real && printf '#!/bin/sh\\nexec /opt/alice/bin/node-real "$@"\\n' > /opt/alice/bin/node && chmod 0755 /opt/alice/bin/node && chown -R 65534 /opt/alice`);
    const res = m.run(["sh", INSTALL, "--no-start", "--bundle", bundle, "--url", "https://d.example.com", "--token", `rbr_${"N".repeat(42)}`], {
      env: { PATH: `/opt/alice/bin:${process.env.PATH}` },
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/^install\.sh: \/opt\/alice\/bin\/node \(\/opt\/alice\/bin\/node\) is started as root by the runner's service, but .+ is not root's alone \(owner uid 65534, mode 755\)/m);
    expect(existsSync(m.file("/etc/systemd/system/runbridge-runner.service"))).toBe(false);
  });

  it("leaves the account's groups alone on a re-run for it: one taken out of docker stays out", () => {
    const m = newMachine();
    const token = `rbr_${"G".repeat(42)}`;
    install(m, ["--url", "https://d.example.com", "--token", token]);
    expect(m.groupMembers("docker")).toContain("runbridge");
    // As docs/operations.md advises where commands are not all trusted: docker membership is as good as root.
    m.sh("gpasswd -d runbridge docker >/dev/null");
    install(m, ["--url", "https://d.example.com", "--token", token]);
    expect(m.groupMembers("docker")).not.toContain("runbridge");
  });

  it("refuses to follow a symbolic link a command put in place of work/ or home/, leaving its target alone", () => {
    const m = newMachine();
    const token = `rbr_${"L".repeat(42)}`;
    install(m, ["--url", "https://d.example.com", "--token", token]);
    // What any command could do as the runner's account, which owns the state directory.
    m.sh(`runuser -u runbridge -- sh -c 'mv ${STATE}/home ${STATE}/home.old && ln -s /opt/runbridge ${STATE}/home'`);
    const before = owner(m, "/opt/runbridge");
    expect(before).toMatchObject({ uid: 0, gid: 0 });

    // The documented token rotation: a re-run.
    const res = m.run(["sh", INSTALL, "--no-start", "--bundle", bundle, "--url", "https://d.example.com", "--token", token]);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`^install\\.sh: ${STATE}/home is a symbolic link: .+remove it \\(or move it aside\\) and run again$`, "m"));
    expect(owner(m, "/opt/runbridge")).toEqual(before);
    expect(owner(m, "/opt/runbridge/runbridge-runner.cjs")).toMatchObject({ uid: 0, gid: 0 });
  });

  it("hands the state directory, ledger included, to another account when re-run with --user, and drops the sudo rule for root", () => {
    const m = newMachine();
    const token = `rbr_${"R".repeat(42)}`;
    install(m, ["--url", "https://d.example.com", "--token", token]);
    const first = m.account("runbridge")!;
    // What a runner leaves there as its account.
    m.sh(`mkdir -p ${STATE}/ledger && echo op-1 > ${STATE}/ledger/started.log && chown -R runbridge:runbridge ${STATE}/ledger`);

    const out = install(m, ["--url", "https://d.example.com", "--token", token, "--user", "deployer"]);
    expect(out).toContain("created system user deployer");
    const deployer = m.account("deployer")!;
    expect(deployer.uid).not.toBe(first.uid);
    for (const p of [STATE, `${STATE}/work`, `${STATE}/home`, `${STATE}/ledger`, `${STATE}/ledger/started.log`]) {
      const o = owner(m, p);
      expect({ path: p, uid: o.uid, gid: o.gid }).toEqual({ path: p, uid: deployer.uid, gid: deployer.gid });
    }
    expect(readFileSync(m.file("/etc/systemd/system/runbridge-runner.service"), "utf8")).toMatch(/^Environment=RUNBRIDGE_RUN_AS=deployer$/m);
    expect(readFileSync(m.file("/etc/sudoers.d/runbridge-runner"), "utf8")).toMatch(/^deployer ALL=\(root\) NOPASSWD: \/sbin\/shutdown -r now$/m);
    // The account it had before is left alone (it may own other things).
    expect(m.account("runbridge")).toEqual(first);

    const asRoot = install(m, ["--url", "https://d.example.com", "--token", token, "--user", "root"]);
    expect(asRoot).toContain("removed /etc/sudoers.d/runbridge-runner");
    expect(existsSync(m.file("/etc/sudoers.d/runbridge-runner"))).toBe(false);
    expect(owner(m, `${STATE}/ledger/started.log`)).toMatchObject({ uid: 0, gid: 0 });
    expect(readFileSync(m.file("/etc/runbridge/runner.env"), "utf8")).not.toContain("RUNBRIDGE_REBOOT_COMMAND");
  });
});

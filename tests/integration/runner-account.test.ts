import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { Proc, ROOT } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/** A system account for these tests' commands, as install.sh makes `runbridge`. */
const ACCOUNT = "rb-test-cmd";

function ensureAccount(): { uid: number; gid: number; home: string } {
  if (spawnSync("id", ["-u", ACCOUNT]).status !== 0) {
    execFileSync("useradd", ["--system", "--no-create-home", "--home-dir", `/var/lib/${ACCOUNT}`, "--shell", "/usr/sbin/nologin", ACCOUNT], { stdio: "pipe" });
  }
  const [, , uid, gid, , home] = execFileSync("getent", ["passwd", ACCOUNT], { encoding: "utf8" }).trim().split(":");
  return { uid: Number(uid), gid: Number(gid), home: home ?? "" };
}

/**
 * What a command can learn of the runner that started it ($PPID): its process name
 * (to show the parent is the runner itself: it names itself runbridge-runner, cut to 15
 * characters in /proc/<pid>/comm), and whether its environment, which
 * holds the token, can be read — "1" when the token is there to be read.
 */
const PROBE = [
  "id -un",
  'echo "HOME=$HOME"',
  "cat /proc/$PPID/comm",
  "if env_text=$(tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null); then printf '%s\\n' \"$env_text\" | grep -c '^RUNBRIDGE_RUNNER_TOKEN='; else echo unreadable; fi",
].join("; ");

/**
 * RUNBRIDGE_RUN_AS (apps/runner/src/account.ts): the installed service starts
 * the runner as root and it switches to its account, so that the commands it
 * runs as that account cannot read its token at /proc/$PPID/environ — which
 * they can when the runner is started as the account directly.
 */
describe("the runner's account", () => {
  const asRoot = process.getuid?.() === 0;
  let stack: TestStack;
  let dir: string;
  let bundle: string;
  const runners: Proc[] = [];

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, "deploy/runner/build-bundle.mjs")], { cwd: ROOT, stdio: "pipe" });
    // Readable by the account: the directory is the runner's cwd, and holds the state directories.
    dir = mkdtempSync(path.join(tmpdir(), "rb-account-"));
    chmodSync(dir, 0o755);
    bundle = path.join(dir, "runbridge-runner.cjs");
    copyFileSync(path.join(ROOT, "apps/runner/dist/bundle/runbridge-runner.cjs"), bundle);
    chmodSync(bundle, 0o644);
    stack = await TestStack.start();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(runners.map((r) => r.stop("SIGKILL")));
    await stack.stop();
    await closeTestPrisma();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A state directory of the account's own, as install.sh leaves /var/lib/runbridge. */
  const stateDirFor = (owner: { uid: number; gid: number } | null) => {
    const state = mkdtempSync(path.join(dir, "state-"));
    if (owner) chownSync(state, owner.uid, owner.gid);
    return state;
  };

  /** The bundled runner with only what the unit gives it; `prefix` runs it through another program (setpriv). */
  const start = (token: string, state: string, env: Record<string, string>, prefix: string[] = []) => {
    const [cmd, ...args] = [...prefix, process.execPath, bundle];
    const proc = new Proc(
      spawn(cmd!, args, {
        cwd: dir,
        env: {
          PATH: process.env.PATH,
          RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${stack.dispatcherPorts[0]}`,
          RUNBRIDGE_RUNNER_TOKEN: token,
          RUNBRIDGE_STATE_DIR: state,
          RUNBRIDGE_WORKDIR: state,
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    runners.push(proc);
    return proc;
  };

  const probe = async (fx: Awaited<ReturnType<typeof createFixture>>) => {
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: PROBE });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    return res.body as { stdout: string; stderr: string };
  };

  (asRoot ? it : it.skip)(`${asRoot ? "" : "(skipped: not root) "}started as root with RUNBRIDGE_RUN_AS, runs itself and its commands as the account, which cannot read its token`, async () => {
    const account = ensureAccount();
    const fx = await createFixture();
    const state = stateDirFor(account);
    const runner = start(fx.runnerToken, state, { RUNBRIDGE_RUN_AS: ACCOUNT });
    await stack.waitRunnerConnected(fx.server.id);

    const out = await probe(fx);
    expect(out.stdout).toBe(`${ACCOUNT}\nHOME=${account.home}\nrunbridge-runne\nunreadable\n`);
    expect(runner.output).toMatch(/"message":"runner switched account"/);
    expect(runner.output).not.toMatch(/can read this runner's environment/);
    // Its ledger is the account's: a later start (as root, switching again) can use it.
    const ledgerFiles = readdirSync(path.join(state, "ledger")).map((f) => statSync(path.join(state, "ledger", f)));
    expect(ledgerFiles.length).toBeGreaterThan(0);
    for (const s of [statSync(path.join(state, "ledger")), ...ledgerFiles]) expect({ uid: s.uid, gid: s.gid }).toEqual({ uid: account.uid, gid: account.gid });
    await runner.stop();
  });

  (asRoot ? it : it.skip)(`${asRoot ? "" : "(skipped: not root) "}without a state or working directory set, keeps both under the account's home, not root's`, async () => {
    const account = ensureAccount();
    // The account's home, as useradd --create-home would make it; its state directory, as the runner leaves it, removed after.
    mkdirSync(account.home, { recursive: true });
    chownSync(account.home, account.uid, account.gid);
    const state = path.join(account.home, ".runbridge");
    const fx = await createFixture();
    try {
      const runner = start(fx.runnerToken, "", { RUNBRIDGE_RUN_AS: ACCOUNT, RUNBRIDGE_STATE_DIR: undefined, RUNBRIDGE_WORKDIR: undefined } as unknown as Record<string, string>);
      await stack.waitRunnerConnected(fx.server.id);
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "pwd" });
      expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: `${account.home}\n` });
      expect(statSync(path.join(state, "ledger")).uid).toBe(account.uid);
      await runner.stop();
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  (asRoot ? it : it.skip)(`${asRoot ? "" : "(skipped: not root) "}says a working directory the account may not enter is not accessible to it, not that the shell could not start`, async () => {
    const account = ensureAccount();
    const fx = await createFixture();
    const runner = start(fx.runnerToken, stateDirFor(account), { RUNBRIDGE_RUN_AS: ACCOUNT });
    await stack.waitRunnerConnected(fx.server.id);
    // Root's own, closed to others: the directory itself, and one below it (whose stat fails on the parent).
    const closed = mkdtempSync(path.join(dir, "closed-"));
    chmodSync(closed, 0o700);
    const below = mkdtempSync(path.join(closed, "app-"));
    for (const cwd of [closed, below]) {
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true", working_directory: cwd });
      expect(res.body).toMatchObject({ status: "failed", error: `working directory ${cwd} is not accessible to the runner's account ${ACCOUNT} (permission denied on it or on a directory above it)` });
    }
    await runner.stop();
  });

  (asRoot ? it : it.skip)(`${asRoot ? "" : "(skipped: not root) "}started as the account directly, leaves its token readable to its commands (what the switch prevents)`, async () => {
    const account = ensureAccount();
    const fx = await createFixture();
    const runner = start(fx.runnerToken, stateDirFor(account), {}, ["setpriv", `--reuid=${account.uid}`, `--regid=${account.gid}`, "--init-groups"]);
    await stack.waitRunnerConnected(fx.server.id);
    expect((await probe(fx)).stdout).toMatch(new RegExp(`^${ACCOUNT}\\nHOME=.*\\nrunbridge-runne\\n1\\n$`));
    await runner.stop();
  });

  (asRoot ? it : it.skip)(`${asRoot ? "" : "(skipped: not root) "}refuses RUNBRIDGE_RUN_AS when not started as root, as a configuration error (78)`, async () => {
    const account = ensureAccount();
    const fx = await createFixture();
    const runner = start(fx.runnerToken, stateDirFor(account), { RUNBRIDGE_RUN_AS: "root" }, ["setpriv", `--reuid=${account.uid}`, `--regid=${account.gid}`, "--init-groups"]);
    expect((await runner.exited).code).toBe(78);
    expect(runner.output).toMatch(/RUNBRIDGE_RUN_AS=root needs the runner started as root/);
  });

  it("refuses an account the machine does not have, as a configuration error (78), before it connects", async () => {
    const fx = await createFixture();
    const state = stateDirFor(null);
    const runner = start(fx.runnerToken, state, { RUNBRIDGE_RUN_AS: "rb-no-such-account" });
    expect((await runner.exited).code).toBe(78);
    expect(runner.output).toMatch(/RUNBRIDGE_RUN_AS names no account on this machine: rb-no-such-account/);
    expect(runner.output).not.toMatch(/connected to dispatcher/);
    // Nothing of its own was written either.
    expect(readdirSync(state)).toEqual([]);
  });
});

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { type Proc, waitFor } from "../helpers/processes";
import { SmallDisk } from "../helpers/small-disk";
import { useStack } from "../helpers/suite";

/** The runner's attempts to open its ledger again (LEDGER_RETRY_MS), and a margin for a loaded machine. */
const RETRY_MS = 10_000;
const RECOVERY_TIMEOUT_MS = RETRY_MS + 5_000;
const ENTRY_ERROR = /runner cannot record operations: state directory/g;

/**
 * A runner whose state directory cannot be written at boot — its disk full, or read-only — on a real
 * tmpfs filled up or remounted: it connects all the same, every operation fails at once with the
 * reason (not 409, not a time-out), its server shows it degraded with that reason (runner_problem)
 * rather than plainly connected, and once the disk is fixed it takes operations again without a
 * restart, first ending what an earlier runner process left running, as a boot does. Needs root and
 * mounts; elsewhere it is skipped, saying why.
 */
const unavailable = SmallDisk.unavailable();
const describeWithMounts = unavailable === null ? describe : describe.skip;

describeWithMounts(`a runner whose state directory cannot be written at boot${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  // A command's working directory off the small disk (a full or read-only one would be what fails it).
  let workdir = "";
  beforeAll(() => {
    workdir = mkdtempSync(path.join(tmpdir(), "rb-work-"));
  });
  const suite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "5" } });
  const disks: SmallDisk[] = [];
  afterAll(async () => {
    // The runners hold files on the disks: gone first (the stack stops them again, harmlessly).
    await Promise.all(suite.stack?.runners.map((r) => r.stop("SIGKILL")) ?? []);
    const failures: unknown[] = [];
    for (const d of disks) {
      try {
        d.unmount();
      } catch (err) {
        failures.push(err);
      }
    }
    rmSync(workdir, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, "could not unmount every test disk");
  });
  const disk = () => {
    const d = SmallDisk.mount();
    disks.push(d);
    const stateDir = path.join(d.dir, "state");
    mkdirSync(stateDir);
    return { disk: d, stateDir };
  };
  const exec = (fx: { token: string; server: { id: string } }, command: string, timeoutSeconds = 30) =>
    suite.stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command, timeout_seconds: timeoutSeconds });
  const startRunner = (fx: { runnerToken: string; server: { id: string } }, stateDir: string) =>
    suite.stack.startRunner(fx.runnerToken, fx.server.id, { stateDir, env: { RUNBRIDGE_WORKDIR: workdir } });
  /** An exec that must fail at once, saying why; the command is never run. */
  const refused = async (fx: { token: string; server: { id: string } }, cause: string) => {
    const askedAt = Date.now();
    const res = await exec(fx, "echo must-not-run");
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { status: "failed", exit_code: null, error: expect.stringContaining(cause) } });
    expect(Date.now() - askedAt).toBeLessThan(4_000);
    expect((await suite.stack.api().get(`/api/automation/v1/operations/${res.body.operation_id}`).set("Authorization", `Bearer ${fx.token}`)).body).toMatchObject({ status: "failed", error: res.body.error });
    return res.body.error as string;
  };
  const recovered = (runner: Proc) => runner.waitForOutput(/the state directory can be used again/, RECOVERY_TIMEOUT_MS);
  /** The server as the management API shows it, in its view and in the list (the two must agree). */
  const shown = async (fx: { apiKey: string; server: { id: string } }) => {
    const api = (p: string) => suite.stack.api().get(p).set("Authorization", `Bearer ${fx.apiKey}`);
    const [one, list] = await Promise.all([api(`/api/v1/servers/${fx.server.id}`), api("/api/v1/servers")]);
    const listed = (list.body.data as { id: string }[]).find((s) => s.id === fx.server.id);
    expect(listed).toEqual(one.body);
    return one.body as { runner_connected: boolean; runner_problem: string | null; runner_problem_since: string | null };
  };
  /** Shown degraded with `cause` from the moment it is shown connected (said in its handshake), until it recovers. */
  const shownDegraded = async (fx: { apiKey: string; server: { id: string } }, cause: string) =>
    expect(await shown(fx)).toEqual(
      expect.objectContaining({ runner_connected: true, runner_problem: `runner cannot record operations, so it refuses every operation until it can: ${cause}`, runner_problem_since: expect.any(String) }),
    );
  const shownRecovered = (fx: { apiKey: string; server: { id: string } }) =>
    waitFor(async () => ((await shown(fx)).runner_problem === null ? shown(fx) : null), 5_000, "the server shown without a problem").then((s) =>
      expect(s).toMatchObject({ runner_connected: true, runner_problem_since: null }),
    );

  it("disk full: connects, fails each operation at once saying so, and once space is freed ends the earlier process's orphan and runs operations, never restarted", async () => {
    const fx = await createFixture();
    const { disk: d, stateDir } = disk();
    // An earlier runner process on this disk, killed mid-command: its start record is all that says the command ran.
    const first = await startRunner(fx, stateDir);
    // Sent now (then() sends it), answered "running" once the request's wait (EXEC_MAX_WAIT_SECONDS) is over.
    const asked = exec(fx, "sleep 5", 60).then((res) => res);
    await first.waitForOutput(/operation started/);
    first.child.kill("SIGKILL");
    await first.exited;
    d.fill();

    const runner = await startRunner(fx, stateDir);
    const bootedAt = Date.now();
    const error = await refused(fx, `state directory ${stateDir} cannot be written (ENOSPC: no space left on device); free space on its disk`);
    // Not shown as plainly connected: the management API (and the dashboard) says what the runner refuses for.
    await shownDegraded(fx, `state directory ${stateDir} cannot be written (ENOSPC: no space left on device); free space on its disk`);
    expect(error).toBe(`runner refused the operation: it cannot record operations: state directory ${stateDir} cannot be written (ENOSPC: no space left on device); free space on its disk; not started`);
    expect(runner.output).not.toContain("must-not-run");
    const orphan = await asked;
    expect(orphan.body.status).toBe("running");
    // Still running: only the ledger knows what became of it, and it is not read without its lock.
    expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: orphan.body.operation_id } })).toMatchObject({ status: "running" });

    // Through at least one more failed attempt: said once, not at each.
    await new Promise((r) => setTimeout(r, Math.max(0, bootedAt + RETRY_MS + 1_500 - Date.now())));
    expect(runner.output.match(ENTRY_ERROR)).toHaveLength(1);

    d.free();
    await recovered(runner);
    await shownRecovered(fx);
    const ended = await waitUntilEnded(orphan.body.operation_id, 10_000);
    expect(ended).toMatchObject({ status: "failed", error: expect.stringMatching(/runner restarted while the operation was running; its outcome is unknown/) });
    const res = await exec(fx, "echo recovered");
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "recovered\n" });
    expect(runner.running).toBe(true);
    expect(runner.output.match(ENTRY_ERROR)).toHaveLength(1);
  }, 90_000);

  it("read-only filesystem: connects, fails each operation at once saying so, and runs operations once remounted read-write, never restarted", async () => {
    const fx = await createFixture();
    const { disk: d, stateDir } = disk();
    d.readOnly();
    const runner = await startRunner(fx, stateDir);
    await refused(fx, `state directory ${stateDir} cannot be written (EROFS: read-only file system); remount its filesystem read-write`);
    await shownDegraded(
      fx,
      `state directory ${stateDir} cannot be written (EROFS: read-only file system); remount its filesystem read-write (the kernel remounts one read-only after disk errors: see its log)`,
    );
    d.readWrite();
    await recovered(runner);
    await shownRecovered(fx);
    const res = await exec(fx, "echo recovered");
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "recovered\n" });
    expect(runner.running).toBe(true);
  }, 60_000);

  it("a state directory another runner uses stays fatal, also on a full disk: the second runner exits saying so and never connects", async () => {
    const fx = await createFixture();
    const other = await createFixture();
    const { disk: d, stateDir } = disk();
    const first = await startRunner(fx, stateDir);
    d.fill();
    const second = await suite.stack.startRunner(other.runnerToken, other.server.id, { stateDir, env: { RUNBRIDGE_WORKDIR: workdir }, waitConnected: false });
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.output).toContain(`state directory ${stateDir} is in use by another runner (pid ${first.pid})`);
    expect(second.output).not.toMatch(ENTRY_ERROR);
    expect((await exec(other, "true")).status).toBe(409);
    expect(first.running).toBe(true);
  }, 60_000);
});

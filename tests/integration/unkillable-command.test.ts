import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitUntilEnded } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/** cgroup v1's freezer: a frozen task does not die of SIGKILL until it is thawed, as one in uninterruptible sleep. */
const FREEZER = "/sys/fs/cgroup/freezer";
const canFreeze = existsSync(`${FREEZER}/cgroup.procs`) && process.getuid?.() === 0;

/**
 * A command stuck where even SIGKILL cannot end it (a hung disk or network mount): the operation ends
 * anyway, some seconds after the SIGKILL, rather than stay running — with its CI job, its cancel and
 * the application's next deploys waiting on it — for as long as the process is stuck.
 */
describe("a command that outlives SIGKILL", () => {
  // The exec is answered "running" after 1 s, before its timeout.
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } }, { env: { RUNBRIDGE_KILL_GRACE_SECONDS: "1" } });
  const cgroup = path.join(FREEZER, `rb-test-${process.pid}`);
  afterAll(() => {
    if (!existsSync(cgroup)) return;
    writeFileSync(path.join(cgroup, "freezer.state"), "THAWED");
    // Its task, SIGKILLed while frozen, dies once thawed; the group can go when it is empty.
    return waitFor(async () => readFileSync(path.join(cgroup, "cgroup.procs"), "utf8").trim() === "" || null, 10_000, "the frozen task to die").then(() => rmdirSync(cgroup));
  });

  (canFreeze ? it : it.skip)(`${canFreeze ? "" : "(skipped: needs root and the cgroup v1 freezer) "}ends at its timeout as timed out, saying the process would not die`, async () => {
    const { stack, fx } = suite;
    const pidFile = path.join(mkdtempSync(path.join(tmpdir(), "rb-unkillable-")), "pid");
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: `echo $$ > ${pidFile}; exec sleep 600`, timeout_seconds: 3 });
    expect(res.status).toBe(200);
    const pid = await waitFor(async () => (existsSync(pidFile) && readFileSync(pidFile, "utf8").trim()) || null, 10_000, "the command's pid");
    mkdirSync(cgroup);
    writeFileSync(path.join(cgroup, "cgroup.procs"), pid);
    writeFileSync(path.join(cgroup, "freezer.state"), "FROZEN");
    await waitFor(async () => readFileSync(path.join(cgroup, "freezer.state"), "utf8").trim() === "FROZEN" || null, 5_000, "the freeze");

    // Timeout 3 s, SIGKILL 1 s later, given up 10 s after that.
    const ended = await waitUntilEnded(res.body.operation_id, 30_000);
    expect(ended.status).toBe("timeout");
    expect(ended.error).toMatch(new RegExp(`timed out after 3 s; the process group was killed; its shell \\(pid ${pid}\\) had still not exited 10 s after SIGKILL`));
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/State:\s+D/);
  }, 60_000);
});

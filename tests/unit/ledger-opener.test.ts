import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createLogger } from "@runbridge/common";
import { Ledger } from "../../apps/runner/src/ledger";
import { LedgerOpener, storageFailure } from "../../apps/runner/src/ledger-opener";
import { waitFor } from "../helpers/processes";
import { SmallDisk } from "../helpers/small-disk";

/**
 * Opening the runner's ledger on a state directory that cannot be written: a real failing write (the
 * lock's temporary file a link to /dev/full, where every write fails with ENOSPC; or, as root, a real
 * tmpfs filled up and remounted read-only), the runner's own logger.
 */
describe("ledger opener", () => {
  let dir: string;
  const open: Ledger[] = [];
  const disks: SmallDisk[] = [];
  /** The runner's logger, its console output silenced; each entry read as it leaves it. */
  function capture() {
    const lines: Array<{ level: string; message: string }> = [];
    const logger = createLogger("runner", "info");
    for (const t of logger.transports) t.silent = true;
    logger.on("data", (info: { level: string; message: string }) => lines.push(info));
    return { lines, logger };
  }
  /** For one attempt: the lock's temporary file, a link to /dev/full, is removed with the write that failed. */
  const fullDisk = () => {
    mkdirSync(path.join(dir, "ledger"), { recursive: true });
    symlinkSync("/dev/full", path.join(dir, `runner.lock.${process.pid}.tmp`));
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "ledger-opener-test-"));
  });
  afterEach(() => {
    for (const l of open.splice(0)) l.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(() => {
    for (const d of disks) d.unmount();
  });

  it("on a full disk opens nothing and says why; opens at a retry once there is room, as a boot would", async () => {
    const { lines, logger } = capture();
    fullDisk();
    const opener = new LedgerOpener(dir, logger, () => undefined, { retryMs: 20, reminderMs: 60_000 });
    expect(opener.problem).toBeNull();
    expect(opener.open()).toBeNull();
    expect(opener.refusal).toBe(`it cannot record operations: state directory ${dir} cannot be written (ENOSPC: no space left on device); free space on its disk; not started`);
    // What the runner's server shows meanwhile (runner:health): the same cause, said of every operation.
    expect(opener.problem).toBe(`runner cannot record operations, so it refuses every operation until it can: state directory ${dir} cannot be written (ENOSPC: no space left on device); free space on its disk`);
    expect(lines).toEqual([
      expect.objectContaining({
        level: "error",
        message: `runner cannot record operations: state directory ${dir} cannot be written (ENOSPC: no space left on device); free space on its disk. It stays connected and refuses every operation (each fails at once, saying this) until it can`,
      }),
    ]);
    // The failed write's temporary file (the link to /dev/full) is removed with it: the next attempt finds room.
    const ledger = await new Promise<Ledger>((resolve, reject) => opener.retry({ opened: resolve, failed: reject }));
    open.push(ledger);
    expect(opener.problem).toBeNull();
    // A ledger as a boot opens it: the directory is this process's now.
    expect(() => new Ledger(dir)).toThrow(/is in use by another runner/);
    expect(lines.slice(1)).toEqual([expect.objectContaining({ level: "info", message: "the state directory can be used again: the runner records and takes operations again" })]);
  });

  it("hands over a failure that stops a boot, met at a retry: another runner took the directory meanwhile", async () => {
    const { logger } = capture();
    fullDisk();
    const opener = new LedgerOpener(dir, logger, () => undefined, { retryMs: 50, reminderMs: 60_000 });
    expect(opener.open()).toBeNull();
    const failed = new Promise<unknown>((resolve, reject) => opener.retry({ opened: () => reject(new Error("opened a directory in use")), failed: resolve }));
    open.push(new Ledger(dir));
    expect(String(await failed)).toMatch(`state directory ${dir} is in use by another runner (pid ${process.pid})`);
  });

  it("waits out storage failures only; a permission, or anything else, stays fatal as at boot", () => {
    const failure = (code: string) => Object.assign(new Error(`${code}: something`), { code });
    expect(storageFailure("/s", failure("EDQUOT"))?.reason).toBe("state directory /s cannot be written (EDQUOT: disk quota exceeded); free space in the runner account's disk quota, or raise it");
    expect(storageFailure("/s", failure("EIO"))?.reason).toBe("state directory /s cannot be read or written (EIO: input/output error); check its disk (the kernel's log says more)");
    // As the state directory's lock gives it: the storage failure is the cause of its own error.
    expect(storageFailure("/s", new Error("state directory /s cannot be written (EROFS): …", { cause: failure("EROFS") }))?.code).toBe("EROFS");
    for (const code of ["EACCES", "EPERM", "ENOENT", "ENOTDIR"]) expect(storageFailure("/s", failure(code))).toBeNull();
    expect(storageFailure("/s", new Error("state directory /s is in use by another runner (pid 7)"))).toBeNull();
  });

  /** As root, a real tmpfs that stays full (or read-only) for as many attempts as it takes. */
  const unavailable = SmallDisk.unavailable();
  const asRoot = unavailable === null ? it : it.skip;
  const skipped = unavailable ? ` (skipped: ${unavailable})` : "";
  const smallStateDir = (): { disk: SmallDisk; stateDir: string } => {
    const disk = SmallDisk.mount("256k");
    disks.push(disk);
    const stateDir = path.join(disk.dir, "state");
    mkdirSync(stateDir);
    return { disk, stateDir };
  };
  const causes = (lines: Array<{ level: string; message: string }>) => lines.map((l) => [l.level, l.message.match(/\((E[A-Z]+): /)?.[1]]);

  asRoot(`says why once however often it tries, and again when the cause changes: a full disk, then remounted read-only, then full again (said within the hour: not again)${skipped}`, async () => {
    const { lines, logger } = capture();
    const { disk, stateDir } = smallStateDir();
    disk.fill();
    const opener = new LedgerOpener(stateDir, logger, () => undefined, { retryMs: 10, reminderMs: 60_000 });
    expect(opener.open()).toBeNull();
    // The problem the runner reports (runner:health) after each attempt that leaves the ledger shut, each change once.
    const problems: string[] = [];
    const stillShut = () => {
      const problem = opener.problem ?? "none";
      if (problems.at(-1) !== problem) problems.push(problem);
    };
    opener.retry({ opened: (l) => open.push(l), stillShut, failed: () => undefined });
    // Attempts every 10 ms meanwhile (fewer on a loaded machine): still the one line.
    await sleep(200);
    expect(causes(lines)).toEqual([["error", "ENOSPC"]]);
    disk.readOnly();
    await waitFor(async () => lines.length >= 2 || null, 10_000, "the new cause to be said");
    // Back to the first cause (read-write again, still full): said already within the hour, so not again.
    disk.readWrite();
    await waitFor(async () => (opener.refusal.includes("ENOSPC") ? true : null), 10_000, "the first cause again");
    await sleep(100);
    opener.stop();
    expect(causes(lines)).toEqual([
      ["error", "ENOSPC"],
      ["error", "EROFS"],
    ]);
    expect(opener.refusal).toContain(`state directory ${stateDir} cannot be written (ENOSPC: no space left on device)`);
    expect(problems.map((p) => p.match(/^runner cannot record operations, so it refuses every operation until it can: state directory .* \((E[A-Z]+): /)?.[1])).toEqual(["ENOSPC", "EROFS", "ENOSPC"]);
  });

  asRoot(`says it again, as a warning, now and then while the cause stays the same${skipped}`, async () => {
    const { lines, logger } = capture();
    const { disk } = smallStateDir();
    disk.readOnly();
    const opener = new LedgerOpener(path.join(disk.dir, "state"), logger, () => undefined, { retryMs: 10, reminderMs: 150 });
    const saidAt = performance.now();
    expect(opener.open()).toBeNull();
    opener.retry({ opened: (l) => open.push(l), failed: () => undefined });
    await waitFor(async () => lines.length >= 2 || null, 10_000, "a reminder");
    const remindedAfter = performance.now() - saidAt;
    opener.stop();
    // Attempts every 10 ms, and nothing said between the error and a reminder at least 150 ms later.
    // (A third line only if this test's process stalled for another 150 ms.)
    expect(causes(lines)).toEqual([["error", "EROFS"], ...lines.slice(1).map(() => ["warn", "EROFS"])]);
    expect(remindedAfter).toBeGreaterThanOrEqual(150);
    expect(lines[1]?.message).toMatch(/^runner still cannot record operations: state directory /);
  });
});

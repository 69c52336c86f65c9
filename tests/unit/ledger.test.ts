import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ledger } from "../../apps/runner/src/ledger";
import { runnerResult } from "../helpers/scripted-runner";

/**
 * The runner's ledger on a real directory. A new Ledger over the same
 * directory is what the next runner process sees after a crash.
 */
describe("runner ledger", () => {
  let dir: string;
  const open: Ledger[] = [];
  /** The ledger of the next runner process: the previous one has ended (it held the state directory). */
  const ledger = () => {
    for (const l of open.splice(0)) l.close();
    const l = new Ledger(dir);
    open.push(l);
    return l;
  };
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const result = (operationId: string) => runnerResult(operationId, { stdout: "ok\n", durationMs: 3, startedAt: "2026-11-28T10:00:00.000Z" });
  const startLog = () => readFileSync(path.join(dir, "ledger", "started.log"), "utf8");

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "ledger-test-"));
  });
  afterEach(() => {
    for (const l of open.splice(0)) l.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a start is on disk when begin resolves: the next process knows it as started, never as new", async () => {
    await ledger().begin(id(1), "2026-11-28T10:00:00.000Z");
    const next = ledger();
    expect(next.get(id(1))).toEqual({ operationId: id(1), state: "running", startedAt: "2026-11-28T10:00:00.000Z" });
    expect(next.orphans()).toEqual([id(1)]);
    expect(next.query([id(1), id(2)])).toEqual({ [id(1)]: { state: "running" }, [id(2)]: { state: "unknown" } });
  });

  it("a finished result survives, and compaction drops its start record without forgetting the operation", async () => {
    const first = ledger();
    await Promise.all([first.begin(id(1), "2026-11-28T10:00:00.000Z"), first.begin(id(2), "2026-11-28T10:00:01.000Z")]);
    await first.finish(result(id(1)));
    await first.prune(86_400_000);
    // Only the start still without a result is kept in the log.
    expect(startLog().trim().split("\n").map((l) => (JSON.parse(l) as { operationId: string }).operationId)).toEqual([id(2)]);

    const next = ledger();
    expect(next.get(id(1))).toMatchObject({ state: "finished", delivered: false, result: { stdout: "ok\n" } });
    expect(next.undelivered().map((r) => r.operationId)).toEqual([id(1)]);
    expect(next.orphans()).toEqual([id(2)]);
  });

  it("keeps the outbox across restarts: delivered results are marked, undelivered ones sent again", async () => {
    const first = ledger();
    await Promise.all([1, 2, 3].map((n) => first.begin(id(n), "2026-11-28T10:00:00.000Z")));
    await Promise.all([1, 2, 3].map((n) => first.finish(result(id(n)))));
    expect(first.undelivered().map((r) => r.operationId).sort()).toEqual([id(1), id(2), id(3)]);
    await first.markDelivered(id(1));
    await first.markDelivered(id(2));
    expect(first.undelivered().map((r) => r.operationId)).toEqual([id(3)]);
    // The dispatcher asks again for a result it may have missed.
    await first.markUndelivered(id(2));
    expect(first.undelivered().map((r) => r.operationId).sort()).toEqual([id(2), id(3)]);

    const next = ledger();
    expect(next.undelivered().map((r) => r.operationId).sort()).toEqual([id(2), id(3)]);
    // Known as finished and delivered; its result stays on disk, read back when asked for.
    expect(next.get(id(1))).toEqual({ operationId: id(1), state: "finished", delivered: true });
    expect(next.query([id(1)])).toEqual({ [id(1)]: { state: "finished", result: result(id(1)) } });
    // Delivered results past the retention period are forgotten; the others stay.
    expect(await next.prune(-1)).toBe(1);
    expect(next.get(id(1))).toBeUndefined();
    expect(ledger().get(id(1))).toBeUndefined();
  });

  it("keeps the start record of an operation whose result could not be written", async () => {
    const first = ledger();
    await first.begin(id(7), "2026-11-28T10:00:00.000Z");
    // The result's temporary file cannot be created: a directory is in its way.
    mkdirSync(path.join(dir, "ledger", `${id(7)}.json.tmp`));
    await expect(first.finish(result(id(7)))).rejects.toThrow();
    await first.prune(86_400_000);
    // Still known after a restart (as started, outcome unknown), so a redelivered start is never run again.
    expect(ledger().get(id(7))).toMatchObject({ state: "running" });
  });

  it("keeps knowing, in the same process, an operation whose result could not be written once it was delivered from memory", async () => {
    const first = ledger();
    await first.begin(id(8), "2026-11-28T10:00:00.000Z");
    mkdirSync(path.join(dir, "ledger", `${id(8)}.json.tmp`));
    await expect(first.finish(result(id(8)))).rejects.toThrow();
    // The dispatcher stored the result sent from memory; its file was never there to be renamed.
    await first.markDelivered(id(8)).catch(() => undefined);
    await first.prune(0);
    expect(first.get(id(8))).toMatchObject({ state: "finished" });
    expect(ledger().get(id(8))).toMatchObject({ state: "running" });
  });

  it("a re-send asked for while a delivery mark is queued never loses the result file", async () => {
    const first = ledger();
    const ids = Array.from({ length: 60 }, (_, i) => id(200 + i));
    await Promise.all(ids.map((x) => first.begin(x, "2026-11-28T10:00:00.000Z")));
    await Promise.all(ids.map((x) => first.finish(result(x))));
    await Promise.all(ids.map((x) => first.markDelivered(x)));
    // The dispatcher asks for the result again and confirms it at once: the two file steps must not race.
    for (let round = 0; round < 5; round++) await Promise.all(ids.map(async (x) => Promise.all([first.markUndelivered(x), first.markDelivered(x)])));
    const next = ledger();
    for (const x of ids) {
      expect(next.get(x)).toMatchObject({ state: "finished", delivered: true });
      expect(next.query([x])).toEqual({ [x]: { state: "finished", result: result(x) } });
    }
  });

  it("holds a delivered result on disk only, and reads it back for a redelivered start", async () => {
    const first = ledger();
    await first.begin(id(20), "2026-11-28T10:00:00.000Z");
    await first.finish({ ...result(id(20)), stdout: "x".repeat(100_000) });
    await first.markDelivered(id(20));
    // Out of memory once the mark is on disk.
    expect(first.get(id(20))).toEqual({ operationId: id(20), state: "finished", delivered: true, startedAt: "2026-11-28T10:00:00.000Z" });
    // The dispatcher offers the start again: the result goes back to the outbox, whole.
    await first.markUndelivered(id(20));
    expect(first.undelivered()).toEqual([{ ...result(id(20)), stdout: "x".repeat(100_000) }]);
  });

  it("loads delivered results by their file names, without reading them", async () => {
    const first = ledger();
    await first.begin(id(21), "2026-11-28T10:00:00.000Z");
    await first.finish(result(id(21)));
    await first.markDelivered(id(21));
    // Unreadable content: the next process still knows the operation as finished (never to be run again)...
    writeFileSync(path.join(dir, "ledger", `${id(21)}.delivered.json`), "not json");
    const next = ledger();
    expect(next.get(id(21))).toEqual({ operationId: id(21), state: "finished", delivered: true });
    expect(next.orphans()).toEqual([]);
    // ...and a redelivered start cannot resend what it cannot read: refused, still finished.
    await expect(next.markUndelivered(id(21))).rejects.toThrow();
    expect(next.get(id(21))).toMatchObject({ state: "finished", delivered: true });
    expect(next.undelivered()).toEqual([]);
    expect(next.query([id(21)])).toEqual({ [id(21)]: { state: "unknown" } });
  });

  it("starts after a compaction go to the compacted log, not to the file it replaced", async () => {
    const first = ledger();
    await Promise.all([first.begin(id(1), "2026-11-28T10:00:00.000Z"), first.begin(id(2), "2026-11-28T10:00:01.000Z")]);
    await first.finish(result(id(1)));
    await first.prune(86_400_000);
    await Promise.all([first.begin(id(3), "2026-11-28T10:00:03.000Z"), first.begin(id(4), "2026-11-28T10:00:04.000Z")]);
    // Compacted again, so the log is replaced while the ledger has already appended to the previous replacement.
    await first.finish(result(id(3)));
    await first.prune(86_400_000);
    await first.begin(id(5), "2026-11-28T10:00:05.000Z");
    expect(startLog().trim().split("\n").map((l) => (JSON.parse(l) as { operationId: string }).operationId)).toEqual([id(2), id(4), id(5)]);
    expect(ledger().orphans().sort()).toEqual([id(2), id(4), id(5)]);
  });

  it("rewrites the start log off the event loop, and starts made meanwhile go to the new log", async () => {
    const first = ledger();
    await Promise.all([first.begin(id(1), "2026-11-28T10:00:00.000Z"), first.begin(id(2), "2026-11-28T10:00:01.000Z")]);
    await first.finish(result(id(1)));
    // On a slow disk each of the rewrite's flushes takes seconds: timers, heartbeats and output must go on.
    let seenByATimer = "";
    setImmediate(() => (seenByATimer = startLog()));
    const pruned = first.prune(86_400_000);
    const during = first.begin(id(3), "2026-11-28T10:00:03.000Z");
    await Promise.all([pruned, during]);
    expect(seenByATimer.trim().split("\n")).toHaveLength(2);
    expect(startLog().trim().split("\n").map((l) => (JSON.parse(l) as { operationId: string }).operationId)).toEqual([id(2), id(3)]);
    expect(ledger().orphans().sort()).toEqual([id(2), id(3)]);
  });

  it("leaves the start log of an idle runner alone: nothing appended since it was last rewritten", async () => {
    const first = ledger();
    await first.begin(id(1), "2026-11-28T10:00:00.000Z");
    await first.finish(result(id(1)));
    await first.prune(86_400_000);
    const rewritten = statSync(path.join(dir, "ledger", "started.log")).ino;
    for (let hour = 0; hour < 3; hour++) await first.prune(86_400_000);
    expect(statSync(path.join(dir, "ledger", "started.log")).ino).toBe(rewritten);
    // A new process rewrites a log that still holds records, and leaves an empty one alone.
    const next = ledger();
    await next.prune(86_400_000);
    expect(statSync(path.join(dir, "ledger", "started.log")).ino).toBe(rewritten);
  });

  it("sets aside a result file that is not a ledger entry, and still knows its operation as started", async () => {
    const first = ledger();
    await first.begin(id(30), "2026-11-28T10:00:00.000Z");
    await first.begin(id(31), "2026-11-28T10:00:00.000Z");
    first.close();
    const file = (n: number) => path.join(dir, "ledger", `${id(n)}.json`);
    // Well-formed JSON of the wrong shape (bit rot, another version): a finished entry without its result,
    // and one that names another operation than its file does.
    writeFileSync(file(30), JSON.stringify({ operationId: id(30), state: "finished", delivered: false }));
    writeFileSync(file(31), JSON.stringify({ operationId: id(32), state: "running", startedAt: "2026-11-28T10:00:00.000Z" }));
    const errors: string[] = [];
    const next = new Ledger(dir, (message) => errors.push(message));
    open.push(next);
    expect(next.undelivered()).toEqual([]);
    expect(next.orphans().sort()).toEqual([id(30), id(31)]);
    expect(next.get(id(32))).toBeUndefined();
    expect(readdirSync(path.join(dir, "ledger")).filter((f) => f.endsWith(".bad")).sort()).toEqual([`${id(30)}.json.bad`, `${id(31)}.json.bad`]);
    expect(errors.filter((e) => /set aside/.test(e))).toHaveLength(2);
  });

  /** An operation finished, its start record compacted away: its result file is all that knows it. Then that file is overwritten. */
  const onlyItsResultFile = async (n: number, content: string) => {
    const first = ledger();
    await first.begin(id(n), "2026-11-28T10:00:00.000Z");
    await first.finish(result(id(n)));
    await first.prune(86_400_000);
    first.close();
    writeFileSync(path.join(dir, "ledger", `${id(n)}.json`), content);
  };

  it("keeps knowing the operation of a result file set aside after its start record was compacted away", async () => {
    await onlyItsResultFile(33, JSON.stringify({ operationId: id(33), state: "finished", delivered: false }));
    // Known as started, outcome unknown: a redelivered start is answered from the ledger, never run.
    expect(ledger().get(id(33))).toMatchObject({ operationId: id(33), state: "running" });
  });

  it("keeps knowing the operation of a result file that is not JSON at all (bit rot) after its start record was compacted away", async () => {
    await onlyItsResultFile(34, "\u0000\u0000{not json");
    expect(ledger().get(id(34))).toMatchObject({ operationId: id(34), state: "running" });
    expect(readdirSync(path.join(dir, "ledger"))).toContain(`${id(34)}.json.bad`);
  });

  it("is read as a view without the lock and without changing anything on disk", async () => {
    const first = ledger();
    await first.begin(id(35), "2026-11-28T10:00:00.000Z");
    await first.begin(id(36), "2026-11-28T10:00:00.000Z");
    await first.finish(result(id(36)));
    first.close();
    const ledgerDir = path.join(dir, "ledger");
    writeFileSync(path.join(ledgerDir, `${id(37)}.json`), "{torn");
    writeFileSync(path.join(ledgerDir, `${id(38)}.json.tmp`), "{half");
    const before = readdirSync(ledgerDir).sort();
    const view = Ledger.view(dir);
    expect(view.query([id(35), id(36), id(37), id(39)])).toEqual({
      [id(35)]: { state: "running" },
      [id(36)]: { state: "finished", result: expect.objectContaining({ operationId: id(36) }) },
      [id(37)]: { state: "running" },
      [id(39)]: { state: "unknown" },
    });
    // Nothing set aside, removed or locked: an owner opens it as if the view had never been.
    expect(readdirSync(ledgerDir).sort()).toEqual(before);
    expect(readdirSync(dir)).not.toContain("runner.lock");
    open.push(ledger());
    expect(readdirSync(ledgerDir)).toContain(`${id(37)}.json.bad`);
    // A state directory never used: nothing known.
    expect(Ledger.view(path.join(dir, "never-used")).get(id(35))).toBeUndefined();
  });

  it("names the cause when its state directory is a symlink to nowhere, instead of recursing without end", () => {
    const link = path.join(dir, "gone");
    symlinkSync(path.join(dir, "no-such-target", "deeper"), link);
    expect(() => new Ledger(link)).toThrow(/ENOENT/);
  });

  it("holds the state directory until a compaction under way is done, and takes no start once closed", async () => {
    const first = ledger();
    await first.begin(id(50), "2026-11-28T10:00:00.000Z");
    await first.finish(result(id(50)));
    const pruning = first.prune(86_400_000);
    first.close();
    await expect(first.begin(id(51), "2026-11-28T10:00:01.000Z")).rejects.toThrow("the ledger is closed");
    // Another runner must not write the start log the compaction is about to replace.
    expect(() => new Ledger(dir)).toThrow(/is in use by another runner/);
    await pruning;
    const next = ledger();
    await next.begin(id(52), "2026-11-28T10:00:02.000Z");
    expect(ledger().orphans()).toEqual([id(52)]);
  });

  it("skips start records that name no operation, and removes writes left unfinished", async () => {
    const first = ledger();
    await first.begin(id(40), "2026-11-28T10:00:00.000Z");
    first.close();
    appendFileSync(path.join(dir, "ledger", "started.log"), `${JSON.stringify({ operationId: "not-a-uuid", startedAt: "x" })}\n`);
    writeFileSync(path.join(dir, "ledger", `${id(41)}.json.tmp`), "{");
    writeFileSync(path.join(dir, "ledger", "started.log.tmp"), "");
    const errors: string[] = [];
    const next = new Ledger(dir, (message) => errors.push(message));
    open.push(next);
    expect(next.orphans()).toEqual([id(40)]);
    expect(errors).toEqual(["a start record that names no operation was skipped"]);
    expect(readdirSync(path.join(dir, "ledger")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("a compaction that fails (disk full) is reported, and the start log stays in use", async () => {
    const errors: string[] = [];
    const l = new Ledger(dir, (message) => errors.push(message));
    await l.begin(id(8), "2026-11-28T10:00:00.000Z");
    mkdirSync(path.join(dir, "ledger", "started.log.tmp"));
    await expect(l.prune(86_400_000)).resolves.toBe(0);
    expect(errors).toEqual(["could not compact the start log"]);
    await l.begin(id(9), "2026-11-28T10:00:01.000Z");
    l.close();
    expect(ledger().orphans().sort()).toEqual([id(8), id(9)]);
  });

  it("a start record torn by a power loss does not swallow the next one", async () => {
    await ledger().begin(id(1), "2026-11-28T10:00:00.000Z");
    appendFileSync(path.join(dir, "ledger", "started.log"), '{"operationId":"00000000-0000-4000-8000-0000000');
    await ledger().begin(id(3), "2026-11-28T10:00:03.000Z");
    const next = ledger();
    expect(next.orphans().sort()).toEqual([id(1), id(3)]);
  });

  it("a start write cut short at runtime (disk full) does not swallow the next start", () => {
    const outcome = startsAroundFailedWrite(dir, [id(1), id(2), id(3)]);
    // The write really failed part-way: the log ended mid-record before the next start.
    expect(outcome).toEqual({ error: "EFBIG", tornTail: true });
    // The next start must have landed on a line of its own, or after a crash it would not be known as started.
    expect(ledger().orphans().sort()).toEqual([id(1), id(3)]);
  });

  it("writes starts that arrive together in one go, and each is known at once", async () => {
    const l = ledger();
    const ids = Array.from({ length: 50 }, (_, i) => id(100 + i));
    const written = ids.map((x) => l.begin(x, "2026-11-28T10:00:00.000Z"));
    // Known before any of them is on disk: a second start for one of them is recognised meanwhile.
    expect(l.get(ids[49]!)).toMatchObject({ state: "running" });
    await Promise.all(written);
    expect(startLog().trim().split("\n")).toHaveLength(50);
    expect(ledger().orphans().sort()).toEqual(ids);
  });

  it("a second ledger on a state directory in use fails, naming the directory and the pid; once closed, the directory is free", async () => {
    const first = ledger();
    const inUse = `state directory ${dir} is in use by another runner (pid ${process.pid})`;
    expect(() => new Ledger(dir)).toThrow(inUse);
    // Another process (another pid) is refused the same way, and nothing it could have written is there.
    expect(inChild(dir, `try { new Ledger(dir); out("opened") } catch (err) { out(err.message) }`)).toContain(inUse);
    await first.begin(id(1), "2026-11-28T10:00:00.000Z");
    first.close();
    expect(inChild(dir, `const l = new Ledger(dir); out(l.orphans().join()); l.close()`)).toBe(id(1));
    expect(ledger().orphans()).toEqual([id(1)]);
  });

  it("says a state directory it cannot write to is the problem, and leaves no temporary lock file behind", () => {
    // A full disk: the lock's temporary file is a link to /dev/full, where every write fails with ENOSPC.
    mkdirSync(path.join(dir, "ledger"), { recursive: true });
    symlinkSync("/dev/full", path.join(dir, `runner.lock.${process.pid}.tmp`));
    expect(() => new Ledger(dir)).toThrow(`state directory ${dir} cannot be written (ENOSPC): the runner records there every operation it starts, and runs nothing it cannot record`);
    expect(readdirSync(dir).filter((f) => f.startsWith("runner.lock"))).toEqual([]);
  });

  it("says a state directory another runner uses is in use, also when the disk is full", () => {
    ledger();
    const inUse = `state directory ${dir} is in use by another runner (pid ${process.pid})`;
    // Another process whose lock file cannot be written (ENOSPC, its temporary file a link to /dev/full): in use is what
    // stops it, not the disk, which a runner waiting for the disk to be freed would take for a reason to wait.
    expect(inChild(dir, `require("node:fs").symlinkSync("/dev/full", require("node:path").join(dir, "runner.lock." + process.pid + ".tmp")); try { new Ledger(dir); out("opened") } catch (err) { out(err.message) }`)).toBe(
      `${inUse}; stop it first, or remove ${path.join(dir, "runner.lock")} if no runner is using the directory`,
    );
    expect(readdirSync(dir).filter((f) => f.startsWith("runner.lock"))).toEqual(["runner.lock"]);
  });

  it("takes over the lock of a runner that died without releasing it", () => {
    // A runner process killed while holding the directory: its lock file stays behind, its pid is gone.
    const deadPid = inChild(dir, `new Ledger(dir); out(String(process.pid)); process.exit(0)`);
    expect(readFileSync(path.join(dir, "runner.lock"), "utf8")).toBe(`${deadPid}\n`);
    ledger();
    expect(readFileSync(path.join(dir, "runner.lock"), "utf8")).toBe(`${process.pid}\n`);
    // This process's own pid in a lock it does not hold is stale too (a restarted container's runner is pid 1 again).
    for (const l of open.splice(0)) l.close();
    writeFileSync(path.join(dir, "runner.lock"), `${process.pid}\n`);
    expect(() => ledger()).not.toThrow();
    expect(() => new Ledger(dir)).toThrow(/is in use by another runner/);
  });

  it("refuses an id that is not an operation id before writing anything", () => {
    const l = ledger();
    expect(() => l.begin("../../etc/passwd", "2026-11-28T10:00:00.000Z")).toThrow(/invalid operation id/);
    expect(startLog()).toBe("");
    expect(l.get("../../etc/passwd")).toBeUndefined();
  });
});

/**
 * Node code for a child process that puts the runner's `Ledger`, compiled
 * from its TypeScript source by swc (the modules it imports too), in scope.
 */
const LOAD_LEDGER = `
  const Module = require("node:module");
  const { transformFileSync } = require("@swc/core");
  Module._extensions[".ts"] = (mod, file) =>
    mod._compile(transformFileSync(file, { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }).code, file);
  const { Ledger } = require(${JSON.stringify(path.join(__dirname, "../../apps/runner/src/ledger.ts"))});
`;

/** Runs `body` in another Node process with `Ledger` and `dir` in scope; returns what it passed to out(). */
function inChild(stateDir: string, body: string): string {
  const script = `
    ${LOAD_LEDGER}
    const [dir] = process.argv.slice(1);
    const out = (s) => process.stdout.write(s);
    ${body}
  `;
  return execFileSync(process.execPath, ["-e", script, stateDir], { encoding: "utf8" });
}

/**
 * In a separate Node process, begins the first start, then the second with the
 * file size limit lowered so the write is cut short and the rest fails
 * (EFBIG), as on a nearly full disk, then the third with room again: one
 * Ledger throughout, real failing writes, no mocked fs. A process of its own
 * because jest's workers no longer ignore SIGXFSZ (Node does) and would be
 * killed by it.
 */
function startsAroundFailedWrite(stateDir: string, [first, second, third]: string[]): { error: string; tornTail: boolean } {
  const script = `
    const { execFileSync } = require("node:child_process");
    const { readFileSync, statSync } = require("node:fs");
    ${LOAD_LEDGER}
    const [dir, first, second, third] = process.argv.slice(1);
    const log = dir + "/ledger/started.log";
    const fsize = (limit) => execFileSync("prlimit", ["--pid", String(process.pid), "--fsize=" + limit + ":"]);
    (async () => {
      const ledger = new Ledger(dir);
      await ledger.begin(first, "2026-11-28T10:00:00.000Z");
      fsize(statSync(log).size + 20);
      const error = await ledger.begin(second, "2026-11-28T10:00:02.000Z").then(() => "none", (err) => err.code);
      ledger.forget(second);
      fsize("unlimited");
      const tornTail = !readFileSync(log, "utf8").endsWith("\\n");
      await ledger.begin(third, "2026-11-28T10:00:03.000Z");
      ledger.close();
      process.stdout.write(JSON.stringify({ error, tornTail }));
    })();
  `;
  const out = execFileSync(process.execPath, ["-e", script, stateDir, first!, second!, third!], { encoding: "utf8" });
  return JSON.parse(out) as { error: string; tornTail: boolean };
}

import { close, closeSync, constants, existsSync, fsync, write as fsWrite, mkdirSync, open as openFd, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import type { LedgerQueryReply, OperationResult } from "@runbridge/contracts";
import { lockStateDir, type StateDirLock } from "./state-dir-lock";

/**
 * A delivered result is kept on disk only (its file is read back in the rare
 * case it is asked for again): held in memory for the whole retention period,
 * every result of a busy server would pile up there for a week — and a
 * larger runner process also makes each command's fork slower.
 */
export type LedgerEntry =
  | { operationId: string; state: "running"; startedAt: string }
  | { operationId: string; state: "finished"; startedAt: string; result: OperationResult; delivered: false }
  /** `result` only until the delivered mark is on disk; `startedAt` unknown for entries loaded from a file name. */
  | { operationId: string; state: "finished"; delivered: true; startedAt?: string; result?: OperationResult };

/** What a ledger read without owning it (Ledger.view) can answer. */
export type LedgerView = Pick<Ledger, "get" | "query">;

const STARTS_LOG = "started.log";
const OPERATION_ID = /^[0-9a-f-]{36}$/i;
const DELIVERED_SUFFIX = ".delivered.json";
/** Start records appended before the log is rewritten without the finished ones. */
const COMPACT_AFTER = 10_000;

/**
 * The runner's durable record of every operation it has started. It is what
 * makes execution at-most-once: a start for a known id is answered from here
 * and never run again, even after a power loss. Finished results that the
 * dispatcher has not acknowledged are the outbox.
 *
 * Two kinds of file, for two costs:
 * - starts are appended to one log opened with O_DSYNC: one write that returns
 *   once it is on disk, shared by all the starts that arrived meanwhile, on
 *   the path of every operation (a temporary file, fsync and rename per
 *   operation cost five thread-pool hops and two disk flushes instead);
 * - results go to one file per operation (written, fsynced, renamed), off the
 *   critical path: the result is sent while it is being written.
 * The log is rewritten, keeping only starts without a durable result, when
 * pruning and every COMPACT_AFTER starts.
 */
export class Ledger {
  private readonly dir: string;
  private readonly entries = new Map<string, LedgerEntry>();
  /** The last file step queued per operation: steps of one operation land in order. */
  private readonly writes = new Map<string, Promise<void>>();
  /** Finished and not yet delivered: the outbox, kept apart so sending never scans the whole ledger. */
  private readonly outbox = new Set<string>();
  /** Finished, but the result file could not be written (disk full...): the start record must stay. */
  private readonly unsaved = new Set<string>();
  /**
   * The start log's descriptor; null when a compaction replaced the log but
   * could not make the new one durably current: starts are then refused until
   * the log is reopened, never written to the replaced file.
   */
  private startsFd: number | null;
  private startsSinceCompaction = 0;
  private readonly pendingStarts: { line: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushing = false;
  /**
   * The log may end mid-record: torn by a power loss, or by a batch write that
   * failed part-way (disk full). The next batch then starts with "\n", or its
   * first record would be glued to the torn one and lost to the next process.
   */
  private startsTailTorn = false;
  private lock: StateDirLock | null;
  private closed = false;
  /** A compaction is rewriting the start log: the state directory's lock is released only after it. */
  private compacting = false;

  constructor(
    stateDir: string,
    /** Told about failures that cost nothing but space or time (compaction, pruning). */
    private readonly onError: (message: string, err: unknown) => void = () => undefined,
    /** "view": see Ledger.view. */
    private readonly access: "own" | "view" = "own",
  ) {
    this.dir = path.join(stateDir, "ledger");
    if (access === "view") {
      this.lock = null;
      this.startsFd = null;
      this.closed = true;
      if (existsSync(this.dir)) this.load();
      return;
    }
    makeDirs(this.dir);
    // Before reading anything: another runner's live operations would look like orphans, and compaction drop its starts.
    this.lock = lockStateDir(stateDir);
    try {
      this.load();
      this.startsFd = this.openStarts();
    } catch (err) {
      this.releaseLock();
      throw err;
    }
  }

  /**
   * What the ledger on disk knows, read without taking the state directory and without writing
   * anything (a full or read-only disk can still be read): for a runner that cannot open its ledger,
   * to tell a start an earlier runner process recorded from one never seen. Only while no live
   * runner holds the directory (its lock says so), as nothing writes to it then. Throws when the
   * ledger cannot be read.
   */
  static view(stateDir: string, onError?: (message: string, err: unknown) => void): LedgerView {
    return new Ledger(stateDir, onError, "view");
  }

  private load(): void {
    for (const file of readdirSync(this.dir)) {
      if (file.endsWith(DELIVERED_SUFFIX)) {
        // Known by its name, not read: a week of results is not loaded to be kept on disk.
        const operationId = file.slice(0, -DELIVERED_SUFFIX.length);
        // Both files exist when a re-send was asked for and the old mark not yet removed: the re-send wins.
        if (OPERATION_ID.test(operationId) && !this.entries.has(operationId)) this.entries.set(operationId, { operationId, state: "finished", delivered: true });
        continue;
      }
      if (file.endsWith(".tmp")) {
        // A write that did not finish (a crash, a full disk): what it was writing is whole in the file it was to replace, or nowhere.
        if (this.access === "own") unlinkTmp(path.join(this.dir, file), this.onError);
        continue;
      }
      if (!file.endsWith(".json")) continue;
      // A read that fails (EIO) throws: a ledger opened without one of its results could run its operation again.
      let text: string;
      try {
        text = readFileSync(path.join(this.dir, file), "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      let entry: unknown;
      try {
        entry = JSON.parse(text);
      } catch {
        // A torn write (crash mid-write) is in the .tmp file, never here: this is bit rot, handled below.
        entry = undefined;
      }
      // Bit rot, or a file of another version: set aside (and said), rather than crash every start of the
      // runner — but its operation stays known, as started with its outcome unknown (its start record may
      // be compacted away already): a redelivered start is never run again.
      const named = file.slice(0, -".json".length);
      if (!isEntryOf(entry, named)) {
        const file_ = path.join(this.dir, file);
        const modified = this.access === "own" ? setAside(file_, this.onError) : modifiedAt(file_);
        if (OPERATION_ID.test(named)) this.entries.set(named, { operationId: named, state: "running", startedAt: modified });
        continue;
      }
      this.entries.set(entry.operationId, entry);
      if (entry.state === "finished" && !entry.delivered) this.outbox.add(entry.operationId);
    }
    const log = this.readStarts();
    this.startsTailTorn = log.length > 0 && !log.endsWith("\n");
  }

  get(operationId: string): LedgerEntry | undefined {
    return this.entries.get(operationId);
  }

  /**
   * Resolves once the start is on disk; the caller runs nothing and
   * acknowledges nothing before (on failure it forgets the entry). Known in
   * memory at once, so a second start for the same id is recognised even
   * while the first is being written. Starts that arrive while a write is in
   * flight go to disk together in the next one (group commit): one O_DSYNC
   * write per batch, whatever the concurrency.
   */
  begin(operationId: string, startedAt: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the ledger is closed"));
    this.file(operationId);
    this.entries.set(operationId, { operationId, state: "running", startedAt });
    const done = new Promise<void>((resolve, reject) => this.pendingStarts.push({ line: startRecord(operationId, startedAt), resolve, reject }));
    if (!this.flushing) void this.flushStarts();
    return done;
  }

  private async flushStarts(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pendingStarts.length > 0) {
        const batch = this.pendingStarts.splice(0);
        if (this.closed) {
          // Closed meanwhile: the log is another process's to write now.
          for (const p of batch) p.reject(new Error("the ledger is closed"));
          continue;
        }
        const lines = batch.map((p) => p.line).join("");
        try {
          await appendDurably(this.startsFd ?? (await this.reopenStarts()), Buffer.from(this.startsTailTorn ? `\n${lines}` : lines));
          this.startsTailTorn = false;
          for (const p of batch) p.resolve();
        } catch (err) {
          // Part of the batch may be on disk, ending mid-record.
          this.startsTailTorn = true;
          for (const p of batch) p.reject(err);
        }
        this.startsSinceCompaction += batch.length;
        // Between batches, so no start is appended to the log being replaced.
        if (this.startsSinceCompaction >= COMPACT_AFTER) await this.tryCompactStarts();
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Drops an entry whose first write failed (nothing ran). */
  forget(operationId: string): void {
    this.entries.delete(operationId);
  }

  /**
   * Callers need not wait: the result can be sent meanwhile. A crash before it
   * lands leaves the entry `running`, which the next process reports as an
   * outcome unknown — never a re-run.
   */
  finish(result: OperationResult): Promise<void> {
    const id = result.operationId;
    this.outbox.add(id);
    return this.write({ operationId: id, state: "finished", startedAt: result.startedAt, result, delivered: false }).then(
      () => void this.unsaved.delete(id),
      (err: unknown) => {
        this.unsaved.add(id);
        throw err;
      },
    );
  }

  /**
   * Not fsynced: the dispatcher has the result, so the operation is over and
   * will never be started again; losing this mark in a power loss only means
   * the result is sent once more and ignored.
   */
  markDelivered(operationId: string): Promise<void> {
    const e = this.entries.get(operationId);
    if (e?.state !== "finished" || e.delivered) return Promise.resolve();
    const delivered: LedgerEntry = { operationId, state: "finished", delivered: true, startedAt: e.startedAt, result: e.result };
    this.entries.set(operationId, delivered);
    this.outbox.delete(operationId);
    // A rename, not a rewrite of the result: one metadata change per operation.
    const file = this.file(operationId);
    return this.chain(operationId, async () => {
      await rename(file, deliveredFile(file));
      // In its file under the delivered name: the result leaves memory (unless a re-send changed the entry meanwhile).
      if (this.entries.get(operationId) === delivered) this.entries.set(operationId, { operationId, state: "finished", delivered: true, startedAt: e.startedAt });
    });
  }

  /**
   * A redelivered start of a delivered operation: its result is read back
   * from its file and goes to the outbox again. Throws when that file is
   * gone or unreadable (nothing changes then; the operation is still known
   * as finished, so it is never run again).
   */
  async markUndelivered(operationId: string): Promise<void> {
    const e = this.entries.get(operationId);
    if (e?.state !== "finished" || !e.delivered) return;
    // Synchronous up to the chain below: the entry changes before any other event is handled.
    const result = e.result ?? this.readDelivered(operationId);
    const entry: LedgerEntry = { operationId, state: "finished", startedAt: result.startedAt, result, delivered: false };
    this.entries.set(operationId, entry);
    this.outbox.add(operationId);
    const file = this.file(operationId);
    // One step in the operation's queue: a delivered mark queued meanwhile renames only after the old one is gone.
    return this.chain(operationId, async () => {
      await persist(file, JSON.stringify(entry));
      await unlink(deliveredFile(file)).catch(() => undefined);
    });
  }

  /** Entries left `running` by a previous process: that process (and its pipes) is gone. */
  orphans(): string[] {
    return [...this.entries.values()].filter((e) => e.state === "running").map((e) => e.operationId);
  }

  /** How many results wait for a dispatcher's confirmation (each held in memory until then). */
  get undeliveredCount(): number {
    return this.outbox.size;
  }

  undelivered(): OperationResult[] {
    const out: OperationResult[] = [];
    for (const id of this.outbox) {
      const e = this.entries.get(id);
      if (e?.state === "finished" && !e.delivered) out.push(e.result);
    }
    return out;
  }

  query(ids: string[]): LedgerQueryReply {
    const reply: LedgerQueryReply = {};
    for (const id of ids) {
      const e = this.entries.get(id);
      if (!e) reply[id] = { state: "unknown" };
      else if (e.state === "running") reply[id] = { state: "running" };
      else if (!e.delivered) reply[id] = { state: "finished", result: e.result };
      else {
        // Delivered, so the dispatcher stored it: asked again only by a sweeper that lost track.
        try {
          reply[id] = { state: "finished", result: e.result ?? this.readDelivered(id) };
        } catch (err) {
          this.onError(`could not read the delivered result of ${id}`, err);
          reply[id] = { state: "unknown" };
        }
      }
    }
    return reply;
  }

  /** A delivered result from its file: renamed when marked, or not yet (the rename is still queued). */
  private readDelivered(operationId: string): OperationResult {
    const plain = this.file(operationId);
    let text: string;
    try {
      text = readFileSync(deliveredFile(plain), "utf8");
    } catch {
      text = readFileSync(plain, "utf8");
    }
    const entry = JSON.parse(text) as LedgerEntry;
    if (entry.state !== "finished" || entry.delivered) throw new Error(`the result file of ${operationId} holds no result`);
    return entry.result;
  }

  /**
   * Forgets delivered entries older than the retention period, and drops settled starts from the log
   * when starts were appended since it was last rewritten (an idle runner's log is left alone: each
   * rewrite costs three flushes to disk). Resolves with the number forgotten once the log is rewritten.
   */
  async prune(retentionMs: number): Promise<number> {
    let removed = 0;
    const cutoff = Date.now() - retentionMs;
    for (const e of this.entries.values()) {
      // An unsaved result has no file to age, and its start record is all that keeps it known: kept.
      if (e.state !== "finished" || !e.delivered || this.writes.has(e.operationId) || this.unsaved.has(e.operationId)) continue;
      const plain = this.file(e.operationId);
      const file = existsSync(deliveredFile(plain)) ? deliveredFile(plain) : plain;
      try {
        if (statSync(file).mtimeMs < cutoff) {
          unlinkSync(file);
          this.entries.delete(e.operationId);
          removed++;
        }
      } catch {
        this.entries.delete(e.operationId);
      }
    }
    if (this.startsSinceCompaction > 0) await this.compactExclusively();
    return removed;
  }

  /**
   * Rewrites the start log with no batch of starts in flight, and none appended meanwhile (they queue,
   * and go to the new log after). A batch already in flight is left to compact the log itself when due.
   */
  private async compactExclusively(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      await this.tryCompactStarts();
    } finally {
      this.flushing = false;
    }
    if (this.pendingStarts.length > 0) void this.flushStarts();
  }

  /** Lets another runner use the state directory. */
  close(): void {
    this.closed = true;
    if (this.startsFd !== null) closeSync(this.startsFd);
    this.startsFd = null;
    // A compaction under way still writes in the directory: the next runner may have it once it is done.
    if (!this.compacting) this.releaseLock();
  }

  private releaseLock(): void {
    this.lock?.release();
    this.lock = null;
  }

  /** Entries the start log knows that no result file does: started, never (durably) finished. */
  private readStarts(): string {
    let log: string;
    try {
      log = readFileSync(path.join(this.dir, STARTS_LOG), "utf8");
    } catch (err) {
      // No log yet. Any other failure (EIO, EACCES) must stop the runner: starting without the starts it
      // knew would run a redelivered one again.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
      throw err;
    }
    for (const line of log.split("\n")) {
      if (!line) continue;
      this.startsSinceCompaction++;
      try {
        const { operationId, startedAt } = JSON.parse(line) as { operationId: unknown; startedAt: unknown };
        if (typeof operationId !== "string" || !OPERATION_ID.test(operationId) || typeof startedAt !== "string") {
          this.onError("a start record that names no operation was skipped", new Error(line.slice(0, 200)));
          continue;
        }
        if (!this.entries.has(operationId)) this.entries.set(operationId, { operationId, state: "running", startedAt });
      } catch {
        // A record torn by a power loss or a failed write: its start never returned, so nothing ran.
      }
    }
    return log;
  }

  private openStarts(): number {
    return openSync(path.join(this.dir, STARTS_LOG), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o600);
  }

  /** Compaction only saves space: if it fails (disk full), the current log is still whole and stays in use. */
  private async tryCompactStarts(): Promise<void> {
    if (this.closed) return;
    this.compacting = true;
    try {
      await this.compactStarts();
    } catch (err) {
      this.onError("could not compact the start log", err);
    } finally {
      this.compacting = false;
      if (this.closed) this.releaseLock();
    }
  }

  /**
   * After a compaction that replaced the log but could not finish: opens the
   * log anew and makes its directory entry durable before any start goes to it.
   * Throws (the start is refused) while that is impossible.
   */
  private async reopenStarts(): Promise<number> {
    try {
      const fd = this.openStarts();
      try {
        await fsyncDir(this.dir);
        if (this.closed) throw new Error("the ledger is closed");
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      this.startsFd = fd;
      // The compacted log holds whole records only.
      this.startsTailTorn = false;
      return fd;
    } catch (err) {
      throw new Error(`the start log could not be reopened after its compaction, starts are refused: ${String(err)}`, { cause: err });
    }
  }

  /**
   * Rewrites the start log with the starts still needed: those whose result is not in a result file
   * made durable by the directory fsync just after they are listed (listed first: a result file
   * renamed into place while that fsync runs may not be covered by it, and its start stays).
   * Asynchronous, every flush on the thread pool: on a slow disk the event loop (the dispatcher's
   * heartbeats, commands' output, timers) goes on meanwhile. The caller holds the start log
   * (`flushing`), so no start is appended to the old log during it.
   *
   * The new log is written through the descriptor that then serves for appending, so nothing is
   * left to open once it is renamed into place; the old descriptor is closed only after. Should the
   * directory fsync after the rename fail, both descriptors are dropped and starts refused until
   * reopenStarts succeeds: the old one writes to a replaced file, the new one to a file whose name
   * may not survive a power loss.
   */
  private async compactStarts(): Promise<void> {
    const keep: string[] = [];
    for (const e of this.entries.values()) {
      // Every entry a file step is pending for was made in this process, with its start time.
      const needed = e.state === "running" || this.writes.has(e.operationId) || this.unsaved.has(e.operationId);
      if (needed && e.startedAt !== undefined) keep.push(startRecord(e.operationId, e.startedAt));
    }
    const appended = this.startsSinceCompaction;
    await fsyncDir(this.dir);
    const log = path.join(this.dir, STARTS_LOG);
    const tmp = `${log}.tmp`;
    const fd = await openAsync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND | constants.O_DSYNC, 0o600);
    try {
      await appendDurably(fd, Buffer.from(keep.join("")));
      await fsyncAsync(fd);
      await rename(tmp, log);
    } catch (err) {
      // The current log is untouched and stays in use.
      await closeAsync(fd);
      throw err;
    }
    // Closed meanwhile: close() closed the old descriptor already.
    const old = this.startsFd;
    this.startsFd = null;
    if (old !== null) closeSync(old);
    try {
      await fsyncDir(this.dir);
    } catch (err) {
      await closeAsync(fd);
      throw err;
    }
    if (this.closed) {
      await closeAsync(fd);
      return;
    }
    this.startsFd = fd;
    // A fresh log of whole records.
    this.startsTailTorn = false;
    this.startsSinceCompaction -= appended;
  }

  private file(operationId: string): string {
    if (!OPERATION_ID.test(operationId)) throw new Error(`invalid operation id ${operationId}`);
    return path.join(this.dir, `${operationId}.json`);
  }

  private write(entry: LedgerEntry): Promise<void> {
    const file = this.file(entry.operationId);
    this.entries.set(entry.operationId, entry);
    return this.chain(entry.operationId, () => persist(file, JSON.stringify(entry)));
  }

  /** Runs a file step of one operation after the ones queued before it. */
  private chain(id: string, step: () => Promise<void>): Promise<void> {
    const previous = this.writes.get(id) ?? Promise.resolve();
    const done = previous.catch(() => undefined).then(step);
    const tracked = done.finally(() => {
      if (this.writes.get(id) === tracked) this.writes.delete(id);
    });
    tracked.catch(() => undefined);
    this.writes.set(id, tracked);
    return done;
  }
}

/**
 * `mkdir -p` (mode 0700) that says what failed: Node's recursive mkdirSync reports a read-only
 * filesystem as ENOENT (nodejs/node#47098), which would hide from the operator, and from the runner
 * waiting for its disk to be writable again, why the state directory cannot be made.
 */
function makeDirs(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return;
    if (code !== "ENOENT" || path.dirname(dir) === dir) throw err;
    makeDirs(path.dirname(dir));
    // Once, not again through makeDirs: a parent that exists and still gives ENOENT (a dangling symlink) would loop.
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== "EEXIST") throw again;
    }
  }
}

/** Appends the whole buffer to an O_DSYNC descriptor: on disk when it resolves. */
async function appendDurably(fd: number, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const written = await new Promise<number>((resolve, reject) => fsWrite(fd, buf, offset, buf.length - offset, null, (err, n) => (err ? reject(err) : resolve(n))));
    offset += written;
  }
}

/** What a result file must hold to be loaded: an entry of the operation its name gives. */
function isEntryOf(value: unknown, operationId: string): value is LedgerEntry {
  const e = value as Partial<Record<"operationId" | "state" | "delivered" | "result" | "startedAt", unknown>> | null;
  if (typeof e !== "object" || e === null || e.operationId !== operationId || !OPERATION_ID.test(operationId)) return false;
  if (e.state === "running") return typeof e.startedAt === "string";
  if (e.state !== "finished") return false;
  if (e.delivered === true) return true;
  const result = e.result as { operationId?: unknown; status?: unknown } | undefined;
  return e.delivered === false && typeof result === "object" && result !== null && result.operationId === operationId && typeof result.status === "string";
}

/** When the file was last written, or now when that cannot be read. */
function modifiedAt(file: string): string {
  try {
    return statSync(file).mtime.toISOString();
  } catch {
    return new Date().toISOString();
  }
}

/** A file the ledger cannot use, renamed out of its way (`.bad`) so the runner starts, and reported; returns when it was last written. */
function setAside(file: string, onError: (message: string, err: unknown) => void): string {
  const modified = modifiedAt(file);
  try {
    renameSync(file, `${file}.bad`);
    onError(`a ledger file that is not a ledger entry was set aside as ${path.basename(file)}.bad`, new Error("unexpected content"));
  } catch (err) {
    onError(`a ledger file that is not a ledger entry could not be set aside: ${path.basename(file)}`, err);
  }
  return modified;
}

function unlinkTmp(file: string, onError: (message: string, err: unknown) => void): void {
  try {
    unlinkSync(file);
  } catch (err) {
    onError(`could not remove the unfinished write ${path.basename(file)}`, err);
  }
}

/** `<id>.json` once its result is delivered: a rename marks it, instead of rewriting the result. */
function deliveredFile(file: string): string {
  return file.replace(/\.json$/, DELIVERED_SUFFIX);
}

/** One line of the start log. */
function startRecord(operationId: string, startedAt: string): string {
  return `${JSON.stringify({ operationId, startedAt })}\n`;
}

const openAsync = promisify(openFd);
const fsyncAsync = promisify(fsync);
const closeAsync = promisify(close);

/** Makes the entries of a directory (a rename into it) durable; on the thread pool. */
async function fsyncDir(dir: string): Promise<void> {
  const fd = await openAsync(dir, "r");
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}

/** Write to a temporary file, fsync, rename: a crash leaves the old version or the new one, never a torn one. */
async function persist(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

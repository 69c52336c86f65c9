import { mkdirSync, readdirSync, readFileSync, unlinkSync, statSync } from "node:fs";
import { open, rename } from "node:fs/promises";
import path from "node:path";
import type { LedgerQueryReply, OperationResult } from "@runbridge/contracts";

export type LedgerEntry =
  | { operationId: string; state: "running"; startedAt: string }
  | { operationId: string; state: "finished"; startedAt: string; result: OperationResult; delivered: boolean };

/**
 * The runner's durable record of every operation it has started (one fsynced
 * file per operation). It is what makes execution at-most-once: a start for a
 * known id is answered from here and never run again. Finished results that
 * the dispatcher has not acknowledged are the outbox.
 */
export class Ledger {
  private readonly dir: string;
  private readonly entries = new Map<string, LedgerEntry>();
  /** The last file write queued per operation: writes of one operation land in order. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, "ledger");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const file of readdirSync(this.dir)) {
      if (!file.endsWith(".json")) continue;
      try {
        const entry = JSON.parse(readFileSync(path.join(this.dir, file), "utf8")) as LedgerEntry;
        this.entries.set(entry.operationId, entry);
      } catch {
        // A torn write (crash mid-write) is in the .tmp file, never here.
      }
    }
  }

  get(operationId: string): LedgerEntry | undefined {
    return this.entries.get(operationId);
  }

  /**
   * Known in memory at once (a second start for the same id is recognised
   * immediately); the returned promise resolves once it is on disk, and the
   * caller awaits it before acknowledging the start and running anything.
   */
  begin(operationId: string, startedAt: string): Promise<void> {
    return this.write({ operationId, state: "running", startedAt });
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
    return this.write({ operationId: result.operationId, state: "finished", startedAt: result.startedAt, result, delivered: false });
  }

  markDelivered(operationId: string): Promise<void> {
    const e = this.entries.get(operationId);
    return e?.state === "finished" && !e.delivered ? this.write({ ...e, delivered: true }) : Promise.resolve();
  }

  markUndelivered(operationId: string): Promise<void> {
    const e = this.entries.get(operationId);
    return e?.state === "finished" && e.delivered ? this.write({ ...e, delivered: false }) : Promise.resolve();
  }

  /** Entries left `running` by a previous process: that process (and its pipes) is gone. */
  orphans(): string[] {
    return [...this.entries.values()].filter((e) => e.state === "running").map((e) => e.operationId);
  }

  undelivered(): OperationResult[] {
    const out: OperationResult[] = [];
    for (const e of this.entries.values()) if (e.state === "finished" && !e.delivered) out.push(e.result);
    return out;
  }

  query(ids: string[]): LedgerQueryReply {
    const reply: LedgerQueryReply = {};
    for (const id of ids) {
      const e = this.entries.get(id);
      reply[id] = !e ? { state: "unknown" } : e.state === "running" ? { state: "running" } : { state: "finished", result: e.result };
    }
    return reply;
  }

  /** Forgets delivered entries older than the retention period. */
  prune(retentionMs: number): number {
    let removed = 0;
    const cutoff = Date.now() - retentionMs;
    for (const e of this.entries.values()) {
      if (e.state !== "finished" || !e.delivered) continue;
      const file = this.file(e.operationId);
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
    return removed;
  }

  private file(operationId: string): string {
    if (!/^[0-9a-f-]{36}$/i.test(operationId)) throw new Error(`invalid operation id ${operationId}`);
    return path.join(this.dir, `${operationId}.json`);
  }

  private write(entry: LedgerEntry): Promise<void> {
    const id = entry.operationId;
    const file = this.file(id);
    this.entries.set(id, entry);
    const previous = this.writes.get(id) ?? Promise.resolve();
    const written = previous.catch(() => undefined).then(() => persist(file, JSON.stringify(entry)));
    const tracked = written.finally(() => {
      if (this.writes.get(id) === tracked) this.writes.delete(id);
    });
    tracked.catch(() => undefined);
    this.writes.set(id, tracked);
    return written;
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

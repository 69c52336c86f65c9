import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, openSync, writeSync, fsyncSync, closeSync, statSync } from "node:fs";
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

  /** Recorded durably before the start is acknowledged and before anything runs. */
  begin(operationId: string, startedAt: string): void {
    this.write({ operationId, state: "running", startedAt });
  }

  finish(result: OperationResult): void {
    this.write({ operationId: result.operationId, state: "finished", startedAt: result.startedAt, result, delivered: false });
  }

  markDelivered(operationId: string): void {
    const e = this.entries.get(operationId);
    if (e?.state === "finished" && !e.delivered) this.write({ ...e, delivered: true });
  }

  markUndelivered(operationId: string): void {
    const e = this.entries.get(operationId);
    if (e?.state === "finished" && e.delivered) this.write({ ...e, delivered: false });
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

  private write(entry: LedgerEntry): void {
    const file = this.file(entry.operationId);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(entry));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.entries.set(entry.operationId, entry);
  }
}

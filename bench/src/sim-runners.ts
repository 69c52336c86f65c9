import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { TokenKind, generateToken, hashToken } from "@runbridge/common";
import { createPrisma } from "@runbridge/db";
import { startChild, stopChild, until } from "./procs";

const PER_PROCESS = 1000;

interface WorkerState {
  child: ChildProcess;
  connected: number;
  errors: number;
  reasons: Record<string, number>;
}

/**
 * Simulated runners in child processes of PER_PROCESS sockets each. Their
 * servers are real rows (bulk-inserted, each with its own hashed runner
 * token), so the dispatcher authenticates each connection as it would a runner.
 */
export class SimulatedRunners {
  private readonly workers: WorkerState[] = [];
  private tokens: string[] = [];
  /** How many tokens have been handed to worker processes so far. */
  private assigned = 0;

  constructor(
    private readonly dispatcherUrl: string,
    private readonly logDir: string,
  ) {}

  /** Inserts `count` server rows for the tenant and keeps their runner tokens. */
  async createServers(databaseUrl: string, tenantId: string, count: number): Promise<void> {
    const prisma = createPrisma(databaseUrl, { max: 2 });
    try {
      for (let start = 0; start < count; start += 1000) {
        const batch: { tenantId: string; name: string; runnerTokenHash: string }[] = [];
        for (let i = start; i < Math.min(count, start + 1000); i++) {
          const token = generateToken(TokenKind.RunnerToken);
          this.tokens.push(token);
          batch.push({ tenantId, name: `sim-${i}`, runnerTokenHash: hashToken(token) });
        }
        await prisma.server.createMany({ data: batch });
      }
    } finally {
      await prisma.$disconnect();
    }
  }

  get connected(): number {
    return this.workers.reduce((n, w) => n + w.connected, 0);
  }

  get connectErrors(): number {
    return this.workers.reduce((n, w) => n + w.errors, 0);
  }

  /** Connection errors of all workers, by reason. */
  get connectErrorReasons(): Record<string, number> {
    const all: Record<string, number> = {};
    for (const w of this.workers) for (const [k, v] of Object.entries(w.reasons)) all[k] = (all[k] ?? 0) + v;
    return all;
  }

  /** Grows to `total` connected runners, opening at most `perSecond` connections a second overall. */
  async growTo(total: number, perSecond: number, timeoutMs: number): Promise<void> {
    const newWorkers: { child: ChildProcess; tokens: string[] }[] = [];
    for (let start = this.assigned; start < total; start += PER_PROCESS) {
      const tokens = this.tokens.slice(start, Math.min(total, start + PER_PROCESS));
      if (tokens.length === 0) throw new Error(`only ${this.tokens.length} simulated servers exist, ${total} wanted`);
      const child = startChild(`sim-runners-${this.workers.length}`, process.execPath, [path.join(__dirname, "sim-runner-worker.js")], {
        logDir: this.logDir,
        maxFiles: 65536,
        ipc: true,
      });
      const state: WorkerState = { child, connected: 0, errors: 0, reasons: {} };
      child.on("message", (msg) => {
        const m = msg as { connected: number; errors: number; reasons: Record<string, number> };
        state.connected = m.connected;
        state.errors = m.errors;
        state.reasons = m.reasons;
      });
      this.workers.push(state);
      this.assigned += tokens.length;
      newWorkers.push({ child, tokens });
    }
    const each = Math.max(1, perSecond / Math.max(1, newWorkers.length));
    for (const w of newWorkers) w.child.send({ url: this.dispatcherUrl, tokens: w.tokens, perSecond: each });
    try {
      await until(`${total} simulated runners to connect`, async () => this.connected >= total, timeoutMs, 500);
    } catch {
      throw new Error(`only ${this.connected} of ${total} simulated runners connected within ${timeoutMs / 1000} s (${this.connectErrors} connection errors); see the dispatcher and sim-runners logs`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => stopChild(w.child, 5000)));
    this.workers.length = 0;
  }
}

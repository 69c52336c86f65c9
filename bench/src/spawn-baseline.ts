import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Sampler, ThroughputResult } from "./load";
import { onCleanup } from "./procs";

type Request = { kind: "latency"; samples: number } | { kind: "throughput"; concurrency: number; durationMs: number };
export type SpawnRequest = Request & { id: number };
export type SpawnReply = { id: number; kind: "latency"; result: { times: number[]; failures: number } } | { id: number; kind: "throughput"; result: ThroughputResult };

/** Spawning `sh -c true` from Node, measured inside a Node process of its own (see spawn-worker.ts). */
export class SpawnBaseline {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly pending = new Map<number, { resolve: (reply: SpawnReply) => void; reject: (err: Error) => void }>();

  constructor() {
    this.child = fork(path.join(__dirname, "spawn-worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (reply: SpawnReply) => {
      this.pending.get(reply.id)?.resolve(reply);
      this.pending.delete(reply.id);
    });
    this.child.once("exit", (code, signal) => {
      for (const { reject } of this.pending.values()) reject(new Error(`the spawn baseline's worker exited (${signal ?? code}) before answering`));
      this.pending.clear();
    });
    onCleanup(() => this.close());
  }

  /** The process that spawns (its CPU is the baseline's "load generator"; its children's is `sh`'s). */
  get pid(): number {
    return this.child.pid as number;
  }

  private ask(req: Request): Promise<SpawnReply> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...req, id });
    });
  }

  readonly sample: Sampler = async (samples) => {
    const reply = await this.ask({ kind: "latency", samples });
    if (reply.kind !== "latency") throw new Error("spawn baseline answered the wrong request");
    return reply.result;
  };

  async throughput(concurrency: number, durationMs: number): Promise<ThroughputResult> {
    const reply = await this.ask({ kind: "throughput", concurrency, durationMs });
    if (reply.kind !== "throughput") throw new Error("spawn baseline answered the wrong request");
    return reply.result;
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

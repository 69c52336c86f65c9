import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenKind, createLogger, generateToken, parseConfig } from "@runbridge/common";
import { Agent } from "../../apps/runner/src/agent";
import { runnerEnvSchema, type RunnerConfig } from "../../apps/runner/src/config";
import { Ledger } from "../../apps/runner/src/ledger";
import { freePort, waitFor } from "../helpers/processes";

/**
 * A start that arrives as the runner is told to stop (SIGTERM) is writing its
 * start record when stop() begins. Once that record is on disk the operation
 * counts as started — it can no longer be handed back for the next runner
 * process — so stop() must wait for it: it runs within the drain, or ends
 * without running when the drain is over, and never runs after stop() has
 * returned (when the unit kills what is left half-way).
 */
describe("the runner's stop", () => {
  let dir: string;
  let config: RunnerConfig;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-stop-race-"));
    config = parseConfig<RunnerConfig>("runner", runnerEnvSchema, {
      // Never connected: the start is handed to the agent as its socket handler would.
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${await freePort()}`,
      RUNBRIDGE_RUNNER_TOKEN: generateToken(TokenKind.RunnerToken),
      RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
      RUNBRIDGE_WORKDIR: dir,
      RUNBRIDGE_KILL_GRACE_SECONDS: "1",
    });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const recorded = (operationId: string) => {
    const ledger = new Ledger(config.RUNBRIDGE_STATE_DIR, () => undefined);
    try {
      return ledger.get(operationId);
    } finally {
      ledger.close();
    }
  };

  it("runs it within the drain and has its result on disk before stop() returns", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const operationId = randomUUID();
    const marker = path.join(dir, "ran");
    const ack = agent.handleStart({ operationId, spec: { kind: "shell", command: `sleep 0.3; touch ${marker}` }, timeoutSeconds: 30 });
    await agent.stop(5_000);
    expect(await ack).toEqual({ ok: true, state: "started" });
    expect(existsSync(marker)).toBe(true);
    expect(recorded(operationId)).toMatchObject({ state: "finished", result: { status: "completed", exitCode: 0 } });
  });

  it("runs two copies of one start read in the same tick once (a start redelivered while the runner was frozen)", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const operationId = randomUUID();
    const marker = path.join(dir, "runs");
    const start = { operationId, spec: { kind: "shell" as const, command: `echo ran >> ${marker}` }, timeoutSeconds: 30 };
    const acks = await Promise.all([agent.handleStart(start), agent.handleStart(start)]);
    expect(acks).toEqual([
      { ok: true, state: "started" },
      { ok: true, state: "already-started" },
    ]);
    await agent.stop(5_000);
    expect(readFileSync(marker, "utf8")).toBe("ran\n");
  });

  it("ends it without running it when the drain is already over, and nothing runs after stop() returned", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const operationId = randomUUID();
    const marker = path.join(dir, "ran");
    const ack = agent.handleStart({ operationId, spec: { kind: "shell", command: `touch ${marker}` }, timeoutSeconds: 30 });
    await agent.stop(0);
    expect(await ack).toEqual({ ok: true, state: "started" });
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(marker)).toBe(false);
    expect(recorded(operationId)).toMatchObject({
      state: "finished",
      result: { status: "failed", exitCode: null, error: expect.stringContaining("after its shutdown drain had ended; it was not run") as unknown },
    });
  });

  it("waits, when it kills commands at the end of the drain, until their SIGKILL has gone to what ignores SIGTERM", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const pidFile = path.join(dir, "stubborn.pid");
    // The shell dies of SIGTERM at once; what it started ignores it (and holds the output pipes).
    const ack = await agent.handleStart({ operationId: randomUUID(), spec: { kind: "shell", command: `(trap '' TERM; exec sleep 31) & echo $! > ${pidFile}; wait` }, timeoutSeconds: 60 });
    expect(ack).toEqual({ ok: true, state: "started" });
    const pid = await waitFor(async () => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")), 10_000, "the stubborn process");
    try {
      await agent.stop(100);
      // Gone (or a zombie of its own parent, reaped by init) a moment after the stop — the SIGKILL's
      // delivery, not the grace of 1 s, which a stop that did not wait would still have ahead of it.
      const state = () => (existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] : "gone");
      await waitFor(async () => /^(gone|Z)$/.test(state() ?? ""), 400, "the stubborn process to be killed");
    } finally {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone: what the test expects.
      }
    }
  });

  it("answers a cancel of an operation it already ran to its end as finished (its result is the outcome), of one it never saw as not started", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const operationId = randomUUID();
    expect(await agent.handleStart({ operationId, spec: { kind: "shell", command: "true" }, timeoutSeconds: 30 })).toEqual({ ok: true, state: "started" });
    await waitFor(async () => agent.inFlight === 0, 10_000, "the command to end");
    expect(agent.handleCancel({ operationId })).toEqual({ ok: false, finished: true });
    expect(agent.handleCancel({ operationId: randomUUID() })).toEqual({ ok: false });
    await agent.stop(0);
  });

  it("still refuses, retryably, a start that arrives once stop() has begun", async () => {
    const agent = new Agent(config, createLogger("runner", "error"));
    const stopped = agent.stop(1_000);
    expect(await agent.handleStart({ operationId: randomUUID(), spec: { kind: "shell", command: "true" }, timeoutSeconds: 30 })).toEqual({
      ok: false,
      error: "runner is shutting down",
      retryable: true,
    });
    await stopped;
  });
});

import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenKind, createLogger, generateToken, parseConfig } from "@runbridge/common";
import type { StartOperation } from "@runbridge/contracts";
import { Agent } from "../../apps/runner/src/agent";
import { runnerEnvSchema, type RunnerConfig } from "../../apps/runner/src/config";
import { Ledger } from "../../apps/runner/src/ledger";
import { freePort, waitFor } from "../helpers/processes";

/**
 * Which starts a runner at its cap (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS) refuses: starts handed to
 * the agent as its socket handler would. Never connected, so no result is ever delivered here.
 */
describe("starts at the runner's cap", () => {
  let dir: string;
  let agent: Agent | null = null;

  async function agentWithCap(max: number): Promise<Agent> {
    const config = parseConfig<RunnerConfig>("runner", runnerEnvSchema, {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${await freePort()}`,
      RUNBRIDGE_RUNNER_TOKEN: generateToken(TokenKind.RunnerToken),
      RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
      RUNBRIDGE_WORKDIR: dir,
      RUNBRIDGE_KILL_GRACE_SECONDS: "1",
      RUNBRIDGE_REBOOT_COMMAND: `touch ${path.join(dir, "rebooted")}`,
      RUNBRIDGE_MAX_CONCURRENT_OPERATIONS: String(max),
    });
    agent = new Agent(config, createLogger("runner", "error"));
    return agent;
  }

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-capacity-starts-"));
  });
  afterEach(async () => {
    await agent?.stop(0);
    agent = null;
    rmSync(dir, { recursive: true, force: true });
  });

  const shell = (command: string): StartOperation => ({ operationId: randomUUID(), spec: { kind: "shell", command }, timeoutSeconds: 30 });
  const recorded = (operationId: string) => {
    const ledger = new Ledger(path.join(dir, "state"), () => undefined);
    try {
      return ledger.get(operationId);
    } finally {
      ledger.close();
    }
  };
  const atCapacity = { ok: false, error: expect.stringMatching(/^runner at capacity: /) as unknown, retryable: true, busy: true };

  it("answers a redelivery of a start it holds from the ledger, refuses a new one without recording it, and takes a reboot", async () => {
    const a = await agentWithCap(1);
    const holder = shell("sleep 30");
    expect(await a.handleStart(holder)).toEqual({ ok: true, state: "started" });
    expect(await a.handleStart(holder)).toEqual({ ok: true, state: "already-started" });

    const marker = path.join(dir, "ran");
    const refused = shell(`touch ${marker}`);
    expect(await a.handleStart(refused)).toEqual({ ...atCapacity, error: "runner at capacity: 1 operations running, the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=1)" });

    expect(await a.handleStart({ operationId: randomUUID(), spec: { kind: "reboot" }, timeoutSeconds: 30 })).toEqual({ ok: true, state: "started" });
    await waitFor(async () => existsSync(path.join(dir, "rebooted")), 10_000, "the reboot command to run");
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marker)).toBe(false);
    await a.stop(0);
    agent = null;
    // Refused before anything was recorded: a later start of it is a first start.
    expect(recorded(refused.operationId)).toBeUndefined();
  });

  it("lets only one of two starts read in the same tick take the last place", async () => {
    const a = await agentWithCap(1);
    const acks = await Promise.all([a.handleStart(shell("sleep 30")), a.handleStart(shell("sleep 30"))]);
    expect(acks).toEqual(expect.arrayContaining([{ ok: true, state: "started" }, atCapacity]));
    expect(a.inFlight).toBe(1);
  });

  it("holds the place of an ended operation until its result is delivered, and answers its redelivery as finished", async () => {
    const a = await agentWithCap(1);
    const ended = shell("true");
    expect(await a.handleStart(ended)).toEqual({ ok: true, state: "started" });
    await waitFor(async () => a.inFlight === 0, 10_000, "the command to end");
    expect(await a.handleStart(shell("true"))).toEqual({
      ...atCapacity,
      error: "runner at capacity: 1 operations running or delivering their results (0 running, 1 results not yet stored), the most it holds at once (RUNBRIDGE_MAX_CONCURRENT_OPERATIONS=1)",
    });
    expect(await a.handleStart(ended)).toEqual({ ok: true, state: "already-finished" });
  });

  it("takes every start at 0", async () => {
    const a = await agentWithCap(0);
    const acks = await Promise.all(Array.from({ length: 5 }, () => a.handleStart(shell("sleep 30"))));
    expect(acks).toEqual(Array(5).fill({ ok: true, state: "started" }));
  });
});

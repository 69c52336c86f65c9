import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { TokenKind, createLogger, generateToken, parseConfig } from "@runbridge/common";
import { Agent } from "../../apps/runner/src/agent";
import { runnerEnvSchema, type RunnerConfig } from "../../apps/runner/src/config";
import { Ledger } from "../../apps/runner/src/ledger";
import { freePort } from "../helpers/processes";
import { runnerResult } from "../helpers/scripted-runner";
import { SmallDisk } from "../helpers/small-disk";

/**
 * A runner whose state directory cannot be written (here: remounted read-only) runs nothing, but still
 * knows what an earlier runner process recorded there: the disk can be read. A start of such an operation
 * (redelivered: its acknowledgement was lost before that process died) is answered as started, a question
 * about it as the ledger would (also while this process stops), and a cancel of it not at all — each of the
 * other answers would have the platform record as never started an operation that may have run.
 */
const unavailable = SmallDisk.unavailable();
const describeAsRoot = unavailable === null ? describe : describe.skip;

describeAsRoot(`a runner that cannot write its state directory${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let disk: SmallDisk;
  let config: RunnerConfig;
  let agent: Agent | undefined;
  const earlier = { running: randomUUID(), finished: randomUUID() };

  beforeAll(async () => {
    disk = SmallDisk.mount("1m");
    const stateDir = path.join(disk.dir, "state");
    mkdirSync(stateDir);
    // What an earlier runner process left: one operation started (it died running it), one finished, its result not delivered.
    const ledger = new Ledger(stateDir);
    await ledger.begin(earlier.running, new Date().toISOString());
    await ledger.begin(earlier.finished, new Date().toISOString());
    const result = runnerResult(earlier.finished, { stdout: "done\n" });
    await ledger.finish(result);
    ledger.close();
    disk.readOnly();
    config = parseConfig<RunnerConfig>("runner", runnerEnvSchema, {
      // Never connected: messages are handed to the agent as its socket handlers would.
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${await freePort()}`,
      RUNBRIDGE_RUNNER_TOKEN: generateToken(TokenKind.RunnerToken),
      RUNBRIDGE_STATE_DIR: stateDir,
      RUNBRIDGE_WORKDIR: disk.dir,
      RUNBRIDGE_KILL_GRACE_SECONDS: "1",
    });
  });
  afterAll(async () => {
    await agent?.stop(0);
    disk.unmount();
  });

  it("answers what the ledger on disk knows, refuses for good what it does not, and asks for later while it stops", async () => {
    agent = new Agent(config, createLogger("runner", "error"));
    const start = (operationId: string) => agent?.handleStart({ operationId, spec: { kind: "shell", command: "true" }, timeoutSeconds: 30 });

    // A redelivered start of the earlier process's operation: started, as the ledger would say (its outcome comes once it opens).
    expect(await start(earlier.running)).toEqual({ ok: true, state: "already-started" });
    // One never seen here: not started, and said why (not for later: the platform fails it at once).
    const fresh = await start(randomUUID());
    expect(fresh).toEqual({ ok: false, error: expect.stringMatching(/^it cannot record operations: state directory .+ cannot be written \(EROFS: read-only file system\); .+; not started$/) });

    // The sweeper's questions: answered at once from the disk (unanswered, each would hold it for the ack timeout).
    const unknown = randomUUID();
    expect(agent.handleQuery([earlier.running, earlier.finished, unknown])).toEqual({
      [earlier.running]: { state: "running" },
      [earlier.finished]: { state: "finished", result: expect.objectContaining({ operationId: earlier.finished, exitCode: 0, stdout: "done\n" }) },
      [unknown]: { state: "unknown" },
    });

    // A cancel of the earlier process's operation is not answered ("not running here" would end it as cancelled before it started) ...
    expect(agent.handleCancel({ operationId: earlier.running })).toBeNull();
    // ... one of an operation never seen here is, as usual: nothing runs it, and a start that follows is not run.
    expect(agent.handleCancel({ operationId: randomUUID() })).toEqual({ ok: false });

    // Stopping: a new start is for the next runner process to take, not refused for good.
    const stopping = agent.stop(0);
    expect(await start(randomUUID())).toEqual({ ok: false, error: "runner is shutting down", retryable: true });
    // ... but one the disk knows is still started: "for later" would have the dispatcher release its claim
    // as never delivered, and end as never started an operation that ran.
    expect(await start(earlier.running)).toEqual({ ok: true, state: "already-started" });
    await stopping;
  });
});

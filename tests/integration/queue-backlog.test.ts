import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FailureReason } from "@runbridge/contracts";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import { noteDeferral, noteHeldBack, noteRunnerAway, undeliveredEnding } from "../../apps/dispatcher/src/deferred";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

const DELIVERY_TIMEOUT_SECONDS = 3;

/**
 * An operation whose job no dispatcher takes from the queue before its delivery deadline (dispatchers
 * stopped, paused, or behind a backlog) never reached its runner: it fails saying so, not "runner
 * offline", which sent operators to a runner that was connected and idle all along.
 */
describe("an operation that waits out its delivery deadline in the queue", () => {
  const suite = useStackWithRunner({
    gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) },
    dispatcher: { DEPLOY_TURN_GRACE_SECONDS: "5" },
  });
  const scrape = () => fetch(`http://127.0.0.1:${suite.stack.dispatcherPorts[0]}/metrics`).then((r) => r.text());

  it("fails as queue_backlog, with its runner connected throughout; one taken in time still runs", async () => {
    const { stack, fx } = suite;
    const exec = (command: string) => stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command });

    // No dispatcher takes anything while the queue is paused (as an operator pausing it, or every dispatcher busy).
    await stack.gateway.queue.pause();
    let resumed = false;
    try {
      const late = await exec("echo late");
      expect(late.status).toBe(200);
      expect(late.body).toMatchObject({ status: "running" });
      await new Promise((r) => setTimeout(r, DELIVERY_TIMEOUT_SECONDS * 1000 + 500));
      await stack.gateway.queue.resume();
      resumed = true;

      const ended = await waitUntilEnded(late.body.operation_id, 15_000, "the late operation to end");
      expect(ended).toMatchObject({ status: "failed", error: FailureReason.QueueBacklog, dispatchedAt: null, startedAt: null });
      // The runner was there all along: the failure is the queue's, and the metric says so.
      expect(await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))).toBe(1);
      const metrics = await scrape();
      expect(sample(metrics, "runbridge_dispatcher_operations_finished_total", { status: "failed", type: "exec", reason: "queue_backlog" })).toBe(1);
      expect(sample(metrics, "runbridge_dispatcher_operations_finished_total", { status: "failed", type: "exec", reason: "runner_offline" }) ?? 0).toBe(0);
      const event = await testPrisma().auditEvent.findFirst({ where: { operationId: late.body.operation_id, type: "operation.finished" } });
      expect(event?.data).toMatchObject({ status: "failed", error: FailureReason.QueueBacklog });
    } finally {
      if (!resumed) await stack.gateway.queue.resume();
    }

    const onTime = await exec("echo on-time");
    expect(onTime.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "on-time\n" });
  });

  it("ends one whose job still waits 10 s past its deadline, removing the job, but not a deploy waiting its turn", async () => {
    const { stack, fx } = suite;
    const dir = mkdtempSync(path.join(tmpdir(), "rb-backlog-"));
    const app = await stack
      .api()
      .post("/api/v1/applications")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "in-line", server_id: fx.server.id, working_directory: dir, deploy_command: 'sleep "${DEPLOY_SLEEP:-0}"; echo deployed' });
    expect(app.status).toBe(201);
    const deploy = async (env: Record<string, string>) => {
      const res = await stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${fx.token}`).send({ application_id: app.body.id, env_overrides: env });
      expect(res.status).toBe(202);
      return res.body.operation_id as string;
    };
    // A deploy running for a while, and a second one of the same application waiting its turn behind it: its job
    // comes round every second and its deadline moves forward each time (DEPLOY_TURN_GRACE_SECONDS).
    const first = await deploy({ DEPLOY_SLEEP: "25" });
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id: first } })).startedAt !== null, 10_000, "the first deploy to start");
    const second = await deploy({});
    await new Promise((r) => setTimeout(r, 1500));

    // Then nothing is taken from the queue: the second deploy's deadline stops moving, and an exec waits untaken.
    await stack.gateway.queue.pause();
    try {
      const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo stuck" });
      expect(res.body).toMatchObject({ status: "running" });
      const id = res.body.operation_id as string;
      // Not before the grace: until then the worker that takes the job is left to end it.
      await new Promise((r) => setTimeout(r, (DELIVERY_TIMEOUT_SECONDS + 5) * 1000));
      expect(await testPrisma().operation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "running" });
      // Then, with the queue still paused, the sweeper ends it.
      const ended = await waitUntilEnded(id, 15_000, "the sweeper to end the operation stuck in the paused queue");
      expect(ended).toMatchObject({ status: "failed", error: FailureReason.QueueBacklog, dispatchedAt: null });
      expect(sample(await scrape(), "runbridge_dispatcher_sweeper_actions_total", { action: "queue_backlog" })).toBe(1);
      await waitFor(async () => (await stack.gateway.queue.getJobState(id)) === "unknown", 5_000, "the job to be removed from the queue");
      // The waiting deploy's deadline, last moved before the pause, is as far past by now (DEPLOY_TURN_GRACE_SECONDS
      // less than the exec's grace, plus a few sweeps): it is left to wait its turn.
      await new Promise((r) => setTimeout(r, 3000));
      expect(await testPrisma().operation.findUniqueOrThrow({ where: { id: first } })).toMatchObject({ status: "running" });
      const waiting = await testPrisma().operation.findUniqueOrThrow({ where: { id: second } });
      expect(waiting).toMatchObject({ status: "running", dispatchedAt: null });
      expect(waiting.deliverBy.getTime()).toBeLessThan(Date.now() - 10_000);
    } finally {
      await stack.gateway.queue.resume();
    }
    // Its turn comes once the first has ended.
    expect(await waitUntilEnded(second, 40_000, "the second deploy to run after the first")).toMatchObject({ status: "completed", stdout: "deployed\n" });
  }, 90_000);

  it("one taken in time while its runner is away still fails as runner offline at its deadline", async () => {
    const { stack, fx } = suite;
    const runner = stack.runners[0];
    if (!runner) throw new Error("no runner");
    // Accepted while the runner is connected (the gateway refuses a server without one), held in the queue until
    // the runner is gone, then taken well within its deadline: each delivery looks for the runner, which is not there.
    await stack.gateway.queue.pause();
    let res;
    try {
      res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo away" });
      expect(res.body).toMatchObject({ status: "running" });
      await runner.stop("SIGKILL");
      await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))) === 0, 10_000, "the runner to be offline");
    } finally {
      await stack.gateway.queue.resume();
    }
    const ended = await waitUntilEnded(res.body.operation_id as string, 15_000, "the operation of an absent runner to end");
    expect(ended).toMatchObject({ status: "failed", error: FailureReason.RunnerOffline, dispatchedAt: null });
  });

  it("says runner offline only when a delivery looked for the runner, and keeps the runner's own reasons first", async () => {
    const { stack } = suite;
    const ctx = { redis: stack.redis, keys: stack.keys } as unknown as DispatcherContext;
    const id = "00000000-0000-4000-8000-0000000000b1";
    // No delivery got as far as looking for its runner: not delivered — unless the job itself was lost (the sweeper's
    // re-enqueue path, which asks without the flag), where nothing is known and the old answer stands.
    expect(await undeliveredEnding(ctx, id, true)).toEqual({ cause: "queue_backlog", error: FailureReason.QueueBacklog });
    expect(await undeliveredEnding(ctx, id)).toEqual({ cause: "runner_offline", error: FailureReason.RunnerOffline });
    await noteRunnerAway(ctx, id);
    expect(await undeliveredEnding(ctx, id, true)).toEqual({ cause: "runner_offline", error: FailureReason.RunnerOffline });
    // A runner that was there and refused it for later, or did not answer, says more than its absence at some attempt.
    await noteHeldBack(ctx, id, 1000);
    expect(await undeliveredEnding(ctx, id, true)).toEqual({ cause: "runner_unresponsive", error: FailureReason.RunnerUnresponsive });
    await noteDeferral(ctx, id, "draining for a restart");
    expect((await undeliveredEnding(ctx, id, true)).cause).toBe("runner_deferred");
  });
});

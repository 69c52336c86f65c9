import { FailureReason } from "@runbridge/contracts";
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
  const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1", RUNNER_DELIVERY_TIMEOUT_SECONDS: String(DELIVERY_TIMEOUT_SECONDS) } });
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

  it("ends one whose job is still waiting 10 s past its deadline without waiting for a dispatcher to take it, and removes the job", async () => {
    const { stack, fx } = suite;
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
    } finally {
      await stack.gateway.queue.resume();
    }
  });

  it("one taken in time while its runner is away still fails as runner offline at its deadline", async () => {
    const { stack, fx } = suite;
    const runner = stack.runners[0];
    if (!runner) throw new Error("no runner");
    // Accepted while the runner is connected (the gateway refuses a server without one), held in the queue until
    // the runner is gone, then taken well within its deadline: delivery is tried, and the runner is not there.
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
});

import { Queue } from "bullmq";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { OperationsFinishedMetric, QueueName, finishedLabels, type Ending } from "@runbridge/contracts";
import { createFailFastRedis, withTimeout } from "@runbridge/common";
import { registerDbPoolGauge } from "@runbridge/db";
import type { DispatcherContext } from "./context";

/**
 * The dispatcher's Prometheus metrics, in a registry of its own. Labels are
 * bounded (status, operation type, queue state): never an operation or
 * server id, never a command.
 */
export const dispatcherRegistry = new Registry();
dispatcherRegistry.setDefaultLabels({ service: "dispatcher" });
collectDefaultMetrics({ register: dispatcherRegistry, prefix: "runbridge_dispatcher_" });

const operationsFinished = new Counter({ ...OperationsFinishedMetric, registers: [dispatcherRegistry] });

const deliveryLatency = new Histogram({
  name: "runbridge_dispatcher_delivery_latency_seconds",
  help: "From an operation's acceptance to its runner acknowledging the start, by operation type",
  labelNames: ["type"] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [dispatcherRegistry],
});

const retentionDeleted = new Counter({
  name: "runbridge_dispatcher_retention_deleted_total",
  help: "Rows deleted by this dispatcher because they outlived OPERATION_RETENTION_DAYS / AUDIT_RETENTION_DAYS, by table",
  labelNames: ["table"] as const,
  registers: [dispatcherRegistry],
});

const runnerHandshakes = new Counter({
  name: "runbridge_dispatcher_runner_handshakes_total",
  help: "Runner handshakes by outcome: accepted, invalid_token (no server has it), throttled (too many unknown tokens from the address, refused without a lookup), unavailable (the lookup failed), draining (this dispatcher is shutting down), too_many_unauthenticated (closed to make room: its address held too many connections not yet let in, the oldest is closed), timed_out (closed: not let in within RUNNER_HANDSHAKE_TIMEOUT_MS), names_session (refused: a request naming an existing connection, which runners never send)",
  labelNames: ["outcome"] as const,
  registers: [dispatcherRegistry],
});

export function countRunnerHandshake(outcome: "accepted" | "invalid_token" | "throttled" | "unavailable" | "draining" | "too_many_unauthenticated" | "timed_out" | "names_session"): void {
  runnerHandshakes.inc({ outcome });
}

const unauthenticatedRunnerConnections = new Gauge({
  name: "runbridge_dispatcher_unauthenticated_runner_connections",
  help: "Runner connections open on this dispatcher process whose token has not (yet) been accepted",
  registers: [dispatcherRegistry],
});

export function setUnauthenticatedRunnerConnections(n: number): void {
  unauthenticatedRunnerConnections.set(n);
}

export type RetentionTable = "operations" | "audit_events";

const retentionPasses = new Counter({
  name: "runbridge_dispatcher_retention_passes_total",
  help: "Retention passes of this dispatcher by table and outcome (ok, failed): a deleted count that stops rising means nothing to delete only while passes stay ok",
  labelNames: ["table", "outcome"] as const,
  registers: [dispatcherRegistry],
});
// Every series from the start, so an alert on failures has a zero to compare with.
for (const table of ["operations", "audit_events"] as const) for (const outcome of ["ok", "failed"] as const) retentionPasses.inc({ table, outcome }, 0);

const relayRequests = new Counter({
  name: "runbridge_dispatcher_relay_requests_total",
  help: "Requests this dispatcher relayed to a runner held by another dispatcher, by outcome: delivered (answered by the runner), absent (not on the dispatcher its presence named; looked up through the socket.io adapter instead), failed (an error or no answer in time)",
  labelNames: ["outcome"] as const,
  registers: [dispatcherRegistry],
});
for (const outcome of ["delivered", "absent", "failed"] as const) relayRequests.inc({ outcome }, 0);

export function countRelayRequest(outcome: "delivered" | "absent" | "failed"): void {
  relayRequests.inc({ outcome });
}

const deliveriesHeldBack = new Counter({
  name: "runbridge_dispatcher_deliveries_held_back_total",
  help: "Deliveries put off for a moment without being sent, by reason: unresponsive (their runner, connected, did not answer the last request sent to it, and another delivery was finding out whether it answers now), busy (their runner runs as many operations as it may, and one start now and then finds out whether a place freed) (delivery-gate)",
  labelNames: ["reason"] as const,
  registers: [dispatcherRegistry],
});
for (const reason of ["unresponsive", "busy"] as const) deliveriesHeldBack.inc({ reason }, 0);

export function countDeliveryHeldBack(reason: "unresponsive" | "busy"): void {
  deliveriesHeldBack.inc({ reason });
}

/** What the sweeper did about an operation that its delivery or its result had lost track of. */
export const SWEEPER_ACTIONS = ["requeued", "runner_offline", "runner_deferred", "runner_unresponsive", "queue_backlog", "deployment_not_recorded", "not_confirmed", "queue_lost", "runner_lost", "runner_unconfirmed", "result_lost", "result_overdue", "reboot_outcome_unknown", "resolved_from_ledger"] as const;
export type SweeperAction = (typeof SWEEPER_ACTIONS)[number];

const sweeperActions = new Counter({
  name: "runbridge_dispatcher_sweeper_actions_total",
  help: "Operations the sweeper recovered or ended, by action: requeued (job lost, re-enqueued), resolved_from_ledger (result recovered from the runner), and the failures runner_offline, runner_deferred (its runner, connected, asked for it later until the delivery deadline), runner_unresponsive (its runner, connected, left the deliveries sent to it unanswered until the delivery deadline), queue_backlog (its job still waited in the queue, untaken, past the delivery deadline), deployment_not_recorded, not_confirmed, queue_lost, runner_lost, runner_unconfirmed, result_lost, result_overdue (its runner, connected, did not answer for it or kept saying it was running, long past its timeout and every grace a runner may take), reboot_outcome_unknown",
  labelNames: ["action"] as const,
  registers: [dispatcherRegistry],
});
for (const action of SWEEPER_ACTIONS) sweeperActions.inc({ action }, 0);

export function countSweeperAction(action: SweeperAction): void {
  sweeperActions.inc({ action });
}

export function countRetentionDeleted(table: RetentionTable, n: number): void {
  if (n > 0) retentionDeleted.inc({ table }, n);
}

export function countRetentionPass(table: RetentionTable, outcome: "ok" | "failed"): void {
  retentionPasses.inc({ table, outcome });
}

/** Gateways count the operations they end themselves in the same series (apps/gateway/src/metrics.ts). */
export function countOperationFinished(ending: Ending, recordedStatus: string, type: string): void {
  operationsFinished.inc(finishedLabels(ending, recordedStatus, type));
}

/** `now`: PostgreSQL's time as this dispatcher reckons it (ctx.clock), the clock acceptedAt was stamped by. */
export function observeDelivery(type: string, acceptedAt: Date, now: number): void {
  deliveryLatency.observe({ type }, Math.max(0, (now - acceptedAt.getTime()) / 1000));
}

const QUEUE_STATES = ["waiting", "active", "delayed"] as const;
/** A scrape must answer even while Redis is down: the depth is then simply absent. */
const SCRAPE_TIMEOUT_MS = 2000;

/**
 * Gauges read on scrape: the operations queue's depth (shared by every
 * dispatcher, so any one reports it) and the runners connected to this process.
 * Returns a close function for the queue handle's Redis connection.
 */
export function registerDispatcherCollectors(ctx: DispatcherContext): () => Promise<void> {
  const connection = createFailFastRedis(ctx.config.REDIS_URL);
  connection.on("error", () => undefined); // reported by readiness and the other connections
  const queue = new Queue(QueueName.Operations, { connection, prefix: ctx.keys.bull });
  queue.on("error", () => undefined);

  registerDbPoolGauge(dispatcherRegistry, "dispatcher", () => ctx.operations);

  new Gauge({
    name: "runbridge_dispatcher_queue_jobs",
    help: "Jobs in the operations delivery queue, by state (read from Redis at scrape time)",
    labelNames: ["state"] as const,
    registers: [dispatcherRegistry],
    async collect() {
      this.reset();
      try {
        const counts = await withTimeout(queue.getJobCounts(...QUEUE_STATES), SCRAPE_TIMEOUT_MS);
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      } catch (err) {
        ctx.logger.debug("queue depth unavailable for metrics", { error: String(err) });
      }
    },
  });

  new Gauge({
    name: "runbridge_dispatcher_connected_runners",
    help: "Runner sockets connected to this dispatcher process, by the version each runner reported (unknown: none)",
    labelNames: ["version"],
    registers: [dispatcherRegistry],
    collect() {
      // Rebuilt at each scrape: a version no runner reports any more leaves the output.
      this.reset();
      const byVersion = new Map<string, number>();
      for (const socket of ctx.io.of("/").sockets.values()) {
        const version = socket.data.runnerVersion ?? "unknown";
        byVersion.set(version, (byVersion.get(version) ?? 0) + 1);
      }
      for (const [version, n] of byVersion) this.set({ version }, n);
    },
  });

  new Gauge({
    name: "runbridge_dispatcher_degraded_runners",
    help: "Runner sockets connected to this dispatcher process whose runner last said it cannot take operations (its state directory cannot be written): connected, refusing every operation",
    registers: [dispatcherRegistry],
    collect() {
      let n = 0;
      for (const socket of ctx.io.of("/").sockets.values()) if (socket.data.degraded === true) n++;
      this.set(n);
    },
  });

  return async () => {
    await queue.close().catch(() => undefined);
    connection.disconnect();
  };
}

import { once } from "node:events";
import { redisKeys } from "@runbridge/contracts";
import { Sealer, Shutdown, createFailFastRedis, createLogger, createRedis } from "@runbridge/common";
import { createDb } from "@runbridge/db";
import { startCancelListener } from "./cancel-listener";
import { loadDispatcherConfig } from "./config";
import type { DispatcherContext } from "./context";
import { DeliveryGate } from "./delivery-gate";
import { createDeliveryWorker } from "./delivery-worker";
import { createHealthHandler } from "./health";
import { createDispatcherServer } from "./http-server";
import { registerDispatcherCollectors } from "./metrics";
import { PostgresClock } from "./postgres-clock";
import { RunnerPresence } from "./presence";
import { PROVIDER_ANSWER_RECORD_MS } from "./reboot-record";
import { RunnerRelay } from "./relay";
import { askLocalRunner } from "./runner-link";
import { attachRunnerHandlers, createRunnerIo, recordRunnersLastSeen } from "./socket-server";
import { Retention } from "./retention";
import { Sweeper } from "./sweeper";
import { TokenRevocations } from "./token-revocations";
import { UnauthenticatedConnections } from "./unauthenticated-connections";

async function main(): Promise<void> {
  // Configuration is checked before any connection is opened.
  const config = loadDispatcherConfig();
  const logger = createLogger("dispatcher", config.LOG_LEVEL);
  const keys = redisKeys(config.REDIS_PREFIX);
  const db = createDb(config.DATABASE_URL, { max: config.DB_POOL_SIZE });
  const prisma = db.prisma;
  const redis = createRedis(config.REDIS_URL);
  redis.on("error", (err: Error) => logger.warn("redis error", { error: err.message }));

  // Readiness pings on a fail-fast connection, so a Redis outage shows as 503 at once.
  const probeRedis = createFailFastRedis(config.REDIS_URL);
  probeRedis.on("error", () => undefined); // the main connection already logs Redis errors
  // Registered before socket.io attaches: it keeps this listener for every path but its own.
  // Aborted by the first step of shutdown: readiness turns 503 and new runners are sent elsewhere.
  const draining = new AbortController();
  const http = createDispatcherServer(config, createHealthHandler({ prisma, probeRedis, logger, draining: draining.signal }));
  const unauthenticated = new UnauthenticatedConnections(config.RUNNER_UNAUTHENTICATED_CONNECTIONS_PER_ADDRESS, config.RUNNER_UNAUTHENTICATED_CONNECTIONS_MAX, config.RUNNER_HANDSHAKE_TIMEOUT_MS, config.TRUST_PROXY, logger);
  const { io, close: closeAdapter } = createRunnerIo(http, config, keys.socketAdapter, unauthenticated);
  const sealer = Sealer.fromConfig(config);
  const relay: RunnerRelay = new RunnerRelay({
    redis,
    redisUrl: config.REDIS_URL,
    keys,
    sealer,
    dispatcherId: config.DISPATCHER_ID,
    ackTimeoutMs: config.RUNNER_ACK_TIMEOUT_MS,
    logger,
    askLocal: (serverId, socketId, event, payload) => askLocalRunner(ctx)(serverId, socketId, event, payload),
  });
  const clock = new PostgresClock(prisma, logger);
  const deliveryGate = new DeliveryGate({
    ackTimeoutMs: config.RUNNER_ACK_TIMEOUT_MS,
    slowAfterMs: Math.ceil(config.RUNNER_ACK_TIMEOUT_MS / 2),
    onUnresponsive: (serverId) => logger.warn("a runner did not acknowledge a request in time; its deliveries go one at a time until it answers again", { serverId, ackTimeoutMs: config.RUNNER_ACK_TIMEOUT_MS }),
  });
  const ctx: DispatcherContext = { config, logger, prisma, operations: db.operations, redis, keys, sealer, io, relay, clock, deliveryGate };
  const closeMetrics = registerDispatcherCollectors(ctx);
  const presence = new RunnerPresence(ctx);
  const revocations = new TokenRevocations(ctx);
  attachRunnerHandlers(ctx, presence, revocations, draining.signal, unauthenticated);
  presence.start();
  revocations.start();
  // Before runners are let in: they measure their clocks against it.
  await clock.start();

  // Before the port opens and the worker starts: other dispatchers may relay requests here at once.
  await relay.start();
  http.listen(config.DISPATCHER_PORT, config.DISPATCHER_HOST);
  await once(http, "listening");
  const worker = createDeliveryWorker(ctx);
  const sweeper = new Sweeper(ctx);
  sweeper.start();
  const retention = new Retention(ctx);
  retention.start();
  const cancelListener = startCancelListener(ctx);
  logger.info("dispatcher ready", { port: config.DISPATCHER_PORT, dispatcherId: config.DISPATCHER_ID, tls: Boolean(config.DISPATCHER_TLS_CERT_FILE) });

  // Each step waits up to 30 s, or longer for "close worker" to let a cloud provider's reboot call in flight
  // (PROVIDER_API_TIMEOUT_MS, up to 120 s) end and its answer be recorded (retried for about 8 s): cut off,
  // a reboot the provider carried out would be failed by another dispatcher as outcome unknown.
  new Shutdown(logger, Math.max(30_000, config.PROVIDER_API_TIMEOUT_MS + PROVIDER_ANSWER_RECORD_MS))
    .add("stop being ready", () => draining.abort())
    .add("stop sweeping", () => sweeper.stop())
    .add("stop reading PostgreSQL's clock", () => clock.stop())
    .add("stop pruning", () => retention.stop())
    .add("stop cancel listener", () => cancelListener.close())
    .add("stop token revocation listener", () => revocations.close())
    // Finishes deliveries in flight and takes no new jobs; the rest stay queued for other dispatchers.
    .add("close worker", () => worker.close())
    // Before presence goes: a gateway that then finds a runner not connected reads last_seen_at to tell
    // "reconnecting" from "long gone", as the sweeper of another dispatcher does.
    .add("record when runners were last seen", () => recordRunnersLastSeen(ctx))
    .add("release runner presence", () => presence.stop())
    // Runners reconnect to another dispatcher and re-send any result not yet stored.
    .add("disconnect runners", () => new Promise<void>((resolve) => void io.close(() => resolve())))
    .add("close redis", () => {
      relay.close();
      closeAdapter();
      redis.disconnect();
      probeRedis.disconnect();
      void closeMetrics();
    })
    .add("disconnect postgres", () => db.close())
    .listen();
}

main().catch((err: unknown) => {
  process.stderr.write(`dispatcher failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

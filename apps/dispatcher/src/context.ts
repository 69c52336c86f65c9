import type { Redis } from "ioredis";
import type { Server as IoServer, Socket } from "socket.io";
import type { DispatcherToRunnerEvents, RedisKeys, RunnerToDispatcherEvents } from "@runbridge/contracts";
import type { Logger, Sealer } from "@runbridge/common";
import type { OperationStore, PrismaClient } from "@runbridge/db";
import type { DispatcherConfig } from "./config";
import type { DeliveryGate } from "./delivery-gate";
import type { PostgresClock } from "./postgres-clock";
import type { RunnerRelay } from "./relay";

export interface RunnerSocketData {
  serverId: string;
  tenantId: string;
  serverName: string;
  /** The dispatcher holding the connection (seen by others through the Redis adapter), for the audit trail. */
  dispatcherId: string;
  /**
   * The relay protocol of the dispatcher holding it (RELAY_PROTOCOL_VERSION): one that speaks ours is
   * asked through its relay only, never through the adapter, whose messages anyone on Redis can read.
   * Absent on connections held by a dispatcher of an earlier version.
   */
  relayVersion?: number;
  /**
   * The runner's address: the peer's, or behind trusted proxies (TRUST_PROXY) the one they forwarded. Absent on
   * connections held by a dispatcher of an earlier version (seen through the adapter during a rolling upgrade).
   */
  clientIp?: string;
  /**
   * Admission order (a Redis counter), which decides the newest of a runner's connections: the
   * handshake times come from the dispatchers' clocks, which may disagree. Absent on connections
   * held by a dispatcher of an earlier version, or admitted while Redis did not answer.
   */
  seq?: number;
  /**
   * The admission number came only after the admission (Redis did not answer then): it orders the connection
   * after connections admitted meanwhile, which may be newer — the runner back elsewhere while this one, dead,
   * had not timed out yet. Such a connection sends no other away (runner-link.ts, surelyOlder).
   */
  seqLate?: true;
  /** The version the runner reported (RUNNER_VERSION_PATTERN); absent when it said none usable. */
  runnerVersion?: string;
  /** Whether the runner last said something keeps it from taking operations (runner-health.ts), for the metric. */
  degraded?: boolean;
}

export type RunnerIo = IoServer<RunnerToDispatcherEvents, DispatcherToRunnerEvents, Record<string, never>, RunnerSocketData>;
export type RunnerSocket = Socket<RunnerToDispatcherEvents, DispatcherToRunnerEvents, Record<string, never>, RunnerSocketData>;

export interface DispatcherContext {
  config: DispatcherConfig;
  logger: Logger;
  prisma: PrismaClient;
  /** The operation hot path in plain SQL (same pool as prisma). */
  operations: OperationStore;
  redis: Redis;
  keys: RedisKeys;
  sealer: Sealer;
  io: RunnerIo;
  /** Requests to runners held by other dispatchers (runner-link.ts). */
  relay: RunnerRelay;
  /** PostgreSQL's clock as this process estimates it (what runners measure theirs against). */
  clock: PostgresClock;
  /** Keeps a runner that does not answer from holding every delivery slot (delivery-gate.ts). */
  deliveryGate: DeliveryGate;
}

export const serverRoom = (serverId: string) => `server:${serverId}`;

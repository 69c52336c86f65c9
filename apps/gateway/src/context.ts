import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { RedisKeys } from "@runbridge/contracts";
import type { Logger, Sealer } from "@runbridge/common";
import type { OperationStore, PrismaClient } from "@runbridge/db";
import type { KeyServices } from "./auth/key-services";
import type { GatewayConfig } from "./config";
import type { CompletionWaiter } from "./services/completion-waiter";
import type { OperationCounts } from "./services/operation-counts";
import type { Presence } from "./services/presence";

/** Everything a request handler may use; built once per process in main.ts (or by tests). */
export interface GatewayContext {
  config: GatewayConfig;
  logger: Logger;
  prisma: PrismaClient;
  /** The operation hot path in plain SQL (same pool as prisma). */
  operations: OperationStore;
  redis: Redis;
  keys: RedisKeys;
  queue: Queue;
  sealer: Sealer;
  waiter: CompletionWaiter;
  presence: Presence;
  /** Each automation key's operation count, without a full count per call (services/operation-counts.ts). */
  operationCounts: OperationCounts;
  /** Automation-key cache, rate limiter and last-used recorder (auth/key-services.ts). */
  keyServices: KeyServices;
  /**
   * Aborted as the process starts shutting down: held requests are answered
   * at once (`status: "running"`, the client polls) and log streams end (the
   * client resumes on another gateway), so a rolling restart is not held up
   * by the longest wait.
   */
  draining: AbortSignal;
}

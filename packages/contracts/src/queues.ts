import Joi from "joi";
import { Limits } from "./limits";
import { OPERATION_TYPES, type OperationType } from "./operations";

/** Every BullMQ queue of the system. */
export const QueueName = {
  Operations: "operations",
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

/**
 * Job catalog: each job's name, payload schema and retry policy together.
 * Job data carries no secret in clear text: `sealed` is an AES-256-GCM envelope
 * (see @runbridge/common sealing) of the operation's secret inputs.
 */
export interface DeliverOperationJob {
  operationId: string;
  serverId: string;
  type: OperationType;
  /** Envelope of OperationSecrets, or absent when the operation has none. */
  sealed?: string;
}

export interface OperationSecrets {
  env?: Record<string, string>;
  password?: string;
}

export const JobName = {
  DeliverOperation: "deliver-operation",
} as const;
export type JobName = (typeof JobName)[keyof typeof JobName];

export interface JobPayloads {
  [JobName.DeliverOperation]: DeliverOperationJob;
}

export const JobCatalog = {
  [JobName.DeliverOperation]: {
    queue: QueueName.Operations,
    schema: Joi.object<DeliverOperationJob>({
      operationId: Joi.string().uuid().required(),
      serverId: Joi.string().uuid().required(),
      type: Joi.string()
        .valid(...OPERATION_TYPES)
        .required(),
      sealed: Joi.string(),
    }),
    /**
     * Retried once a second while the runner is away, until the operation's own deadlines end
     * it (deliver_by before it is handed over; its timeout's overdue sweep after), never until
     * BullMQ gives up: a job that ran out of attempts inside its delivery window would be taken
     * for a lost one. An attempt against an absent runner fails within milliseconds, so the
     * count allows one a second over the longest of those windows (delivery, timeout, and the
     * dispatchers' result grace of at most an hour), four times over. The delivery handler is
     * idempotent (Postgres transitions + the runner's ledger), so BullMQ's at-least-once
     * redelivery cannot run a command twice.
     */
    options: {
      attempts: 4 * (Limits.deliveryTimeoutMaxSeconds + Limits.timeoutMaxSeconds + 3600),
      backoff: { type: "fixed", delay: 1000 },
      // Postgres holds the record of every operation; a delivered job has nothing left to say, so
      // Redis memory stays flat however many operations run.
      removeOnComplete: true,
      removeOnFail: { age: 24 * 3600, count: 1000 },
      // The last failure's stack only: BullMQ appends one per attempt and rewrites them all each time,
      // and a job retried once a second for an hour (RUNNER_DELIVERY_TIMEOUT_SECONDS at its most)
      // would carry thousands, megabytes rewritten in Redis every second.
      stackTraceLimit: 1,
    },
  },
} as const satisfies Record<JobName, { queue: QueueName; schema: Joi.ObjectSchema; options: object }>;

import type { Pool } from "pg";
import type { Operation, Server } from "@prisma/client";
import { FailureExitCode, OperationStatus, OperationType, RebootPath } from "@runbridge/contracts";
import { runnerHealthText } from "./runner-health-sql";

/**
 * The operation hot path in plain SQL on the pool Prisma also uses. Every
 * exec crosses these statements; through Prisma's query compiler each costs
 * several times a raw round trip (measured in docs/benchmarks.md). Each write
 * is one statement — a CTE where the operation and its audit event must change
 * together — so it stays atomic without a multi-round-trip transaction.
 * Everything else goes through Prisma; the schema is Prisma's.
 *
 * Each statement is named, so every pooled connection parses and plans it once
 * instead of on every call (about 40 % of PostgreSQL's CPU per exec, see
 * docs/benchmarks.md). They name their columns rather than `*`: a
 * prepared `*` fails with "cached plan must not change result type" once a
 * migration adds a column while the services keep running.
 */

export interface NewOperationRow {
  /** Chosen by the caller, so that an insert whose answer is lost can still be named (and settled). */
  id: string;
  tenantId: string;
  serverId: string;
  automationKeyId: string | null;
  type: string;
  command: string | null;
  params: Record<string, unknown>;
  workingDirectory: string | null;
  timeoutSeconds: number;
  envKeys: string[];
  runId: string | null;
  runContext: Record<string, unknown> | null;
  clientIp: string | null;
  /**
   * Seconds from now (PostgreSQL's clock, which the dispatchers' claim reads too) until the operation
   * must have been handed to a runner: a gateway's own clock may be off.
   */
  deliverWithinSeconds: number;
  /** The accepting deployment's REDIS_PREFIX (whose queue carries the operation). */
  redisPrefix: string;
  /** The `data` of the operation.created audit event. */
  audit: Record<string, unknown>;
}

/**
 * A server as an operation request finds it, with how long ago its runner was last seen by
 * PostgreSQL's clock — the one that stamped last_seen_at; the gateway's own may be off by minutes.
 */
export type TargetServer = Server & { lastSeenAgoMs: number | null };

export interface FinishFields {
  operationId: string;
  status: string;
  exitCode?: number | null;
  stdout?: string;
  stderr?: string;
  stdoutTruncated?: boolean;
  stderrTruncated?: boolean;
  durationMs?: number | null;
  startedAt?: Date | null;
  error?: string | null;
}

/**
 * A step of an operation recorded together with a write to its row (e.g. the path a reboot
 * took): keys merged into its `params`, and an audit event of its own. The event is written
 * once per operation and type, so writing the same note again adds nothing.
 */
export interface OperationNote {
  params: Record<string, unknown>;
  event: { type: string; data: Record<string, unknown> };
}

type Row = Record<string, unknown>;

/**
 * A delivery's dispatched mark: its time, and whether this delivery's claim set it (the operation was unmarked)
 * rather than finding it set by an earlier claim — whose start may still be on its way to the runner.
 */
export interface DispatchClaim {
  at: Date;
  claimedHere: boolean;
}

/** What a runner connection said of its health (RunnerHealth), and which connection said it. */
export interface RunnerHealthReport {
  /** Null: no problem (or nothing said: a runner of an earlier release). */
  problem: string | null;
  /** The connection's admission number (undefined: it has none). */
  seq?: number;
  /** The runner's address, for the audit event. */
  clientIp?: string;
}

/** Every column toOperation reads. */
const OPERATION_COLUMNS =
  "id, tenant_id, server_id, automation_key_id, type, status, command, params, working_directory, timeout_seconds, env_keys, run_id, " +
  "run_context, client_ip, exit_code, stdout, stderr, stdout_truncated, stderr_truncated, duration_ms, error, created_at, deliver_by, " +
  "dispatched_at, started_at, completed_at, redis_prefix";
const SERVER_COLUMNS =
  "id, tenant_id, name, runner_token_hash, last_seen_at, created_at, runner_version, runner_problem, runner_problem_since, runner_health_seq, provider, provider_server_id, provider_token_ciphertext";

/** A column list qualified with a table alias, for joins. */
const qualified = (alias: string, columns: string): string =>
  columns
    .split(", ")
    .map((c) => `${alias}.${c}`)
    .join(", ");

/** A statement prepared once per connection, under a name no other code uses. */
function statement(name: string, text: string): { name: string; text: string } {
  return { name: `runbridge.${name}`, text };
}

/**
 * The audit event of a note, inserted for each row of `source` (the CTE that wrote the
 * operation) unless the operation already has one of that type; `type` and `data` are the
 * statement's placeholders for the event's type and data.
 */
const noteEventText = (source: string, type: string, data: string): string =>
  `INSERT INTO audit_events (id, tenant_id, type, automation_key_id, operation_id, server_id, run_id, data, created_at)
   SELECT gen_random_uuid(), tenant_id, ${type}::text, automation_key_id, id, server_id, run_id, ${data}::jsonb, now() FROM ${source}
   WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.operation_id = ${source}.id AND e.type = ${type}::text)`;

/**
 * A registry logout the platform failed or timed out ($3) is recorded as the spec answers its
 * failures: completed, with a non-zero exit code (the one given, else 124 for a timeout and 125)
 * and the reason ($10, also kept in `error`) on a line of stderr. Here, as every ending of an
 * operation passes through this statement; the runner already reports its own failures of a
 * logout this way (StartOperation.failureAsExitCode).
 */
const LOGOUT_FAILED = `(type = '${OperationType.RegistryLogout}' AND $3::text IN ('${OperationStatus.Failed}', '${OperationStatus.Timeout}'))`;
const finishedStatus = `CASE WHEN ${LOGOUT_FAILED} THEN '${OperationStatus.Completed}' ELSE $3 END`;
const finishedExitCode = `CASE WHEN ${LOGOUT_FAILED} AND COALESCE($4::integer, 0) = 0
  THEN CASE WHEN $3 = '${OperationStatus.Timeout}' THEN ${FailureExitCode.TimedOut} ELSE ${FailureExitCode.NotRun} END ELSE $4 END`;
const finishedStderr = `CASE WHEN ${LOGOUT_FAILED} AND $10::text IS NOT NULL
  THEN $6::text || CASE WHEN $6::text = '' OR right($6::text, 1) = E'\\n' THEN '' ELSE E'\\n' END || $10::text || E'\\n' ELSE $6::text END`;

/**
 * A start time a runner stamped (by its clock corrected to PostgreSQL's, within the error of that
 * measurement, or its own when it could not measure), recorded between the operation's handover and
 * now: never before dispatched_at nor after completed_at, whatever the runner's clock said.
 */
const STARTED_WITHIN_PLATFORM_TIMES = (stamp: string): string => `GREATEST(LEAST(${stamp}, now()), dispatched_at)`;

/** The finish; `noted` also merges $12 into params and writes the note's event ($13 type, $14 data), in the same statement. */
/**
 * Which running operations a finish may end: any, only one never handed to a runner, or only one never handed over whose
 * delivery deadline has passed — "never handed over" also meaning no start reported: a runner's report of a start (one
 * sent before a refused claim was released, reaching the runner after) says it runs, whatever the mark says. Two more
 * for a reboot's cloud provider call (see claimRebootCall): "reboot-call-unanswered",
 * only one claimed for a call with no path recorded; "reboot-provider", that, or one with the provider path recorded — never
 * one with the runner path recorded, which another delivery of it hands to the runner.
 */
export type FinishCondition = "running" | "undispatched" | "past-deadline" | "reboot-call-unanswered" | "reboot-provider";
const REBOOT_CALL_UNANSWERED = "dispatched_at IS NOT NULL AND NOT (params ? 'reboot_path')";
const FINISH_CONDITION_SQL: Record<FinishCondition, string> = {
  running: "",
  undispatched: "AND dispatched_at IS NULL AND started_at IS NULL",
  // As the delivery claims read it: a deadline moved forward meanwhile (a deploy waiting its turn) keeps it.
  "past-deadline": "AND dispatched_at IS NULL AND started_at IS NULL AND deliver_by < now()",
  "reboot-call-unanswered": `AND ${REBOOT_CALL_UNANSWERED}`,
  "reboot-provider": `AND (params->>'reboot_path' = '${RebootPath.Provider}' OR (${REBOOT_CALL_UNANSWERED}))`,
};
const FINISH_CONDITIONS = Object.keys(FINISH_CONDITION_SQL) as FinishCondition[];

const finishText = (opts: { condition: FinishCondition; noted: boolean }): string =>
  `WITH done AS (
     UPDATE operations SET status = ${finishedStatus}, exit_code = ${finishedExitCode}, stdout = $5, stderr = ${finishedStderr},
            stdout_truncated = $7, stderr_truncated = $8, duration_ms = $9, error = $10, completed_at = now(),
            started_at = CASE WHEN $11::timestamptz IS NULL THEN started_at ELSE ${STARTED_WITHIN_PLATFORM_TIMES('$11::timestamptz')} END${opts.noted ? ", params = params || $12::jsonb" : ""}
     WHERE id = $1 AND server_id = $2 AND status = 'running' ${FINISH_CONDITION_SQL[opts.condition]}
     RETURNING ${OPERATION_COLUMNS}
   ), audit AS (
     INSERT INTO audit_events (id, tenant_id, type, automation_key_id, operation_id, server_id, run_id, data, created_at)
     SELECT gen_random_uuid(), tenant_id, 'operation.finished', automation_key_id, id, server_id, run_id,
            jsonb_build_object('operation_type', type, 'status', status, 'exit_code', exit_code, 'duration_ms', duration_ms,
                               'error', error, 'stdout_bytes', octet_length(stdout), 'stderr_bytes', octet_length(stderr)),
            completed_at
     FROM done
   ), deployment AS (
     UPDATE deployments d SET status = done.status, completed_at = done.completed_at FROM done WHERE d.operation_id = done.id
   )${opts.noted ? `, noted AS (${noteEventText("done", "$13", "$14")})` : ""}
   SELECT ${OPERATION_COLUMNS} FROM done`;

/**
 * A statement that marks the operation handed to a runner, keeping an earlier mark, and returns with `claimed_here`
 * whether it set the mark (the row was unmarked) rather than finding one an earlier claim set — whose start may still
 * be on its way. The row's value before the write comes from a locking read in the same statement: under concurrent
 * claims the lock orders them and each reads what the one before it wrote (comparing the mark with the statement's
 * clock could not tell two claims within one millisecond apart, the column's precision, and it rounds up).
 */
const claimText = (where: string, returning: string): string =>
  `UPDATE operations o SET dispatched_at = COALESCE(o.dispatched_at, now())
   FROM (SELECT id, dispatched_at IS NULL AS unmarked FROM operations WHERE id = $1 FOR UPDATE) prior
   WHERE o.id = prior.id AND o.status = 'running'${where}
   RETURNING ${returning}, prior.unmarked AS claimed_here`;

const SQL = {
  insertWithAudit: statement(
    "operation.insert",
    `WITH op AS (
       INSERT INTO operations (id, tenant_id, server_id, automation_key_id, type, status, command, params, working_directory,
                               timeout_seconds, env_keys, run_id, run_context, client_ip, deliver_by, redis_prefix, created_at)
       VALUES ($16::uuid, $1, $2, $3, $4, 'running', $5, $6::jsonb, $7, $8, $9::text[], $10, $11::jsonb, $12,
               now() + make_interval(secs => $13::integer), $15, now())
       RETURNING ${OPERATION_COLUMNS}
     ), audit AS (
       INSERT INTO audit_events (id, tenant_id, type, automation_key_id, operation_id, server_id, run_id, client_ip, data, created_at)
       SELECT gen_random_uuid(), tenant_id, 'operation.created', automation_key_id, id, server_id, run_id, client_ip, $14::jsonb, created_at FROM op
     )
     SELECT ${OPERATION_COLUMNS} FROM op`,
  ),
  findById: statement("operation.by-id", `SELECT ${OPERATION_COLUMNS} FROM operations WHERE id = $1`),
  findForDelivery: statement("operation.for-delivery", `SELECT ${OPERATION_COLUMNS}, deliver_by < now() AS past_deadline FROM operations WHERE id = $1`),
  findForTenant: statement(
    "operation.for-tenant",
    `SELECT ${qualified("o", OPERATION_COLUMNS)}, s.name AS server_name FROM operations o LEFT JOIN servers s ON s.id = o.server_id WHERE o.id = $1 AND o.tenant_id = $2`,
  ),
  findServerForTenant: statement(
    "server.for-tenant",
    `SELECT ${SERVER_COLUMNS}, (extract(epoch FROM now() - last_seen_at) * 1000)::float8 AS last_seen_ago_ms FROM servers WHERE id = $1 AND tenant_id = $2`,
  ),
  touchServer: statement("server.touch", "UPDATE servers SET last_seen_at = now() WHERE id = $1"),
  touchServers: statement("server.touch-many", "UPDATE servers SET last_seen_at = now() WHERE id = ANY($1::uuid[])"),
  // One statement for both, so that what a runner said as it connected is on the row the moment it is shown connected.
  admitRunner: statement("server.runner-admitted-health", runnerHealthText({ serverId: "$1", version: "$2", problem: "$3", seq: "$4", clientIp: "$5" })),
  runnerHealth: statement("server.runner-health", runnerHealthText({ serverId: "$1", problem: "$2", seq: "$3", clientIp: "$4" })),
  belongsToServer: statement("operation.belongs", "SELECT 1 FROM operations WHERE id = $1 AND server_id = $2"),
  // Never later than PostgreSQL's now(): a runner whose clock is ahead would push the overdue sweep back by as much.
  // A running operation it finds unmarked (a refused claim released while an earlier start was on its way) is marked
  // handed over again, by PostgreSQL's clock, and its start with it (never before the hand-over, as everywhere): a
  // runner's stamp (its clock may be behind) must not make it overdue early.
  markStarted: statement(
    "operation.started",
    `UPDATE operations SET started_at = CASE WHEN dispatched_at IS NULL AND status = 'running' THEN now() ELSE ${STARTED_WITHIN_PLATFORM_TIMES("$3::timestamptz")} END,
            dispatched_at = CASE WHEN status = 'running' THEN COALESCE(dispatched_at, now()) ELSE dispatched_at END
     WHERE id = $1 AND server_id = $2 AND started_at IS NULL`,
  ),
  claimForDispatch: statement(
    "operation.claim",
    claimText(" AND (o.dispatched_at IS NOT NULL OR o.deliver_by > now())", qualified("o", OPERATION_COLUMNS)),
  ),
  claimRebootCall: statement(
    "operation.claim-reboot-call",
    "UPDATE operations SET dispatched_at = now() WHERE id = $1 AND status = 'running' AND dispatched_at IS NULL AND NOT (params ? 'reboot_path') RETURNING dispatched_at",
  ),
  rebootCallClaimAge: statement(
    "operation.reboot-call-claim-age",
    `SELECT (extract(epoch FROM now() - dispatched_at) * 1000)::float8 AS age_ms FROM operations WHERE id = $1 AND status = 'running' AND ${REBOOT_CALL_UNANSWERED}`,
  ),
  markDispatched: statement(
    "operation.dispatched",
    claimText("", "o.dispatched_at"),
  ),
  releaseDispatch: statement(
    "operation.release-dispatch",
    "UPDATE operations SET dispatched_at = NULL WHERE id = $1 AND status = 'running' AND started_at IS NULL AND dispatched_at = $2",
  ),
  // operation.finish, operation.finish-undispatched, ...; the same with -noted.
  finish: Object.fromEntries(
    FINISH_CONDITIONS.map((c) => [c, statement(`operation.finish${c === "running" ? "" : `-${c}`}`, finishText({ condition: c, noted: false }))]),
  ) as Record<FinishCondition, { name: string; text: string }>,
  finishNoted: Object.fromEntries(
    FINISH_CONDITIONS.map((c) => [c, statement(`operation.finish-noted${c === "running" ? "" : `-${c}`}`, finishText({ condition: c, noted: true }))]),
  ) as Record<FinishCondition, { name: string; text: string }>,
  lockEnded: statement("operation.lock-ended", "SELECT 1 FROM operations WHERE id = $1 AND server_id = $2 AND status <> 'running' FOR UPDATE"),
  resultAfterEnd: statement(
    "operation.result-after-end",
    `INSERT INTO audit_events (id, tenant_id, type, automation_key_id, operation_id, server_id, run_id, data, created_at)
     SELECT gen_random_uuid(), o.tenant_id, 'operation.result_after_end', o.automation_key_id, o.id, o.server_id, o.run_id,
            $4::jsonb || jsonb_build_object('recorded_status', o.status, 'recorded_error', o.error), now()
     FROM operations o
     WHERE o.id = $1 AND o.server_id = $2 AND o.status <> 'running' AND o.error = ANY($3::text[])
       AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.operation_id = o.id AND e.type = 'operation.result_after_end')`,
  ),
  // $5: the caller holds the claim of a provider call (claimRebootCall), released here; else no one may hold one.
  noteRebootPath: statement(
    "operation.note-reboot-path",
    `WITH noted_op AS (
       UPDATE operations SET params = params || $2::jsonb, dispatched_at = NULL
       WHERE id = $1 AND status = 'running' AND NOT (params ? 'reboot_path') AND (dispatched_at IS NOT NULL) = $5::boolean
       RETURNING id, tenant_id, automation_key_id, server_id, run_id
     ), noted AS (${noteEventText("noted_op", "$3", "$4")})
     SELECT id FROM noted_op`,
  ),
};

/** A row of `operations` in the shape Prisma returns, so callers need not know which path loaded it. */
function toOperation(r: Row): Operation {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    serverId: r.server_id as string,
    automationKeyId: (r.automation_key_id as string | null) ?? null,
    type: r.type as string,
    status: r.status as string,
    command: (r.command as string | null) ?? null,
    params: (r.params ?? {}) as Operation["params"],
    workingDirectory: (r.working_directory as string | null) ?? null,
    timeoutSeconds: r.timeout_seconds as number,
    envKeys: (r.env_keys as string[] | null) ?? [],
    runId: (r.run_id as string | null) ?? null,
    runContext: (r.run_context ?? null) as Operation["runContext"],
    clientIp: (r.client_ip as string | null) ?? null,
    exitCode: (r.exit_code as number | null) ?? null,
    stdout: (r.stdout as string | null) ?? null,
    stderr: (r.stderr as string | null) ?? null,
    stdoutTruncated: Boolean(r.stdout_truncated),
    stderrTruncated: Boolean(r.stderr_truncated),
    durationMs: (r.duration_ms as number | null) ?? null,
    error: (r.error as string | null) ?? null,
    createdAt: r.created_at as Date,
    deliverBy: r.deliver_by as Date,
    redisPrefix: (r.redis_prefix as string | null) ?? null,
    dispatchedAt: (r.dispatched_at as Date | null) ?? null,
    startedAt: (r.started_at as Date | null) ?? null,
    completedAt: (r.completed_at as Date | null) ?? null,
  };
}

const OPERATION_DATES = ["createdAt", "deliverBy", "dispatchedAt", "startedAt", "completedAt"] as const;

/** An Operation that went through JSON (dates as ISO strings) back in its Prisma shape. */
export function reviveOperation(json: string): Operation {
  const o = JSON.parse(json) as Record<string, unknown>;
  for (const k of OPERATION_DATES) o[k] = typeof o[k] === "string" ? new Date(o[k] as string) : null;
  return o as unknown as Operation;
}

/** The process's PostgreSQL pool, for its metrics. */
export interface PoolStats {
  /** Connections open, in use or idle. */
  open: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
}

export class OperationStore {
  constructor(private readonly pool: Pool) {}

  /** The pool this store shares with Prisma: a pool whose connections never come back shows here first. */
  poolStats(): PoolStats {
    return { open: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  /** The operation and its operation.created audit event, in one statement. */
  async insertWithAudit(o: NewOperationRow): Promise<Operation> {
    const { rows } = await this.pool.query({
      ...SQL.insertWithAudit,
      values: [
        o.tenantId,
        o.serverId,
        o.automationKeyId,
        o.type,
        o.command,
        JSON.stringify(o.params),
        o.workingDirectory,
        o.timeoutSeconds,
        o.envKeys,
        o.runId,
        o.runContext === null ? null : JSON.stringify(o.runContext),
        o.clientIp,
        o.deliverWithinSeconds,
        JSON.stringify(o.audit),
        o.redisPrefix,
        o.id,
      ],
    });
    return toOperation(rows[0] as Row);
  }

  async findById(id: string): Promise<Operation | null> {
    const { rows } = await this.pool.query({ ...SQL.findById, values: [id] });
    return rows[0] ? toOperation(rows[0] as Row) : null;
  }

  /**
   * The operation, and whether its delivery deadline has passed by PostgreSQL's clock — the clock
   * that wrote it, and that the claim reads it with; a dispatcher's own clock may be off.
   */
  async findForDelivery(id: string): Promise<{ op: Operation; pastDeliveryDeadline: boolean } | null> {
    const { rows } = await this.pool.query({ ...SQL.findForDelivery, values: [id] });
    const row = rows[0] as Row | undefined;
    return row ? { op: toOperation(row), pastDeliveryDeadline: row.past_deadline === true } : null;
  }

  /** An operation of a tenant with its server's name, as the status endpoint shows it. */
  async findForTenant(id: string, tenantId: string): Promise<(Operation & { server: { name: string } | null }) | null> {
    const { rows } = await this.pool.query({ ...SQL.findForTenant, values: [id, tenantId] });
    const r = rows[0] as Row | undefined;
    return r ? { ...toOperation(r), server: r.server_name == null ? null : { name: r.server_name as string } } : null;
  }

  /** The target server of an operation request, within the caller's tenant. */
  async findServerForTenant(id: string, tenantId: string): Promise<TargetServer | null> {
    const { rows } = await this.pool.query({ ...SQL.findServerForTenant, values: [id, tenantId] });
    const r = rows[0] as Row | undefined;
    if (!r) return null;
    return {
      id: r.id as string,
      tenantId: r.tenant_id as string,
      name: r.name as string,
      runnerTokenHash: r.runner_token_hash as string,
      lastSeenAt: (r.last_seen_at as Date | null) ?? null,
      createdAt: r.created_at as Date,
      runnerVersion: (r.runner_version as string | null) ?? null,
      runnerProblem: (r.runner_problem as string | null) ?? null,
      runnerProblemSince: (r.runner_problem_since as Date | null) ?? null,
      // bigint comes as text from pg.
      runnerHealthSeq: r.runner_health_seq == null ? null : BigInt(r.runner_health_seq as string),
      provider: (r.provider as string | null) ?? null,
      providerServerId: (r.provider_server_id as string | null) ?? null,
      providerTokenCiphertext: (r.provider_token_ciphertext as string | null) ?? null,
      lastSeenAgoMs: (r.last_seen_ago_ms as number | null) ?? null,
    };
  }

  /** A runner of the server disconnected now. */
  async touchServer(serverId: string): Promise<void> {
    await this.pool.query({ ...SQL.touchServer, values: [serverId] });
  }

  /** Runners of these servers were seen now (a dispatcher about to close them all). */
  async touchServers(serverIds: string[]): Promise<void> {
    await this.pool.query({ ...SQL.touchServers, values: [serverIds] });
  }

  /**
   * A runner of the server connected now, reporting this version (null: it did not say) and this health
   * (see recordRunnerHealth). Whether its health was recorded: false when a newer connection's report holds the row.
   */
  async runnerAdmitted(serverId: string, runnerVersion: string | null, health: RunnerHealthReport): Promise<boolean> {
    const { rows } = await this.pool.query({ ...SQL.admitRunner, values: [serverId, runnerVersion, health.problem, health.seq ?? null, health.clientIp ?? null] });
    return (rows[0] as Row | undefined)?.counts === true;
  }

  /**
   * A runner connection's health on its server's row, with an audit event when the server enters or leaves
   * the degraded state (runner-health-sql.ts): false when it does not count (a newer connection's report
   * holds the row), or the server is gone.
   */
  async recordRunnerHealth(serverId: string, health: RunnerHealthReport): Promise<boolean> {
    const { rows } = await this.pool.query({ ...SQL.runnerHealth, values: [serverId, health.problem, health.seq ?? null, health.clientIp ?? null] });
    return (rows[0] as Row | undefined)?.counts === true;
  }

  /** Whether the operation belongs to the server (a runner may only write its own server's operations). */
  async belongsToServer(id: string, serverId: string): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...SQL.belongsToServer, values: [id, serverId] });
    return rowCount === 1;
  }

  /** The runner's report that it started the operation (first report wins). */
  async markStarted(id: string, serverId: string, startedAt: Date): Promise<void> {
    await this.pool.query({ ...SQL.markStarted, values: [id, serverId, startedAt] });
  }

  /**
   * Reads and marks it handed to a runner in one statement, only while it is
   * still running and either already dispatched or within its delivery
   * deadline. Null in every other case, which the caller handles the slow way.
   * `claimedHere`: this call set the mark (see DispatchClaim).
   */
  async claimForDispatch(id: string): Promise<(Operation & { claimedHere: boolean }) | null> {
    const { rows } = await this.pool.query({ ...SQL.claimForDispatch, values: [id] });
    const row = rows[0] as Row | undefined;
    return row ? { ...toOperation(row), claimedHere: row.claimed_here === true } : null;
  }

  /**
   * Claims a reboot for one cloud provider API call: only while it is running, not claimed by anyone
   * (no dispatched mark) and no path is recorded. Exclusive, unlike markDispatched: two deliveries of one
   * reboot (a stalled one whose job lock lapsed, and the one that took the job over) must not both call.
   */
  async claimRebootCall(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...SQL.claimRebootCall, values: [id] });
    return (rowCount ?? 0) > 0;
  }

  /**
   * How long ago a reboot was claimed for a provider call whose outcome is not recorded yet, by PostgreSQL's clock
   * (the one that stamped the claim; a dispatcher's own may be off): null when it is not so claimed (it ended, or a
   * path was recorded).
   */
  async rebootCallClaimAgeMs(id: string): Promise<number | null> {
    const { rows } = await this.pool.query({ ...SQL.rebootCallClaimAge, values: [id] });
    const row = rows[0] as Row | undefined;
    return row ? (row.age_ms as number) : null;
  }

  /**
   * Marks it handed to a runner (keeping the first time), only while it is
   * still running: the mark, null when it has ended meanwhile.
   */
  async markDispatched(id: string): Promise<DispatchClaim | null> {
    const { rows } = await this.pool.query({ ...SQL.markDispatched, values: [id] });
    const row = rows[0] as Row | undefined;
    return row ? { at: row.dispatched_at as Date, claimedHere: row.claimed_here === true } : null;
  }

  /**
   * Takes back a dispatched mark after the runner refused the start and asked
   * for it later (the caller's reasons; only a mark its claim set, claimedHere).
   * Only while nothing says it may have started anywhere: still running, no
   * start reported, and still marked with `dispatchedAt`, the time the refused
   * delivery claimed it with — a claim made after an earlier release carries a
   * time of its own and is left alone. False when any of these no longer holds.
   */
  async releaseDispatch(id: string, dispatchedAt: Date): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...SQL.releaseDispatch, values: [id, dispatchedAt] });
    return rowCount === 1;
  }

  /**
   * The conditional transition to a terminal state, its operation.finished
   * audit event and its deployment's status, in one statement. Null when the
   * operation was not running (already ended, another server's), or not as `condition` asks: with
   * "undispatched", one possibly running on a runner; with "past-deadline", also one whose delivery
   * deadline is still ahead (it may yet be handed over). A `note` is recorded in the same statement, so
   * it exists exactly when the finish does.
   */
  async finish(serverId: string, f: FinishFields, condition: FinishCondition = "running", note?: OperationNote): Promise<Operation | null> {
    const values = [
      f.operationId,
      serverId,
      f.status,
      f.exitCode ?? null,
      f.stdout ?? "",
      f.stderr ?? "",
      f.stdoutTruncated ?? false,
      f.stderrTruncated ?? false,
      f.durationMs ?? null,
      f.error ?? null,
      f.startedAt ?? null,
    ];
    const { rows } = await this.pool.query(
      note
        ? { ...SQL.finishNoted[condition], values: [...values, JSON.stringify(note.params), note.event.type, JSON.stringify(note.event.data)] }
        : { ...SQL.finish[condition], values },
    );
    return rows[0] ? toOperation(rows[0] as Row) : null;
  }

  /**
   * The audit event of a runner's result that arrived after the platform had ended its operation
   * with one of `platformErrors` (e.g. runner lost): the operation keeps that ending — clients may
   * have acted on it — and the event says what the command did. Written once per operation; false
   * when not written (the operation is running, ended otherwise, or already has one).
   */
  async resultAfterEnd(serverId: string, operationId: string, platformErrors: readonly string[], result: Record<string, unknown>): Promise<boolean> {
    // "Once" needs the operation's row locked first: the insert's NOT EXISTS reads a snapshot, and two
    // deliveries of the result at once (a runner re-sending on a new connection) both saw none. The
    // insert runs after the lock is granted, so its snapshot holds the other's committed event.
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query({ ...SQL.lockEnded, values: [operationId, serverId] });
      const { rowCount } = await client.query({ ...SQL.resultAfterEnd, values: [operationId, serverId, platformErrors, JSON.stringify(result)] });
      await client.query("COMMIT");
      client.release();
      return rowCount === 1;
    } catch (err) {
      // Not back to the pool: the connection may be broken or still inside the transaction.
      client.release(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }


  /**
   * Records the path a reboot takes (a note: params keys and their audit event), once: only while it is
   * running with no path recorded, and claimed for a provider call by the caller (`ownClaim`: the claim
   * is released with it) or by no one. Two deliveries of one reboot at once (one stalled past its job
   * lock) may decide differently — a provider linked in between: the one that records first, or claims
   * first for its call, decides. False when it ended, or another delivery's decision or claim came first.
   */
  async noteRebootPath(id: string, note: OperationNote, ownClaim: boolean): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...SQL.noteRebootPath, values: [id, JSON.stringify(note.params), note.event.type, JSON.stringify(note.event.data), ownClaim] });
    return rowCount === 1;
  }

  /**
   * Each key's operations created before a cutoff `settleSeconds` ago, and the
   * cutoff (PostgreSQL's clock, to the millisecond like created_at, so that
   * every row is either before it or at/after it).
   */
  async countByKeyBefore(keyIds: string[], settleSeconds: number): Promise<{ keyId: string; count: number; until: Date }[]> {
    const { rows } = await this.pool.query<{ key_id: string; n: string; until: Date }>(
      `WITH c AS (SELECT date_trunc('milliseconds', now() - make_interval(secs => $2)) AS until)
       SELECT k.id AS key_id, c.until, (SELECT count(*) FROM operations o WHERE o.automation_key_id = k.id AND o.created_at < c.until) AS n
       FROM unnest($1::uuid[]) AS k(id), c`,
      [keyIds, settleSeconds],
    );
    return rows.map((r) => ({ keyId: r.key_id, count: Number(r.n), until: r.until }));
  }

  /** Each key's operations created at or after its own `since` (through the automation_key_id, created_at index). */
  async countByKeySince(keys: { keyId: string; since: Date }[]): Promise<Map<string, number>> {
    const { rows } = await this.pool.query<{ key_id: string; n: string }>(
      `SELECT k.id AS key_id, (SELECT count(*) FROM operations o WHERE o.automation_key_id = k.id AND o.created_at >= k.since) AS n
       FROM unnest($1::uuid[], $2::timestamptz[]) AS k(id, since)`,
      [keys.map((k) => k.keyId), keys.map((k) => k.since)],
    );
    return new Map(rows.map((r) => [r.key_id, Number(r.n)]));
  }
}

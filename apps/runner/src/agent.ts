import { readFileSync } from "node:fs";
import { LRUCache } from "lru-cache";
import { io, type Socket } from "socket.io-client";
import { DeployVar, HandshakeRefusal, ResultsNamespace, RunnerTimings, SignedAnswer, SocketPath, cancelledByRunner, runnerProblemText, type CancelAck, type LedgerQueryReply, type ResultAck, type DispatcherToRunnerEvents, type OperationResult, type RunnerHandshakeAuth, type RunnerToDispatcherEvents, type StartAck, type StartOperation } from "@runbridge/contracts";
import { hashToken, validRunnerSignature, type Logger } from "@runbridge/common";
import { OperationCapacity, type Held } from "./capacity";
import { dispatcherUrlForLogs, type RunnerConfig } from "./config";
import { execute, failedResult, inheritableEnv, type Execution, type ExecutorOptions } from "./executor";
import type { Ledger } from "./ledger";
import { LedgerOpener } from "./ledger-opener";
import { CONNECTION_BACKLOG_MAX_BYTES, LiveOutput, transportBacklogBytes } from "./live-output";
import { PlatformClock } from "./platform-clock";

export const RUNNER_VERSION = "0.1.0";
/** Shared with the dispatchers, whose sweeper counts one send of a result in how long a result may take (RESULT_DUE_AFTER_TIMEOUT_MS). */
const RESULT_ACK_TIMEOUT_MS = RunnerTimings.resultAckTimeoutMs;
const OUTBOX_RETRY_MS = 3_000;
const MAX_RESULTS_IN_FLIGHT = 64;
/** How soon a result held back by the connection's backlog is looked at again. */
const BACKLOG_RECHECK_MS = 100;
const START_REPORT_DELAY_MS = 200;
/** How long a cancel that arrived before its start is remembered: longer than any delivery window (RUNNER_DELIVERY_TIMEOUT_SECONDS ≤ 3600). */
const CANCEL_MEMORY_MS = 65 * 60_000;
/** How long stop() waits for result files still being written once no command runs. */
const LEDGER_FLUSH_MS = 3_000;
/** After the kill grace's SIGKILL: the exit, then the executor's 250 ms wait for the pipes. */
const KILLED_EXIT_MS = 2_000;
/** Results of commands killed at the drain deadline still get this long to reach the dispatcher. */
const RESULT_SEND_AFTER_DRAIN_MS = 5_000;
/**
 * The longest stop() takes past the drain and the kill grace: what the unit's
 * TimeoutStopSec (and the shutdown step's own time-out) must leave on top.
 * LEDGER_FLUSH_MS twice: stop() waits for starts still being recorded, then
 * for result files still being written, each up to that long.
 */
export const STOP_OVERHEAD_MS = KILLED_EXIT_MS + 2 * LEDGER_FLUSH_MS + RESULT_SEND_AFTER_DRAIN_MS;
/** Manual reconnects after a refused handshake: the pace of socket.io's own reconnection (see io() below). */
const RECONNECT_DELAY_MS = 500;
const RECONNECT_DELAY_MAX_MS = 5_000;
/** A token the dispatcher does not know stays unknown until a person fixes it: ask rarely. */
const BAD_TOKEN_RETRY_MS = 60_000;
/** The refusal of a start that is not signed for this connection (final: the dispatcher fails the operation). */
/** Whatever it started now would be killed half-done with the runner's control group: the next runner process takes it. */
const SHUTTING_DOWN: StartAck = { ok: false, error: "runner is shutting down", retryable: true };
const UNSIGNED = "refused: the start was not signed for this runner's connection (a dispatcher older than this runner, or not a dispatcher); not started";
/** What the operator must do when the token no longer works. */
/** How often the platform's clock is measured again while connected (and at every connection). */
const CLOCK_MEASURE_INTERVAL_MS = 10 * 60_000;
/** How often the measurement is looked at (one made stale by a step of the wall clock is made again). */
const CLOCK_CHECK_INTERVAL_MS = 10_000;
/**
 * How long an answer to `runner:clock` is waited for. Well below the dispatcher's wait for a start's
 * answer (RUNNER_ACK_TIMEOUT_MS, 5 s by default), as a start that looks late waits for it.
 */
const CLOCK_ASK_TIMEOUT_MS = 2_000;
/** A start that looks late is judged on a measurement at most this old, or one made for it. */
const LATE_RECHECK_AFTER_MS = 30_000;
const SET_NEW_TOKEN = "set RUNBRIDGE_RUNNER_TOKEN to the server's current runner token (in /etc/runbridge/runner.env, or re-run install.sh with --token) and restart the runner";

type RunnerSocket = Socket<DispatcherToRunnerEvents, RunnerToDispatcherEvents>;

/**
 * The transport's own reason (a TLS verification failure, a refused
 * connection) hides behind socket.io's generic "websocket error"; operators need it.
 */
function connectErrorCause(err: Error): string | undefined {
  const d = (err as { description?: unknown }).description;
  if (d instanceof Error) return d.message;
  if (d && typeof d === "object" && "message" in d && typeof d.message === "string" && d.message) return d.message;
  return undefined;
}

/** Exponential, capped and jittered by ±50 %, like socket.io's reconnection. */
function reconnectDelayMs(attempt: number): number {
  const base = Math.min(RECONNECT_DELAY_MS * 2 ** Math.min(attempt, 10), RECONNECT_DELAY_MAX_MS);
  return Math.round(base * (0.5 + Math.random()));
}

/** `deadline`: on the monotonic clock (performance.now()), as every wait of the shutdown: setting the wall clock meanwhile must not cut it short or stretch it. */
async function waitWhile(condition: () => boolean, deadline: number, stepMs: number): Promise<void> {
  while (condition() && performance.now() < deadline) await new Promise((r) => setTimeout(r, stepMs));
}

export interface AgentHooks {
  /**
   * The dispatcher said this runner's token was revoked (the server's token was
   * rotated): it will never work again, so the process should end and stay ended
   * until a person sets the new token.
   */
  onTokenRevoked?: () => void;
  /**
   * Another runner connected with this server's token and the dispatcher sent
   * this one away: restarted, it would send that one away in turn, forever.
   */
  onReplaced?: () => void;
  /**
   * The state directory, unusable at boot for a storage reason (disk full, read-only), failed at a
   * later attempt to open the ledger for a reason that stops a boot (another runner uses it, a
   * permission): the process should end, as it would have at boot.
   */
  onStateDirFailed?: (err: unknown) => void;
}

/**
 * The runner: connects out to a dispatcher, runs what it is given at most once
 * (the ledger), and delivers every result until the dispatcher says it is stored.
 */
export class Agent {
  /**
   * Null while the state directory cannot be used (disk full, read-only: see LedgerOpener): every
   * start is refused then, since only the ledger keeps an operation from running twice.
   */
  private ledger: Ledger | null;
  private readonly ledgerOpener: LedgerOpener;
  private readonly running = new Map<string, Execution>();
  /** The application of each deploy this process started that has not ended here (operation id → application id). */
  private readonly deploying = new Map<string, string>();
  /**
   * Operations cancelled before their start reached this process. The
   * dispatcher checks for a pending cancel before it sends a start, but a
   * cancel can land just after that check and overtake the start here: the
   * start must then not run the command.
   */
  private readonly cancelledBeforeStart = new LRUCache<string, { reason?: string }>({ max: 10_000, ttl: CANCEL_MEMORY_MS });
  /**
   * Live output of operations that ended while no dispatcher was connected: their end marks (LiveOutput.end)
   * go out on the next connection, before the results, so that followers learn that the end of their output
   * was dropped and print it from the stored result instead of ending short. Bounded (oldest dropped).
   */
  private readonly liveEndsDue = new LRUCache<LiveOutput, true>({ max: 1_000 });
  /** The connection to a dispatcher; replaced once, by a results-only one, when another runner replaced this one. */
  private socket: RunnerSocket;
  private readonly execOpts: ExecutorOptions;
  private readonly sending = new Set<string>();
  /** Ledger writes not yet settled (results, re-send marks): stop() lets them land before the process exits. */
  private readonly ledgerWrites = new Set<Promise<void>>();
  private replaced = false;
  /** Given with `runner:replaced`: admits one last connection that delivers results (ResultsNamespace). */
  private resultsTicket: string | null = null;
  private revoked = false;
  private stopping = false;
  /** Past the shutdown drain: a start whose record lands now is ended without running. */
  private killing = false;
  /** Starts let in before stop() began, still writing their start record: stop() waits for them. */
  private startsInFlight = 0;
  /** RUNBRIDGE_MAX_CONCURRENT_OPERATIONS, checked against what this agent holds (held()) at each new start. */
  private readonly capacity: OperationCapacity;
  private retryTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Handshakes refused in a row, for the backoff. */
  private refusals = 0;
  /** The health last said on the current connection (undefined: nothing yet); said again when it changes. */
  private saidProblem: string | null | undefined = undefined;

  /** The key of the signatures on the dispatcher's messages: what PostgreSQL holds for this server's token. */
  private readonly tokenHash: string;
  private readonly clock: PlatformClock;
  private clockTimer: NodeJS.Timeout | null = null;
  /** The measurement under way, if any (a start that looks late waits for it). */
  private clockMeasurement: Promise<boolean> | null = null;

  constructor(
    private readonly config: RunnerConfig,
    private readonly logger: Logger,
    private readonly hooks: AgentHooks = {},
  ) {
    this.tokenHash = hashToken(config.RUNBRIDGE_RUNNER_TOKEN);
    this.clock = new PlatformClock(logger);
    this.capacity = new OperationCapacity(config.RUNBRIDGE_MAX_CONCURRENT_OPERATIONS, logger);
    this.ledgerOpener = new LedgerOpener(config.RUNBRIDGE_STATE_DIR, logger, (message, err) => this.logger.warn(message, { error: String(err) }));
    // Throws what stops a boot (the directory in use by another runner, a permission); null on a storage failure.
    this.ledger = this.ledgerOpener.open();
    this.execOpts = {
      workdir: config.RUNBRIDGE_WORKDIR,
      rebootCommand: config.RUNBRIDGE_REBOOT_COMMAND,
      killGraceMs: config.RUNBRIDGE_KILL_GRACE_SECONDS * 1000,
      baseEnv: inheritableEnv(process.env),
      now: () => this.clock.now(),
    };
    if (this.ledger) this.recoverOrphans(this.ledger);
    this.socket = this.openSocket();
    this.wire();
  }

  /** The connection to a dispatcher; with a results ticket, a replaced runner's last one, on ResultsNamespace. */
  private openSocket(resultsTicket?: string): RunnerSocket {
    const auth: RunnerHandshakeAuth = { token: this.config.RUNBRIDGE_RUNNER_TOKEN, version: RUNNER_VERSION, ...(resultsTicket ? { resultsTicket } : {}) };
    // A function, so that each (re)connection says the health the runner has then (see RunnerHandshakeAuth.problem).
    const handshake = (cb: (data: object) => void) => {
      const problem = this.problem();
      cb(problem === null ? auth : { ...auth, problem });
    };
    let url = this.config.RUNBRIDGE_DISPATCHER_URL;
    if (resultsTicket) {
      const u = new URL(url);
      u.pathname = ResultsNamespace;
      url = u.toString();
    }
    return io(url, {
      path: SocketPath,
      transports: ["websocket"],
      auth: handshake,
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
      randomizationFactor: 0.5,
      autoConnect: false,
      ...(this.config.RUNBRIDGE_CA_FILE ? { ca: readFileSync(this.config.RUNBRIDGE_CA_FILE, "utf8") } : {}),
    });
  }

  start(): void {
    this.socket.connect();
    if (this.ledger) this.pruneLedger(this.ledger);
    else this.ledgerOpener.retry({ opened: (ledger) => this.ledgerOpened(ledger), stillShut: () => this.reportHealth(), failed: (err) => this.stateDirFailed(err) });
    // Clocks drift, and get set: measured again now and then, not only when a connection is made.
    this.clockTimer = setInterval(() => this.socket.connected && !this.clock.measured(CLOCK_MEASURE_INTERVAL_MS) && void this.measureClock(), CLOCK_CHECK_INTERVAL_MS);
    this.clockTimer.unref();
  }

  /** Now and every hour. */
  private pruneLedger(ledger: Ledger): void {
    const retention = this.config.RUNBRIDGE_LEDGER_RETENTION_DAYS * 86_400_000;
    const prune = () => void ledger.prune(retention).catch((err: unknown) => this.logger.warn("could not prune the ledger", { error: String(err) }));
    prune();
    this.pruneTimer = setInterval(prune, 3_600_000);
    this.pruneTimer.unref();
  }

  /** The state directory can be used again: what a boot does with the ledger, done now (no start was taken meanwhile). */
  private ledgerOpened(ledger: Ledger): void {
    this.ledger = ledger;
    this.reportHealth();
    this.recoverOrphans(ledger);
    this.pruneLedger(ledger);
    this.pump();
  }

  /** What keeps this runner from taking operations, as its server shows it; null when nothing does. */
  private problem(): string | null {
    const problem = this.ledger ? null : this.ledgerOpener.problem;
    return problem === null ? null : runnerProblemText(problem);
  }

  /**
   * Says the runner's health on the current connection when it changed since it was last said there (and
   * on each new connection): not while disconnected, where socket.io would buffer it and send it, stale,
   * on the next connection before that connection's own report.
   */
  private reportHealth(): void {
    const problem = this.problem();
    if (!this.socket.connected || problem === this.saidProblem) return;
    this.saidProblem = problem;
    this.socket.emit("runner:health", { problem });
  }

  /** A reason that stops a boot, met at a later attempt: said, and the process ends (onStateDirFailed), taking nothing meanwhile. */
  private stateDirFailed(err: unknown): void {
    this.logger.error("runner cannot use its state directory; stopping", { error: err instanceof Error ? err.message : String(err) });
    this.hooks.onStateDirFailed?.(err);
  }

  /** Measures the platform's clock through the dispatcher (one measurement at a time); only an answer signed for this connection counts. */
  private measureClock(): Promise<boolean> {
    const socket = this.socket;
    this.clockMeasurement ??= this.clock
      .measure(
        () => socket.timeout(CLOCK_ASK_TIMEOUT_MS).emitWithAck("runner:clock"),
        (answer) => this.signedOn(socket, SignedAnswer.Clock, answer),
      )
      .finally(() => (this.clockMeasurement = null));
    return this.clockMeasurement;
  }

  /**
   * Whether a start came after its delivery deadline (by then the platform may have failed it as
   * undelivered, and running it would be running it late and unseen), by the platform's clock.
   */
  private arrivedLate(notAfter: string | undefined): boolean {
    return notAfter !== undefined && this.clock.now() > Date.parse(notAfter) + this.config.RUNBRIDGE_CLOCK_SKEW_SECONDS * 1000;
  }

  /**
   * The answer to a start this runner already knows of (a redelivery), or cannot take now (stopping);
   * null when it is to be run.
   */
  private answerKnownStart(op: StartOperation, ledger: Ledger): StartAck | null {
    const known = ledger.get(op.operationId);
    if (known?.state === "running") return { ok: true, state: "already-started" };
    if (known?.state === "finished") {
      // Redelivered after we finished: the dispatcher may have missed the result.
      this.resendResult(ledger, op.operationId);
      return { ok: true, state: "already-finished" };
    }
    const application = op.vars?.[DeployVar.ApplicationId];
    if (application !== undefined && [...this.deploying.values()].includes(application)) {
      // The platform ended an earlier deploy of this application that is still running here (it took the
      // runner for lost: frozen, or cut off past the result grace); deploys of one application never overlap.
      this.logger.warn("refused a deploy while an earlier deploy of its application still runs here; the dispatcher will offer it again", { operationId: op.operationId });
      return { ok: false, error: "an earlier deploy of this application is still running on this server", retryable: true };
    }
    if (this.stopping) {
      // Whatever it started now would be killed half-done with the runner's control group;
      // the dispatcher offers it again, and the next runner process takes it.
      this.logger.info("refused a start while shutting down; the dispatcher will offer it again", { operationId: op.operationId });
      return SHUTTING_DOWN;
    }
    return null;
  }

  /**
   * What the ledger says of these operations; while it is shut, what the disk holds (Ledger.view): an
   * earlier process's operation is "running" until the ledger opens and its outcome is sent. Null (not
   * answered) when that cannot be read either: "unknown" would have the dispatcher fail as result lost
   * operations whose results the ledger may hold; unanswered, it asks again later.
   */
  handleQuery(operationIds: string[]): LedgerQueryReply | null {
    return (this.ledger ?? this.ledgerOpener.view)?.query(operationIds) ?? null;
  }

  /**
   * A start while the state directory cannot be used: nothing runs unrecorded. One an earlier runner
   * process recorded (a redelivery: its acknowledgement was lost) is answered as started, as the ledger
   * would, also while this process stops: its outcome comes once the ledger opens. Any other is refused
   * for good — the operation fails at once with the reason, where its caller sees it — but for later
   * while this process stops.
   */
  private answerWithoutLedger(op: StartOperation): StartAck {
    // Before the stopping check: "for later" tells the dispatcher the start did not run (it releases its claim).
    if (this.ledgerOpener.view?.get(op.operationId)) {
      this.logger.warn("a start an earlier runner process recorded came again while the state directory cannot be used; answered as started, its outcome is sent once the ledger opens", { operationId: op.operationId });
      return { ok: true, state: "already-started" };
    }
    if (this.stopping) return SHUTTING_DOWN;
    this.logger.warn("refused a start: the state directory cannot be used, and nothing runs unrecorded", { operationId: op.operationId });
    return { ok: false, error: this.ledgerOpener.refusal };
  }

  /**
   * Refuses new starts (retryably), waits (bounded) for running commands, kills
   * those still running at the deadline (as a cancel does: SIGTERM, the kill
   * grace, SIGKILL) and waits for all results to be on disk, delivers what it
   * can, then disconnects. Results not delivered are sent by the next runner
   * process from the ledger. Killing them here, rather than leaving them to
   * systemd, gives them a SIGTERM first and the operation a known outcome:
   * under KillMode=mixed systemd SIGKILLs the whole control group as soon as
   * this process exits, and the next process could only report "unknown".
   */
  async stop(drainMs = this.config.RUNBRIDGE_STOP_DRAIN_SECONDS * 1000): Promise<void> {
    this.stopping = true;
    this.ledgerOpener.stop();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.clockTimer) clearInterval(this.clockTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const deadline = performance.now() + drainMs;
    // A start let in just before is writing its record: once that is on disk it runs, within the drain.
    await waitWhile(() => this.running.size > 0 || this.startsInFlight > 0, deadline, 100);
    this.killing = true;
    if (this.running.size > 0) {
      const error = `the runner was stopping (SIGTERM: a restart, an upgrade or a shutdown) and the command was still running after ${drainMs / 1000} s; the process group was killed`;
      this.logger.warn("killing commands still running at the end of the shutdown drain", { operationIds: [...this.running.keys()] });
      const killed = [...this.running.values()];
      for (const run of killed) run.kill(error);
      const graceEnds = performance.now() + this.execOpts.killGraceMs + KILLED_EXIT_MS;
      await waitWhile(() => this.running.size > 0, graceEnds, 50);
      // A result comes once the shell is gone, while what it started may still be shutting down, or
      // ignore SIGTERM: their SIGKILL is due at the end of the grace, and must not be skipped by
      // this process exiting first (nor left to systemd, which would not wait that long).
      await Promise.race([Promise.all(killed.map((run) => run.killed())), new Promise((r) => setTimeout(r, Math.max(0, graceEnds - performance.now())))]);
    }
    // Starts whose record is still being written end themselves without running (killing is set).
    await waitWhile(() => this.startsInFlight > 0, performance.now() + LEDGER_FLUSH_MS, 20);
    // A result is sent while its file is written: exiting before the file exists would leave the
    // next process only a start record, and it would report the outcome as unknown.
    await waitWhile(() => this.ledgerWrites.size > 0, performance.now() + LEDGER_FLUSH_MS, 20);
    this.pump();
    const sendDeadline = Math.max(Math.min(deadline, performance.now() + RESULT_ACK_TIMEOUT_MS), performance.now() + RESULT_SEND_AFTER_DRAIN_MS);
    await waitWhile(() => this.sending.size > 0, sendDeadline, 50);
    const ledger = this.ledger;
    if (this.replaced && this.resultsTicket && ledger && ledger.undelivered().length > 0) await this.deliverAsReplaced(this.resultsTicket, sendDeadline, ledger);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.socket.disconnect();
    ledger?.close();
  }

  /**
   * Another runner replaced this one: the results of what was running then would otherwise stay in
   * this ledger, and their operations fail as result lost once their time-out passed. One last
   * connection, for results only (it replaces nothing and takes no operation), delivers them.
   */
  private async deliverAsReplaced(ticket: string, deadline: number, ledger: Ledger): Promise<void> {
    this.socket.removeAllListeners();
    this.socket.disconnect();
    const socket = this.openSocket(ticket);
    this.socket = socket;
    let refused = false;
    let done = false;
    // A refused handshake (a dispatcher shutting down, or of an earlier version without this namespace) or a
    // disconnect by the dispatcher ends socket.io's own retries: try again, another dispatcher may take it.
    const again = () => setTimeout(() => !done && !refused && performance.now() < deadline && socket.connect(), RECONNECT_DELAY_MS).unref();
    socket.on("connect", () => this.pump());
    socket.on("connect_error", (err) => {
      if (err.message === HandshakeRefusal.InvalidToken || err.message === HandshakeRefusal.NoResultsTicket) refused = true;
      if (!socket.active) again();
    });
    socket.on("disconnect", (reason) => {
      if (reason === "io server disconnect") again();
    });
    socket.connect();
    // Until every result is delivered and its "delivered" mark written (a send settles after its mark).
    await waitWhile(() => !refused && (ledger.undelivered().length > 0 || this.sending.size > 0), deadline, 50);
    done = true;
    const left = ledger.undelivered().length;
    if (left === 0) this.logger.info("delivered the results of the operations that were running when this runner was replaced");
    else this.logger.warn("could not deliver every result after this runner was replaced; they stay in its ledger", { undelivered: left });
  }

  get inFlight(): number {
    return this.running.size;
  }

  /**
   * What counts against RUNBRIDGE_MAX_CONCURRENT_OPERATIONS, read from the state itself rather than
   * counted apart: a running command leaves `running` when its result is decided (onFinished, which
   * every execution reaches: execute() always settles its result), and its result then stays in the
   * ledger's outbox until a dispatcher confirms it stored. A start while it writes its record is in
   * startsInFlight (try/finally in handleStart), and may be in `running` as well for the rest of that
   * tick: counted twice only until then.
   */
  private held(ledger: Ledger): Held {
    return { running: this.running.size + this.startsInFlight, undelivered: ledger.undeliveredCount };
  }

  /** Operations a previous runner process started: their processes' pipes are gone with it. */
  private recoverOrphans(ledger: Ledger): void {
    for (const id of ledger.orphans()) {
      const startedAt = ledger.get(id)?.startedAt ?? new Date().toISOString();
      this.persisted(ledger.finish(failedResult(id, startedAt, "runner restarted while the operation was running; its outcome is unknown")), id);
      this.logger.warn("operation orphaned by a runner restart", { operationId: id });
    }
  }

  private wire(): void {
    const s = this.socket;
    s.on("connect", () => {
      this.refusals = 0;
      this.logger.info("connected to dispatcher", { url: dispatcherUrlForLogs(this.config.RUNBRIDGE_DISPATCHER_URL) });
      // Said in the handshake too: said again here, as it may have changed since.
      this.saidProblem = undefined;
      this.reportHealth();
      for (const live of [...this.liveEndsDue.keys()]) if (live.end()) this.liveEndsDue.delete(live);
      this.pump();
      void this.measureClock();
    });
    s.on("runner:replaced", (info) => {
      if (!this.signedForMe("runner:replaced", info)) return;
      this.replaced = true;
      if (typeof info?.resultsTicket === "string") this.resultsTicket = info.resultsTicket;
    });
    s.on("runner:token-revoked", (info) => {
      if (!this.signedForMe("runner:token-revoked", info)) return;
      this.revoked = true;
    });
    s.on("disconnect", (reason) => {
      this.logger.warn("disconnected from dispatcher", { reason });
      if (this.stopping) return;
      if (this.revoked) {
        // Reconnecting with a revoked token can only be refused, forever: stop (socket.io's own
        // reconnection too, should the connection have dropped before the dispatcher closed it), and say what to do.
        this.socket.disconnect();
        this.logger.error(`this runner's token was revoked (the server's runner token was rotated, or the server was deleted); not reconnecting: ${SET_NEW_TOKEN} (if the server was deleted on purpose, uninstall the runner instead)`);
        this.hooks.onTokenRevoked?.();
        return;
      }
      if (this.replaced) {
        // Two runners with one token would keep knocking each other off: the newer one wins, and
        // this one must stay stopped (a restart by systemd would knock the newer one off in turn) —
        // also when the connection dropped (a blip, its dispatcher stopping) before the dispatcher
        // closed it: socket.io would reconnect by itself, and knock the newer one off.
        this.socket.disconnect();
        this.logger.error(
          "another runner connected with this server's token and replaced this one; not reconnecting, and exiting once running commands end. " +
            "Each machine needs its own server and runner token: if this machine should be this server's runner, stop the other one; " +
            "if the token leaked, rotate it (POST /api/v1/servers/{id}/runner-token) and set the new one here",
        );
        this.hooks.onReplaced?.();
        return;
      }
      if (reason !== "io server disconnect") return;
      // A dispatcher shutting down disconnects us on purpose: go to another one.
      this.reconnectLater(500 + Math.random() * 1000);
    });
    s.on("connect_error", (err) => this.onConnectError(err));
    s.on("operation:start", (op, ack) => {
      if (!this.signedForMe("operation:start", op)) return ack({ ok: false, error: UNSIGNED });
      void this.handleStart(op).then(ack, (err: unknown) => {
        this.logger.error("could not handle a start", { operationId: op.operationId, error: String(err) });
        ack({ ok: false, error: `runner could not handle the start: ${String(err)}`, retryable: true });
      });
    });
    // Not answered at all when not signed: to a dispatcher, "not stopped" would keep a cancel pending as if
    // nothing had started, and an empty ledger would say the operations are unknown here (result lost).
    s.on("operation:cancel", (req, ack) => {
      if (!this.signedForMe("operation:cancel", req)) return;
      const answer = this.handleCancel(req);
      if (answer) ack(answer);
    });
    s.on("operation:query", (req, ack) => {
      if (!this.signedForMe("operation:query", req)) return;
      const answer = this.handleQuery(req.operationIds);
      if (answer) ack(answer);
    });
  }

  /**
   * Whether a message from the dispatcher is signed for this connection (see @runbridge/common's
   * runner-signature): anything else may have been published on Redis by someone other than a
   * dispatcher, and is refused, whatever it asks.
   */
  private signedForMe(event: keyof DispatcherToRunnerEvents, message: unknown): boolean {
    if (this.signedOn(this.socket, event, message)) return true;
    this.logger.warn(`refused a ${event} message without a valid signature (sent by a dispatcher of an earlier release, or not by a dispatcher at all)`, {
      operationId: typeof (message as { operationId?: unknown } | undefined)?.operationId === "string" ? (message as { operationId: string }).operationId : undefined,
    });
    return false;
  }

  /** Whether `message` (a dispatcher's message or answer) is signed as `event` for `socket`'s connection. */
  private signedOn(socket: RunnerSocket, event: string, message: unknown): boolean {
    return socket.id !== undefined && validRunnerSignature({ socketId: socket.id, tokenHash: this.tokenHash }, event, message);
  }

  /** The answer to a cancel from the dispatcher (the socket handler's; public for tests). */
  handleCancel({ operationId, reason }: { operationId: string; reason?: string }): CancelAck | null {
    const why = typeof reason === "string" && reason ? reason : undefined;
    const run = this.running.get(operationId);
    if (run) {
      run.cancel(cancelledByRunner(why, false));
      return { ok: true };
    }
    const ledger = this.ledger;
    if (!ledger && (this.ledgerOpener.view === null || this.ledgerOpener.view.get(operationId))) {
      // Started by an earlier runner process (or that cannot be told: the ledger cannot be read): "not
      // running here" would have the dispatcher end it as cancelled before it started. Unanswered, it asks
      // again later, as of a frozen runner; the outcome comes once the ledger opens.
      return null;
    }
    if (ledger?.get(operationId)?.state === "finished") {
      // Ran to its end already: the result is the outcome, and the dispatcher may not have it (its
      // delivery was what it was waiting on).
      this.resendResult(ledger, operationId);
      return { ok: false, finished: true };
    }
    // No process yet: its start has not arrived, or is still writing its start record (the ledger
    // already says running then); handleStart looks for this once that record is written. Not ok
    // without a process to kill: the dispatcher keeps the cancel pending (and asking) until the operation ends.
    this.cancelledBeforeStart.set(operationId, why ? { reason: why } : {});
    return { ok: false };
  }

  /**
   * The answer to a start from the dispatcher (the socket handler's; public for tests of its races
   * with stop()). Nothing is awaited between the ledger's answer and the start's record, so two
   * copies of one start (redelivered while a runner was frozen, read in one tick) never both run.
   */
  async handleStart(op: StartOperation): Promise<StartAck> {
    const ledger = this.ledger;
    if (!ledger) return this.answerWithoutLedger(op);
    const known = this.answerKnownStart(op, ledger);
    if (known) return known;
    // After the ledger's answer (a redelivery is answered, never refused for capacity) and before
    // anything is recorded; counted from the next line on (startsInFlight), so two starts read in
    // one tick cannot both take the last place.
    const full = this.capacity.refusal(op.spec.kind, this.held(ledger));
    if (full) return full;
    // In flight from here: a stop() that begins meanwhile waits for this start.
    this.startsInFlight++;
    try {
      if (this.arrivedLate(op.notAfter) && !this.clock.measured(LATE_RECHECK_AFTER_MS) && this.socket.connected) {
        // Late by this runner's reckoning, which may be the one that is off: measured (again) first.
        await this.measureClock();
        // Awaited: a copy of this start may have been taken meanwhile, or a stop begun.
        const meanwhile = this.answerKnownStart(op, ledger);
        if (meanwhile) return meanwhile;
      }
      if (this.arrivedLate(op.notAfter)) {
        const now = new Date(this.clock.now()).toISOString();
        this.logger.warn("refused an operation that arrived after its delivery deadline", { operationId: op.operationId, notAfter: op.notAfter, now, clockMeasured: this.clock.measured() });
        return { ok: false, error: `it arrived after its delivery deadline (${op.notAfter}; the runner's time ${now}); not started` };
      }
      return await this.recordAndRun(op, ledger);
    } finally {
      this.startsInFlight--;
    }
  }

  private async recordAndRun(op: StartOperation, ledger: Ledger): Promise<StartAck> {
    const startedAt = new Date(this.clock.now()).toISOString();
    // Taken before the ledger write is awaited: a second deploy of the application checked meanwhile waits.
    const application = op.vars?.[DeployVar.ApplicationId];
    if (application !== undefined) this.deploying.set(op.operationId, application);
    const ended = await this.recordAndRunOnce(op, startedAt, ledger);
    if (ended !== "running") this.deploying.delete(op.operationId);
    return ended === "running" ? { ok: true, state: "started" } : ended;
  }

  /** recordAndRun's body: "running" once the command runs (its end clears the deploy's mark), else the answer. */
  private async recordAndRunOnce(op: StartOperation, startedAt: string, ledger: Ledger): Promise<StartAck | "running"> {
    try {
      // Durable before anything runs or is acknowledged: this is what makes a redelivery harmless.
      await ledger.begin(op.operationId, startedAt);
    } catch (err) {
      ledger.forget(op.operationId);
      return { ok: false, error: `runner could not record the operation: ${String(err)}` };
    }
    if (this.killing) {
      // Recorded as started, so it cannot be handed back for the next runner process (which would
      // find it started and report its outcome unknown): it ends here, known not to have run.
      this.logger.warn("a start recorded after the shutdown drain ended; not run", { operationId: op.operationId });
      this.onFinished(ledger, failedResult(op.operationId, startedAt, "the runner was stopping (SIGTERM: a restart, an upgrade or a shutdown) as the operation arrived, after its shutdown drain had ended; it was not run"));
      return { ok: true, state: "started" };
    }
    const cancelled = this.cancelledBeforeStart.get(op.operationId);
    if (cancelled) {
      // Ends through the usual result path (and the ledger answers a redelivered start), without running.
      this.cancelledBeforeStart.delete(op.operationId);
      this.logger.info("operation cancelled before its start arrived; not run", { operationId: op.operationId });
      this.onFinished(ledger, { ...failedResult(op.operationId, startedAt, cancelledByRunner(cancelled.reason, true)), status: "cancelled" });
      return { ok: true, state: "started" };
    }
    this.logger.info("operation started", { operationId: op.operationId, kind: op.spec.kind, timeoutSeconds: op.timeoutSeconds });
    // Bounded twice (see LiveOutput): per operation by Limits.liveLogMaxBytes on the wire, past which
    // the dispatcher would only drop it, and for the connection by its backlog, which heartbeat replies
    // and results queue behind.
    const live = new LiveOutput({
      send: (stream, offset, data) => this.socket.emit("operation:output", { operationId: op.operationId, stream, offset, data }),
      backlog: () => (this.socket.connected ? transportBacklogBytes(this.socket) : null),
    });
    const run = execute(op, this.execOpts, (stream, data, offset) => live.push(stream, data, offset));
    this.running.set(op.operationId, run);
    // Worth a database write only for operations still running a moment later: the result carries startedAt too.
    const reportStart = setTimeout(() => this.socket.emit("operation:started", { operationId: op.operationId, startedAt }), START_REPORT_DELAY_MS);
    void run.result.then((result) => {
      clearTimeout(reportStart);
      this.deploying.delete(op.operationId);
      // Before the result, on the same connection: the live log shows where output ended before the operation does.
      // Not connected (the command ended during an outage, its last output dropped): sent on reconnecting, first.
      if (!live.end()) this.liveEndsDue.set(live, true);
      this.onFinished(ledger, result);
    });
    return "running";
  }

  /** A finished operation's result goes to the outbox again, and out. */
  private resendResult(ledger: Ledger, operationId: string): void {
    this.persisted(ledger.markUndelivered(operationId), operationId);
    this.pump();
  }

  private onFinished(ledger: Ledger, result: OperationResult): void {
    this.running.delete(result.operationId);
    // Sent while it is being written: the ledger orders the later "delivered" mark after this write.
    this.persisted(ledger.finish(result), result.operationId);
    this.logger.info("operation finished", { operationId: result.operationId, status: result.status, exitCode: result.exitCode, ms: result.durationMs });
    this.pump();
  }

  /**
   * A ledger write nobody waits for: a failure (disk full) is logged, never an
   * unhandled rejection that would end the runner. The ledger keeps such an
   * operation known as started, so it is never run again.
   */
  private persisted(write: Promise<void>, operationId: string): void {
    const settled = write.catch((err: unknown) => {
      this.logger.error("could not record a result in the ledger", { operationId, error: String(err) });
    });
    this.ledgerWrites.add(settled);
    void settled.finally(() => this.ledgerWrites.delete(settled));
  }

  /**
   * Sends every undelivered result (up to MAX_RESULTS_IN_FLIGHT at once) and
   * keeps it until the dispatcher confirms it is stored; retries later or
   * after a reconnect otherwise. A result goes out only while the connection's
   * backlog is under CONNECTION_BACKLOG_MAX_BYTES: results of up to a few MiB
   * each, all sent at once over a slow uplink, queued the heartbeat's answers
   * behind them until the dispatcher dropped the runner, and each waited its
   * acknowledgement's time-out in the queue, to be sent again behind itself.
   */
  private pump(): void {
    const ledger = this.ledger;
    if (!this.socket.connected || !ledger) return;
    for (const result of ledger.undelivered()) {
      const id = result.operationId;
      if (this.sending.has(id)) continue;
      if (this.sending.size >= MAX_RESULTS_IN_FLIGHT) break;
      const socket = this.socket;
      if (transportBacklogBytes(socket) > CONNECTION_BACKLOG_MAX_BYTES) {
        this.scheduleRetry(BACKLOG_RECHECK_MS);
        break;
      }
      this.sending.add(id);
      socket
        .timeout(RESULT_ACK_TIMEOUT_MS)
        .emitWithAck("operation:result", result)
        .then((res) => (this.storedFor(socket, id, res) ? ledger.markDelivered(id) : this.scheduleRetry(OUTBOX_RETRY_MS)))
        .catch(() => this.scheduleRetry(OUTBOX_RETRY_MS))
        .finally(() => {
          this.sending.delete(id);
          if (ledger.undelivered().some((r) => !this.sending.has(r.operationId))) this.scheduleRetry(this.socket.connected ? 0 : OUTBOX_RETRY_MS);
        });
    }
  }

  /** Whether the dispatcher's answer says it stored this result, signed for this connection (else it is sent again). */
  private storedFor(socket: RunnerSocket, operationId: string, answer: ResultAck): boolean {
    if (!answer.stored) return false;
    if (answer.operationId === operationId && this.signedOn(socket, SignedAnswer.Result, answer)) return true;
    this.logger.warn("an answer to a result said stored without a valid signature; the result is kept and sent again", { operationId });
    return false;
  }

  /**
   * A transport failure leaves the socket active: socket.io reconnects by itself.
   * A handshake the dispatcher refused (its store is down, an unknown token)
   * does not: socket.io gives the socket up, and without a new attempt here the
   * runner would stay offline until restarted.
   */
  private onConnectError(err: Error): void {
    if (this.socket.active) {
      this.logger.warn("cannot connect to dispatcher", { error: err.message, cause: connectErrorCause(err) });
      return;
    }
    if (this.stopping) return;
    if (err.message === HandshakeRefusal.InvalidToken) {
      this.logger.error(`the dispatcher does not accept this runner's token (rotated, or not this server's?): ${SET_NEW_TOKEN}`, { retryInMs: BAD_TOKEN_RETRY_MS });
      this.reconnectLater(BAD_TOKEN_RETRY_MS);
      return;
    }
    const delayMs = reconnectDelayMs(this.refusals++);
    this.logger.warn("dispatcher refused the connection; retrying", { error: err.message, retryInMs: delayMs });
    this.reconnectLater(delayMs);
  }

  /** Not unref'd: with the socket given up, this timer is all that keeps the runner alive to reconnect. */
  private reconnectLater(ms: number): void {
    if (this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopping && !this.socket.connected) this.socket.connect();
    }, ms);
  }

  private scheduleRetry(ms: number): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.pump();
    }, ms);
  }
}

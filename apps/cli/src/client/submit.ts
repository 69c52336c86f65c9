import { randomUUID } from "node:crypto";
import { ApiError, NetworkError, sleep, type ApiClient, type ApiResponse } from "./api";
import { followOperation, OutputPrinter } from "./follow";
import type { OperationRequest } from "./requests";
import { detectCiRun } from "./run-context";
import { viewFromAccepted, type AcceptedOperation, type OperationPage, type OperationView, type OutputSink } from "./types";

/**
 * One invocation of the client: its Idempotency-Key (the same on every retry
 * of its POST) and the run it belongs to.
 */
export interface Invocation {
  id: string;
  idempotencyKey: string;
  runId: string;
  runContext: Record<string, string>;
}

/**
 * run_id: the flag, else the CI run's id, else `cli-<invocation id>` (so that
 * even outside CI the operation can be found while its POST is still open).
 * run_context: the CI metadata, plus `invocation_id`, which ties the
 * operation to this invocation.
 */
export function newInvocation(runIdFlag?: string, env: Record<string, string | undefined> = process.env): Invocation {
  const id = randomUUID();
  const ci = detectCiRun(env);
  return {
    id,
    idempotencyKey: randomUUID(),
    runId: runIdFlag || ci?.runId || `cli-${id}`,
    runContext: { ...(ci?.context ?? {}), invocation_id: id },
  };
}

export interface SubmitOptions {
  /** Follow the operation to its end (printing output live); false returns as soon as it is accepted. */
  follow: boolean;
  /** Called once the operation id is known (e.g. to cancel it on Ctrl-C). */
  onOperation?: (id: string) => void;
  /** First look for the operation in its run's list (default 700 ms after the POST). */
  discoverAfterMs?: number;
}

export interface Submitted {
  accepted: AcceptedOperation | null;
  final: OperationView | null;
  operationId: string;
}

/**
 * POSTs an operation (`body` plus the invocation's run_id and run_context)
 * and, when following, prints its output while it runs.
 *
 * Synchronous endpoints (exec, restart) hold the POST until the command ends,
 * so the operation id would only be known at the end. Meanwhile the client
 * looks its operation up in `GET /operations?run_id=` by `invocation_id` and,
 * once found, stops waiting for the POST and follows the live logs instead.
 * Servers without that list simply answer the POST at the end (or `running`,
 * which is then followed).
 */
export async function submitOperation(
  client: ApiClient,
  req: OperationRequest,
  inv: Invocation,
  sink: OutputSink,
  opts: SubmitOptions,
): Promise<Submitted> {
  const printer = new OutputPrinter(sink);
  const postAbort = new AbortController();
  // Every operation carries its run: discovery below finds it by run_id and invocation_id, so no caller may leave them out.
  const runBody = { ...req.body, run_id: inv.runId, run_context: inv.runContext };
  const post = client.post<AcceptedOperation>(req.path, { body: runBody, idempotencyKey: inv.idempotencyKey, signal: postAbort.signal, heldForMs: heldForMs(req) });
  // Keep a rejection of the abandoned POST from surfacing as unhandled.
  post.catch(() => undefined);

  const stopDiscovery = new AbortController();
  const discovered = opts.follow ? discover(client, inv, opts.discoverAfterMs ?? 700, stopDiscovery.signal) : new Promise<null>(() => undefined);

  type First = { kind: "post"; res: ApiResponse<AcceptedOperation> } | { kind: "found"; id: string };
  let first: First;
  try {
    first = await Promise.race<First>([
      post.then((res) => ({ kind: "post", res })),
      discovered.then((id) => (id ? { kind: "found", id } : new Promise<First>(() => undefined))),
    ]);
  } catch (err) {
    // If an attempt created the operation, it is this invocation's, following or not. Reporting a
    // failure instead would have CI retry the step and run it a second time.
    const id = outcomeUnknown(err) ? await findOwnOperation(client, inv, RUN_MAX_PAGES).catch(() => null) : null;
    if (!id) throw err;
    sink.note(`its request's answer was lost, but operation ${id} was created by it (found in run ${inv.runId})`);
    first = { kind: "found", id };
  } finally {
    stopDiscovery.abort();
  }

  if (first.kind === "found") {
    postAbort.abort();
    opts.onOperation?.(first.id);
    if (!opts.follow) return { accepted: null, final: null, operationId: first.id };
    const final = await followOperation(client, first.id, printer);
    return { accepted: null, final, operationId: first.id };
  }

  const accepted = first.res.body;
  opts.onOperation?.(accepted.operation_id);
  if (!opts.follow) return { accepted, final: null, operationId: accepted.operation_id };
  if (accepted.status !== "running") {
    const final = viewFromAccepted(accepted);
    printer.rest(final);
    return { accepted, final, operationId: accepted.operation_id };
  }
  const final = await followOperation(client, accepted.operation_id, printer);
  return { accepted, final, operationId: accepted.operation_id };
}

/** The endpoints the gateway holds until the command ends (or its hold runs out: then `running`). */
const HELD_PATHS = new Set(["/exec", "/restart", "/registry-auth/logout"]);
/** The longest the client waits for a held answer beyond its own bound: past the gateway's default hold (55 s). */
const HELD_MAX_MS = 60_000;

/**
 * How long the gateway may hold an operation's POST before it answers: a synchronous one is held
 * while its command runs, at most its timeout_seconds + 3 s, within the gateway's hold
 * (EXEC_MAX_WAIT_SECONDS, 55 s unless raised), counted here up to 60 s; the others are answered at
 * once. The client's answer bound comes on top. A POST left unanswered past both is sent again with
 * its Idempotency-Key: a gateway still holding the first answers the retry 409 (in progress) until
 * it can replay the first outcome, so a longer hold costs waiting, never a second run.
 */
export function heldForMs(req: OperationRequest): number {
  if (!HELD_PATHS.has(req.path)) return 0;
  const timeout = typeof req.body.timeout_seconds === "number" ? req.body.timeout_seconds : Number.POSITIVE_INFINITY;
  return Math.min((timeout + 3) * 1000, HELD_MAX_MS);
}

/**
 * Whether a POST that failed after every retry may have created its operation all the same: no answer
 * reached the client (NetworkError); a retry met its first attempt still in progress (409 from the
 * Idempotency-Key check: a gateway that stopped before answering it); or every answer came from a proxy
 * in front of the gateway — 502 (nginx's answer for an upstream that died, perhaps after recording the
 * operation) or 504 (an upstream that did not answer in time, perhaps still holding it); or a 500, which
 * the gateway answers when it cannot tell whether it recorded the operation (it may run), as for an
 * error of its own after recording it. Not 503: the gateway answers that itself, for an operation it
 * did not start. Looked up, an operation that does not exist is reported as the failure it was.
 */
function outcomeUnknown(err: unknown): boolean {
  return err instanceof NetworkError || (err instanceof ApiError && [409, 500, 502, 504].includes(err.status));
}

/** Operations per page of the lookup by run: the list's largest, as each comes without its output. */
const RUN_PAGE_SIZE = 200;
/**
 * Pages of the run read by the lookup after a lost answer, newest first: the invocation is found among
 * its run's newest 1000 operations (a wide matrix of many legs under one run_id, each leg a few), which
 * decides between reporting its operation and a failure that CI would retry. Discovery, which polls
 * while the POST is open, reads one page: its operation is among the newest, and five requests a poll
 * against the key's rate limit (shared by the matrix's legs) would be too many.
 */
const RUN_MAX_PAGES = 5;

/** This invocation's operation in its run's list, null if not there (yet); throws if the server has no such list. */
async function findOwnOperation(client: ApiClient, inv: Invocation, maxPages: number, signal?: AbortSignal): Promise<string | null> {
  // Without output: each operation would otherwise bring up to 1 MiB of stdout and of stderr, on every poll.
  const first = `/operations?run_id=${encodeURIComponent(inv.runId)}&limit=${RUN_PAGE_SIZE}&output=false`;
  let path = first;
  for (let page = 0; page < maxPages; page++) {
    const res = await client.get<OperationPage>(path, { signal, accept: [404, 405] });
    if (res.status !== 200) throw new Error("this server cannot list operations by run_id");
    const mine = res.body?.data?.find((op) => op.run_context?.invocation_id === inv.id);
    if (mine) return mine.operation_id;
    const cursor = res.body?.next_cursor;
    if (!cursor) return null;
    path = `${first}&cursor=${encodeURIComponent(cursor)}`;
  }
  return null;
}

/** Polls for this invocation's operation while its POST is open; null if it cannot be found that way. */
async function discover(client: ApiClient, inv: Invocation, firstDelayMs: number, signal: AbortSignal): Promise<string | null> {
  let delay = firstDelayMs;
  try {
    for (;;) {
      await sleep(delay, signal);
      const mine = await findOwnOperation(client, inv, 1, signal);
      if (mine) return mine;
      delay = Math.min(delay * 1.5, 3000);
    }
  } catch {
    // Discovery is an optimisation: any failure (or the POST answering first) leaves the POST to answer.
    return null;
  }
}

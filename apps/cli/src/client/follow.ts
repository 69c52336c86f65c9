import { ApiError, NetworkError, sleep, type ApiClient } from "./api";
import { isTerminalStatus } from "./outcome";
import { readEvents } from "./sse";
import type { OperationView, OutputSink } from "./types";

type StreamName = "stdout" | "stderr";

/**
 * Writes each stream's output exactly once, by byte offset: a resumed or
 * replayed event stream, or the stored result after live chunks, never prints
 * a byte twice.
 */
export class OutputPrinter {
  private readonly printed: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  /** The live output stopped at the live log's size limit: what the stored result has beyond it was never shown. */
  private liveCut = false;
  /**
   * Live output stopped before the stream's end (a reconnect refused, the network gone, a stuck
   * stream): as with a cut-off, what a truncated stored capture ends with may never have been shown.
   */
  private liveStopped = false;

  constructor(private readonly sink: OutputSink) {}

  /** A progress note for the user (stderr or the CI log), never part of the command's output. */
  note(text: string): void {
    this.sink.note(text);
  }

  chunk(stream: StreamName, offset: number, data: string): void {
    const bytes = Buffer.from(data, "utf8");
    const done = this.printed[stream];
    if (offset + bytes.length <= done) return;
    const fresh = offset >= done ? bytes : bytes.subarray(done - offset);
    this.write(stream, fresh.toString("utf8"));
    this.printed[stream] = offset + bytes.length;
  }

  /** The server says live output stops here (the operation's live log reached its size limit). */
  cutOff(): void {
    if (this.liveCut) return;
    this.liveCut = true;
    this.sink.note("live output stops here: it reached the live log's size limit; the end of the output follows when the operation ends");
  }

  /** Live output stopped before the stream's end (not at the size limit): the end follows from the stored result. */
  stoppedEarly(): void {
    if (this.liveStopped) return;
    this.liveStopped = true;
    // Only worth saying when something was shown live: otherwise the stored output follows in full anyway.
    if (this.printed.stdout > 0 || this.printed.stderr > 0) {
      this.sink.note("live output stopped before the end; the end of the output follows when the operation ends");
    }
  }

  /** The stored (final) output: whatever live chunks have not shown yet. */
  rest(op: OperationView): void {
    const result = op.result;
    if (!result) return;
    for (const stream of ["stdout", "stderr"] as const) {
      const text = result[stream] ?? "";
      const truncated = stream === "stdout" ? result.stdout_truncated : result.stderr_truncated;
      const done = this.printed[stream];
      // A truncated capture keeps the tail, so its offsets do not line up with live output: it was
      // all shown live only if the live stream reached its end uncut — otherwise the stored end is what matters most.
      if (truncated && done > 0) {
        if (!this.liveCut && !this.liveStopped) continue;
        this.sink.note(`the stored end of ${stream} follows (its last ${Buffer.byteLength(text)} bytes; the start may repeat output shown above)`);
        this.write(stream, text);
        continue;
      }
      const bytes = Buffer.from(text, "utf8");
      if (bytes.length > done) this.write(stream, bytes.subarray(done).toString("utf8"));
      this.printed[stream] = Math.max(done, bytes.length);
      if (truncated && done === 0) this.sink.note(`${stream} was longer than the stored capture; only its end is shown`);
    }
  }

  private write(stream: StreamName, text: string): void {
    if (!text) return;
    if (stream === "stdout") this.sink.stdout(text);
    else this.sink.stderr(text);
  }
}

export interface FollowOptions {
  /** Stop polling/streaming early (the caller then decides what to do). */
  signal?: AbortSignal;
  /** Poll interval when the server has no live logs endpoint (default 1 s, growing to 3 s). */
  pollMs?: number;
  /** How long the API may be unreachable or failing while the operation is waited for (default 10 min). */
  outageMs?: number;
  /** Progress notes (an outage being waited out). */
  note?: (text: string) => void;
}

const FOLLOW_OUTAGE_MS = 10 * 60_000;

const opPath = (id: string) => `/operations/${encodeURIComponent(id)}`;

export async function getOperation(client: ApiClient, id: string, signal?: AbortSignal): Promise<OperationView> {
  return (await client.get<OperationView>(opPath(id), { signal })).body;
}

/**
 * Follows an operation to its end, printing its output as it is produced:
 * through the Server-Sent Events logs endpoint (resuming with Last-Event-ID
 * when the connection drops), or, on a server without it, by polling the
 * operation and printing its stored output at the end. Returns the final view.
 */
export async function followOperation(client: ApiClient, id: string, printer: OutputPrinter, opts: FollowOptions = {}): Promise<OperationView> {
  if (!(await streamLogs(client, id, printer, opts))) printer.stoppedEarly();
  // However the live part stopped, the stored operation gives the final status and any output the stream did not show.
  const final = await waitTerminal(client, id, { note: (text) => printer.note(text), ...opts });
  printer.rest(final);
  return final;
}

/**
 * Prints the live output until the stream ends, the server turns out to have
 * no logs endpoint, or the stream keeps failing; followOperation then polls.
 * True only if the stream reached its end (everything up to any cut-off was shown live).
 */
async function streamLogs(client: ApiClient, id: string, printer: OutputPrinter, opts: FollowOptions): Promise<boolean> {
  const stream: StreamState = { lastEventId: undefined, failures: 0 };
  for (;;) {
    let res: Response;
    try {
      res = await client.open(`${opPath(id)}/logs`, {
        signal: opts.signal,
        accept: [404, 429],
        headers: stream.lastEventId ? { "Last-Event-ID": stream.lastEventId } : {},
      });
    } catch (err) {
      if (err instanceof NetworkError || (err instanceof ApiError && err.status >= 500)) {
        // The client already retried. The live log is Redis's, the operation PostgreSQL's: one can be
        // down while the other answers, so fall back to polling, which rides out outages on its own.
        printer.note(`live output is not available now (${err instanceof ApiError ? `HTTP ${err.status}` : "the API did not answer"}); waiting for the result instead`);
        return false;
      }
      throw err;
    }
    if (res.status === 429) {
      // The key holds as many live streams as the gateway allows (or is rate limited): polling
      // still gives the final status and the stored output, which is what the step needs.
      await res.body?.cancel().catch(() => undefined);
      printer.note("live output is not available now (HTTP 429); waiting for the result instead");
      return false;
    }
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      // A missing operation is an error; a present one means this server has no logs endpoint.
      await getOperation(client, id, opts.signal);
      return false;
    }
    if (await printEvents(res, printer, stream, opts.signal)) return true;
    // The connection dropped before the end: reconnect (resuming after the last event) with backoff.
    stream.failures++;
    if (stream.failures > 8) return false;
    await sleep(Math.min(250 * 2 ** stream.failures, 4000), opts.signal);
  }
}

/** Where a followed stream is, across reconnections. */
interface StreamState {
  lastEventId: string | undefined;
  /** Drops in a row without output; output resets it, so only a stuck stream gives up. */
  failures: number;
}

/** Prints one connection's output events; true if the stream reached its end, false if the connection dropped first. */
async function printEvents(res: Response, printer: OutputPrinter, stream: StreamState, signal?: AbortSignal): Promise<boolean> {
  try {
    if (!res.body) throw new Error("empty event stream");
    for await (const ev of readEvents(res.body)) {
      if (ev.id !== undefined) stream.lastEventId = ev.id;
      if (ev.event === "stdout" || ev.event === "stderr") {
        const chunk = parseChunk(ev.data);
        if (chunk) printer.chunk(chunk.stream ?? ev.event, chunk.offset, chunk.data);
        stream.failures = 0;
      } else if (ev.event === "cut_off") {
        printer.cutOff();
      } else if (ev.event === "end") {
        return true;
      }
    }
  } catch (err) {
    if (signal?.aborted) throw err;
    // The connection dropped mid-stream: the caller resumes from the last event.
  } finally {
    await res.body?.cancel().catch(() => undefined);
  }
  return false;
}

/**
 * Polls GET /operations/{id} until its status is terminal. An outage of the
 * API (unreachable, 5xx, after the client's own retries) does not end the
 * wait at once: the operation goes on running meanwhile, and a CI step that
 * failed then would be retried and run it a second time. Only an outage
 * longer than `outageMs` ends it.
 */
async function waitTerminal(client: ApiClient, id: string, opts: FollowOptions): Promise<OperationView> {
  let interval = opts.pollMs ?? 1000;
  const outageMs = opts.outageMs ?? FOLLOW_OUTAGE_MS;
  let failingSince: number | null = null;
  for (;;) {
    let op: OperationView;
    try {
      op = await getOperation(client, id, opts.signal);
      failingSince = null;
    } catch (err) {
      const outage = err instanceof NetworkError || (err instanceof ApiError && err.status >= 500);
      if (!outage || opts.signal?.aborted) throw err;
      failingSince ??= Date.now();
      if (Date.now() - failingSince >= outageMs) throw err;
      opts.note?.(`could not read operation ${id} (${err instanceof ApiError ? `HTTP ${err.status}` : "the API did not answer"}); it may still be running: asking again`);
      await sleep(Math.min(interval * 4, 15_000), opts.signal);
      continue;
    }
    if (isTerminalStatus(op.status)) return op;
    await sleep(interval, opts.signal);
    interval = Math.min(interval * 1.25, 3000);
  }
}

function parseChunk(data: string): { stream?: StreamName; offset: number; data: string } | null {
  try {
    const v = JSON.parse(data) as { stream?: unknown; offset?: unknown; data?: unknown };
    if (typeof v.data !== "string" || typeof v.offset !== "number") return null;
    const stream = v.stream === "stdout" || v.stream === "stderr" ? v.stream : undefined;
    return { stream, offset: v.offset, data: v.data };
  } catch {
    return null;
  }
}

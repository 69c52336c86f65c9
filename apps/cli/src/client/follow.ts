import { ApiError, NetworkError, retryAfterMs, sleep, type ApiClient } from "./api";
import { isTerminalStatus } from "./outcome";
import { StreamIdleError, idleBounded, readEvents } from "./sse";
import type { OperationView, OutputSink } from "./types";

type StreamName = "stdout" | "stderr";
/** Bytes `from` up to (not including) `to` of a stream. */
type ByteRange = readonly [from: number, to: number];

/** A byte range for the user, both ends included. */
const bytesText = ([from, to]: ByteRange) => `bytes ${from}-${to - 1}`;

/**
 * Writes each stream's output exactly once, by byte offset: a resumed or
 * replayed event stream, or the stored result after live chunks, never prints
 * a byte twice. Bytes live output skipped are never dropped without a word:
 * the stored result shows them at the end, or a note says they are lost.
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
  /**
   * Ranges live output skipped (the live log never had them, or trimmed them before they were read):
   * they cannot go back in place, so the stored result shows them at the end, each after a note.
   */
  private readonly skipped: Record<StreamName, ByteRange[]> = { stdout: [], stderr: [] };
  /**
   * The server sent the stream's stored capture cut at its size limit (the live log had expired): it
   * is the stream's end, at offsets that do not line up with live output — as after a cut-off.
   */
  private readonly storedEnd: Record<StreamName, boolean> = { stdout: false, stderr: false };

  constructor(private readonly sink: OutputSink) {}

  /** A progress note for the user (stderr or the CI log), never part of the command's output. */
  note(text: string): void {
    this.sink.note(text);
  }

  chunk(stream: StreamName, offset: number, data: string): void {
    const bytes = Buffer.from(data, "utf8");
    const done = this.printed[stream];
    if (offset + bytes.length <= done) return;
    if (offset > done) {
      const range: ByteRange = [done, offset];
      this.skipped[stream].push(range);
      this.sink.note(
        `live output of ${stream} skips ${bytesText(range)} here (the live log does not have them); they follow from the stored output when the operation ends, if it holds them`,
      );
    }
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

  /** The stream's stored capture arrived cut at its size limit, in place of live output (see storedEnd). */
  storedEndOnly(stream: StreamName): void {
    if (this.storedEnd[stream]) return;
    this.storedEnd[stream] = true;
    // Only worth saying when something was shown live: otherwise the stored end follows as the whole output.
    if (this.printed[stream] > 0) {
      this.sink.note(`live output of ${stream} stops here: only the stored end of it is left (the live log has expired); it follows when the operation ends`);
    }
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
    for (const stream of ["stdout", "stderr"] as const) {
      const skipped = this.skipped[stream].splice(0);
      if (!result) {
        for (const range of skipped) this.sink.note(`${bytesText(range)} of ${stream}, skipped above, are lost: the operation has no stored output`);
        continue;
      }
      const text = result[stream] ?? "";
      const truncated = stream === "stdout" ? result.stdout_truncated : result.stderr_truncated;
      const done = this.printed[stream];
      // A truncated capture keeps the tail, so its offsets do not line up with live output: it was
      // all shown live only if the live stream reached its end uncut and whole — otherwise the stored end is what matters most.
      if (truncated && done > 0) {
        if (!this.liveCut && !this.liveStopped && !this.storedEnd[stream] && skipped.length === 0) continue;
        const stored = Buffer.byteLength(text);
        // The stream is at least `done` bytes long: a range that ends before its last `stored` bytes is not in the capture.
        for (const range of skipped) {
          if (range[1] <= done - stored) this.sink.note(`${bytesText(range)} of ${stream}, skipped above, are lost: the stored capture keeps only the end`);
        }
        this.sink.note(`the stored end of ${stream} follows (its last ${stored} bytes; the start may repeat output shown above)`);
        this.write(stream, text);
        continue;
      }
      const bytes = Buffer.from(text, "utf8");
      if (bytes.length > done) this.write(stream, bytes.subarray(done).toString("utf8"));
      this.printed[stream] = Math.max(done, bytes.length);
      if (truncated && done === 0) this.sink.note(`${stream} was longer than the stored capture; only its end is shown`);
      // A whole capture holds every byte at its offset: what live output skipped is there, shown after the rest.
      for (const [from, to] of skipped) {
        const end = Math.min(to, bytes.length);
        if (end <= from) {
          this.sink.note(`${bytesText([from, to])} of ${stream}, skipped above, are not in the stored output either`);
          continue;
        }
        this.sink.note(`${bytesText([from, end])} of ${stream}, skipped above, from the stored output:`);
        this.write(stream, bytes.subarray(from, end).toString("utf8"));
      }
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
  /**
   * A live stream on which nothing arrives for this long (not even the gateway's keep-alive, sent
   * every 15 s) is dropped and resumed (default RUNBRIDGE_STREAM_IDLE_SECONDS, else 45 s).
   */
  streamIdleMs?: number;
}

const FOLLOW_OUTAGE_MS = 10 * 60_000;
/** Three of the gateway's 15 s keep-alives missed: the connection is gone, though nothing said so. */
const STREAM_IDLE_MS = 45_000;
const MAX_STREAM_IDLE_SECONDS = 3600;

/**
 * RUNBRIDGE_STREAM_IDLE_SECONDS (1-3600). Read when following starts, after the operation was
 * submitted: a bad value is a note and the default, not an error that would leave the operation unfollowed.
 */
function streamIdleMs(raw: string | undefined, note: (text: string) => void): number {
  if (raw === undefined || raw === "") return STREAM_IDLE_MS;
  const n = Number(raw);
  if (Number.isInteger(n) && n >= 1 && n <= MAX_STREAM_IDLE_SECONDS) return n * 1000;
  note(`RUNBRIDGE_STREAM_IDLE_SECONDS must be a whole number from 1 to ${MAX_STREAM_IDLE_SECONDS}, got "${raw}"; using ${STREAM_IDLE_MS / 1000}`);
  return STREAM_IDLE_MS;
}

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
  const idleMs = opts.streamIdleMs ?? streamIdleMs(process.env.RUNBRIDGE_STREAM_IDLE_SECONDS, (text) => printer.note(text));
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
    const how = await printEvents(res, printer, stream, idleMs, opts.signal);
    if (how === "end") return true;
    // The connection dropped (or went silent) before the end: reconnect (resuming after the last event) with backoff.
    stream.failures++;
    if (stream.failures > 8) return false;
    if (how === "idle") printer.note(`nothing came on the live output stream for ${idleMs / 1000} s (not even a keep-alive); reconnecting`);
    await sleep(Math.min(250 * 2 ** stream.failures, 4000), opts.signal);
  }
}

/** Where a followed stream is, across reconnections. */
interface StreamState {
  lastEventId: string | undefined;
  /** Drops in a row without output; output resets it, so only a stuck stream gives up. */
  failures: number;
}

/** Prints one connection's output events, until the stream's end, the connection dropping, or nothing arriving for `idleMs`. */
async function printEvents(res: Response, printer: OutputPrinter, stream: StreamState, idleMs: number, signal?: AbortSignal): Promise<"end" | "dropped" | "idle"> {
  try {
    if (!res.body) throw new Error("empty event stream");
    for await (const ev of readEvents(idleBounded(res.body, idleMs))) {
      if (ev.id !== undefined) stream.lastEventId = ev.id;
      if (ev.event === "stdout" || ev.event === "stderr") {
        const chunk = parseChunk(ev.data);
        // A truncated stored capture (sent once the live log has expired) is the stream's end, not its start: its offset 0 is not where it begins.
        if (chunk?.truncated) printer.storedEndOnly(chunk.stream ?? ev.event);
        else if (chunk) printer.chunk(chunk.stream ?? ev.event, chunk.offset, chunk.data);
        stream.failures = 0;
      } else if (ev.event === "cut_off") {
        printer.cutOff();
      } else if (ev.event === "end") {
        return "end";
      }
    }
  } catch (err) {
    if (signal?.aborted) throw err;
    // The connection dropped mid-stream, or went silent: the caller resumes from the last event.
    if (err instanceof StreamIdleError) return "idle";
  } finally {
    await res.body?.cancel().catch(() => undefined);
  }
  return "dropped";
}

/** A 429 answer to a poll, with how long its Retry-After asks to wait. */
class PollRateLimited extends ApiError {
  constructor(
    detail: string,
    readonly waitMs: number,
  ) {
    super(429, detail);
  }
}

/**
 * Polls GET /operations/{id} until its status is terminal. An outage of the
 * API (unreachable, 5xx, after the client's own retries) or rate limiting
 * (429, waited out as Retry-After asks) does not end the wait at once: the
 * operation goes on running meanwhile, and a CI step that failed then would
 * be retried and run it a second time. Only an outage longer than
 * `outageMs` ends it.
 */
async function waitTerminal(client: ApiClient, id: string, opts: FollowOptions): Promise<OperationView> {
  let interval = opts.pollMs ?? 1000;
  const outageMs = opts.outageMs ?? FOLLOW_OUTAGE_MS;
  let failingSince: number | null = null;
  for (;;) {
    let op: OperationView;
    try {
      // 429 comes back here rather than being waited out by the client (ten Retry-Afters) and thrown: this loop waits as long as for an outage.
      const res = await client.get<OperationView>(opPath(id), { signal: opts.signal, accept: [429] });
      if (res.status === 429) throw new PollRateLimited(detailOf(res.body), retryAfterMs(res.headers.get("retry-after")));
      op = res.body;
      failingSince = null;
    } catch (err) {
      const outage = err instanceof NetworkError || (err instanceof ApiError && (err.status >= 500 || err.status === 429));
      if (!outage || opts.signal?.aborted) throw err;
      failingSince ??= Date.now();
      if (Date.now() - failingSince >= outageMs) throw err;
      const wait = err instanceof PollRateLimited ? err.waitMs : Math.min(interval * 4, 15_000);
      opts.note?.(
        `could not read operation ${id} (${err instanceof ApiError ? `HTTP ${err.status}` : "the API did not answer"}); it may still be running: asking again in ${Number((wait / 1000).toFixed(1))} s`,
      );
      await sleep(wait, opts.signal);
      continue;
    }
    if (isTerminalStatus(op.status)) return op;
    await sleep(interval, opts.signal);
    interval = Math.min(interval * 1.25, 3000);
  }
}

function detailOf(body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  return typeof detail === "string" ? detail : "rate limited";
}

function parseChunk(data: string): { stream?: StreamName; offset: number; data: string; truncated: boolean } | null {
  try {
    const v = JSON.parse(data) as { stream?: unknown; offset?: unknown; data?: unknown; truncated?: unknown };
    if (typeof v.data !== "string" || typeof v.offset !== "number") return null;
    const stream = v.stream === "stdout" || v.stream === "stderr" ? v.stream : undefined;
    return { stream, offset: v.offset, data: v.data, truncated: v.truncated === true };
  } catch {
    return null;
  }
}

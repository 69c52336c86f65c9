import { ExitCode } from "./exit-codes";

/** The API answered with an error status; `detail` is its `{detail}` message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
  }

  get exitCode(): ExitCode {
    if (this.status === 401 || this.status === 403) return ExitCode.Auth;
    if (this.status === 429) return ExitCode.RateLimited;
    if (this.status >= 500) return ExitCode.Network;
    return ExitCode.Rejected;
  }
}

/** The API could not be reached (after every retry). */
export class NetworkError extends Error {
  readonly exitCode = ExitCode.Network;
}

/** Bad flags or arguments, found before anything was sent. */
export class UsageError extends Error {
  readonly exitCode = ExitCode.Usage;
}

export interface ApiClientOptions {
  /** Base URL of the gateway, e.g. https://runbridge.example.com (the API path is added). */
  url: string;
  apiKey: string;
  /** Progress notes (retries, rate limiting) for the user; never carries secrets. */
  notify?: (message: string) => void;
  /** Network/5xx attempts before giving up (default 6, i.e. ~30 s of backoff). */
  maxAttempts?: number;
  /** 429 answers waited out before giving up (default 10). */
  maxRateLimitWaits?: number;
  /** First backoff delay; doubles each attempt up to 8 s. */
  backoffMs?: number;
  /**
   * How long a keyed POST keeps retrying while the gateway answers that its earlier attempt is still in
   * progress (409 with Retry-After; default 2 minutes, past the gateway's longest synchronous hold).
   */
  inProgressWaitMs?: number;
  userAgent?: string;
  /**
   * How long one attempt may go unanswered — its headers and, but for a stream, its whole body —
   * before it is abandoned and retried like a network failure (default 30 s; plus heldForMs for a
   * request the server holds). A gateway, proxy or connection that stalls would otherwise hold a CI
   * job for fetch's own 300 s per attempt, or, mid-body, for good.
   */
  answerWithinMs?: number;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as Idempotency-Key; the same value on every retry of this request. */
  idempotencyKey?: string;
  headers?: Record<string, string>;
  /** Aborting stops the request and every retry. */
  signal?: AbortSignal;
  /** Statuses returned to the caller instead of thrown as ApiError. */
  accept?: number[];
  /**
   * How long the server may hold this request before it answers (a synchronous operation POST, held
   * while its command runs): added to answerWithinMs for this request's attempts.
   */
  heldForMs?: number;
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  headers: Headers;
}

export const API_PREFIX = "/api/automation/v1";
const RETRYABLE_STATUS = new Set([502, 503, 504]);
const MAX_RETRY_AFTER_MS = 120_000;
const ANSWER_WITHIN_MS = 30_000;

/**
 * A small client of the Automation API on Node's fetch. Every request is
 * retried on network errors and 502/503/504 with exponential backoff, and on
 * 429 after the server's Retry-After. Retrying a POST is safe because the
 * caller gives it an Idempotency-Key that stays the same on every attempt.
 */
export class ApiClient {
  private readonly base: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = opts.url.replace(/\/+$/, "").replace(/\/api\/automation\/v1$/, "") + API_PREFIX;
  }

  get<T>(path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    return this.json<T>("GET", path, opts);
  }

  post<T>(path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    return this.json<T>("POST", path, opts);
  }

  /**
   * A raw response (for Server-Sent Events); error statuses not in `accept` are thrown. Only its
   * headers are bounded by answerWithinMs: the caller watches the stream for silence itself.
   */
  async open(path: string, opts: RequestOptions = {}): Promise<Response> {
    return (await this.send("GET", path, { ...opts, headers: { Accept: "text/event-stream", ...opts.headers } }, false)).res;
  }

  private async json<T>(method: string, path: string, opts: RequestOptions): Promise<ApiResponse<T>> {
    const { res, text } = await this.send(method, path, opts, true);
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = { detail: text.slice(0, 500) };
      }
    }
    return { status: res.status, body: body as T, headers: res.headers };
  }

  /**
   * One request, retried. `readBody`: the body is read within the attempt, so a connection cut or
   * stalled mid-body is retried like one that failed before the headers (the operation POSTs carry
   * an Idempotency-Key, so a retry is answered with the first attempt's outcome).
   */
  private async send(method: string, path: string, opts: RequestOptions, readBody: boolean): Promise<{ res: Response; text: string }> {
    const maxAttempts = this.opts.maxAttempts ?? 6;
    const maxWaits = this.opts.maxRateLimitWaits ?? 10;
    const answerWithinMs = (this.opts.answerWithinMs ?? ANSWER_WITHIN_MS) + (opts.heldForMs ?? 0);
    const headers: Record<string, string> = {
      Accept: "application/json",
      Authorization: `Bearer ${this.opts.apiKey}`,
      "User-Agent": this.opts.userAgent ?? "runbridge-cli",
      ...opts.headers,
    };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);

    let built: Headers;
    try {
      built = new Headers(headers);
    } catch {
      // A header value HTTP cannot carry (the key, after checkApiKey, should never be one): fetch's
      // message quotes the value, and no retry can help.
      throw new UsageError(`${method} ${path}: a request header holds a character HTTP does not allow; its value is not shown`);
    }

    let failures = 0;
    let waits = 0;
    const inProgressUntil = performance.now() + (this.opts.inProgressWaitMs ?? 120_000);
    for (;;) {
      const attempt = new AbortController();
      const timer = setTimeout(() => attempt.abort(new Error(`no answer within ${answerWithinMs / 1000} s`)), answerWithinMs);
      // The caller's signal stops this attempt too, until it is over; a stream's attempt lasts as long as its body.
      const unlink = abortWith(attempt, opts.signal);
      let res: Response;
      let text = "";
      try {
        res = await fetch(this.base + path, { method, headers: built, body: payload, signal: attempt.signal });
        if (readBody && (opts.accept?.includes(res.status) || (res.status >= 200 && res.status < 300))) text = await res.text();
      } catch (err) {
        clearTimeout(timer);
        unlink();
        if (opts.signal?.aborted) throw err;
        failures++;
        const why = attempt.signal.aborted ? (attempt.signal.reason as Error).message : describeNetworkError(err);
        if (failures >= maxAttempts) throw new NetworkError(`could not reach ${withoutUserinfo(this.base)}: ${why} (gave up after ${failures} attempts)`);
        const delay = this.backoff(failures);
        this.opts.notify?.(`${method} ${path}: ${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
        await sleep(delay, opts.signal);
        continue;
      }
      if (opts.accept?.includes(res.status) || (res.status >= 200 && res.status < 300)) {
        clearTimeout(timer);
        if (readBody) {
          unlink();
          return { res, text };
        }
        return { res: untilBodyEnds(res, unlink), text };
      }
      // Error answers are read (or dropped) under the same bound.
      const verdict = await this.onErrorStatus(`${method} ${path}`, method, res, opts, { failures, waits, maxAttempts, maxWaits, inProgressUntil }).finally(() => {
        clearTimeout(timer);
        unlink();
      });
      if (verdict.kind === "throw") throw verdict.error;
      if (verdict.kind === "failure") failures++;
      if (verdict.kind === "rate-limited") waits++;
      this.opts.notify?.(verdict.note);
      await sleep(verdict.delay, opts.signal);
    }
  }

  /** What to do with an answer of an error status: wait and retry (why, and how long), or give up. */
  private async onErrorStatus(
    what: string,
    method: string,
    res: Response,
    opts: RequestOptions,
    st: { failures: number; waits: number; maxAttempts: number; maxWaits: number; inProgressUntil: number },
  ): Promise<{ kind: "rate-limited" | "in-progress" | "failure"; delay: number; note: string } | { kind: "throw"; error: Error }> {
    const drop = () => res.body?.cancel().catch(() => undefined);
    if (res.status === 429 && st.waits < st.maxWaits) {
      const delay = retryAfterMs(res.headers.get("retry-after"));
      await drop();
      return { kind: "rate-limited", delay, note: `rate limited (429); retrying in ${Math.ceil(delay / 1000)} s as Retry-After asks` };
    }
    // An earlier attempt of this request (same Idempotency-Key) is still being answered, by a gateway
    // holding a synchronous request or shutting down: its answer is replayed to a later retry.
    if (res.status === 409 && opts.idempotencyKey && res.headers.has("retry-after") && performance.now() < st.inProgressUntil) {
      const delay = retryAfterMs(res.headers.get("retry-after"));
      await drop();
      return { kind: "in-progress", delay, note: `${what}: an earlier attempt of this request is still in progress (HTTP 409); retrying in ${Math.ceil(delay / 1000)} s` };
    }
    // A GET changes nothing: even a plain 500 (a transient fault behind the gateway) is worth another try.
    if ((RETRYABLE_STATUS.has(res.status) || (method === "GET" && res.status === 500)) && st.failures + 1 < st.maxAttempts) {
      const hinted = res.headers.get("retry-after");
      const delay = hinted ? retryAfterMs(hinted) : this.backoff(st.failures + 1);
      await drop();
      return { kind: "failure", delay, note: `${what}: HTTP ${res.status}; retrying in ${(delay / 1000).toFixed(1)} s` };
    }
    const detail = await errorDetail(res);
    return { kind: "throw", error: new ApiError(res.status, detail) };
  }

  private backoff(failures: number): number {
    const base = this.opts.backoffMs ?? 500;
    return Math.min(base * 2 ** (failures - 1), 8000);
  }
}

/** The gateway URL must be http(s) and hold no credentials (they would end up in error messages). */
export function checkApiUrl(url: string, label: string): void {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // Reported below.
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol)) throw new UsageError(`${label} must be an http(s) URL, got "${withoutUserinfo(url).slice(0, 200)}"`);
  if (parsed.username || parsed.password) throw new UsageError(`${label} must not hold a user or password; the key goes in its own setting`);
}

/**
 * What to warn about a gateway URL (one checkApiUrl passed) that sends the key in clear text to
 * another machine; undefined when it does not. Warned, not refused: a private network or a compose
 * network's plain hop is a deliberate choice, and one the operator must make knowingly.
 */
export function cleartextWarning(url: string, label: string): string | undefined {
  const { protocol, hostname, host } = new URL(url);
  if (protocol !== "http:" || isThisMachine(hostname)) return undefined;
  return (
    `${label} is plain http:// to ${host}: the automation key, the env values sent, and the commands and their output cross the network ` +
    "unencrypted, readable by anyone on the way. Use https:// (a TLS-terminating proxy in front of the gateway)"
  );
}

/** localhost and *.localhost, 127.0.0.0/8, ::1: URL has already written any spelling of an address in its canonical form (127.1, [0::1]). */
function isThisMachine(hostname: string): boolean {
  return /(^|\.)localhost\.?$/.test(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname) || hostname === "[::1]";
}

/**
 * An API key goes into the Authorization header: one with a character a header cannot carry (a
 * control character, a space, non-ASCII — a secret pasted with a stray byte) is a usage error,
 * reported without the value, instead of a "network error" retried with the key in every note.
 * Surrounding whitespace (a trailing newline from a secret file) is what fetch drops anyway.
 */
export function checkApiKey(key: string, label: string): string {
  const trimmed = key.trim();
  if (!/^[\x21-\x7e]+$/.test(trimmed)) {
    throw new UsageError(`${label} holds a character that cannot be sent in an HTTP header (a control character, space or non-ASCII); its value is not shown`);
  }
  return trimmed;
}

/** A URL for messages: any user:password@ part is dropped. */
function withoutUserinfo(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

async function errorDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { detail?: unknown };
    if (typeof parsed.detail === "string") return parsed.detail;
  } catch {
    // Not JSON (a proxy's error page): show its start.
  }
  return text.trim().slice(0, 300) || res.statusText || `HTTP ${res.status}`;
}

/** Retry-After is delta-seconds or an HTTP date; missing or odd values mean 1 s. */
export function retryAfterMs(value: string | null, now = Date.now()): number {
  if (!value) return 1000;
  const v = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    ms = Number.isNaN(at) ? 1000 : at - now;
  }
  return Math.min(Math.max(ms, 250), MAX_RETRY_AFTER_MS);
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ""}`;
  return cause?.message ?? err.message;
}

/**
 * Aborts `attempt` (with the same reason) when `signal` aborts, until the returned function unlinks
 * them. AbortSignal.any would do it, but only from Node 20.3, and the CLI runs on any Node 20. The
 * listener is removed once the attempt is over: the caller's signal may outlive many attempts (a POST
 * waiting out 409s, a discovery's polls), and each would otherwise stay on it (past 10, Node warns of
 * a leak).
 */
function abortWith(attempt: AbortController, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => undefined;
  const onAbort = () => attempt.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/**
 * The response, its body calling `done` once it has been read to its end, failed or been cancelled:
 * a stream's attempt (and its link to the caller's signal, which must still stop it) lasts that long.
 */
function untilBodyEnds(res: Response, done: () => void): Response {
  if (!res.body) {
    done();
    return res;
  }
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) {
          done();
          controller.close();
        } else {
          controller.enqueue(next.value);
        }
      } catch (err) {
        done();
        controller.error(err);
      }
    },
    async cancel(reason) {
      done();
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A cloud provider API refused or failed a call; the message is safe to show (no token).
 * `outcomeUnknown` is set when the request may have reached the provider and been acted on
 * (no answer in time, a connection cut once the request was out, a 500 or a gateway's 502/504): doing
 * the same thing another way could then do it twice.
 */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly outcomeUnknown = false,
  ) {
    super(message);
  }
}

export interface ProviderCall {
  url: string;
  token: string;
  body?: unknown;
  timeoutMs: number;
}

/**
 * Transport failures that happen before a request is sent: nothing reached the provider.
 * Anything else (a reset, "other side closed", a time-out) can come after the provider read it.
 */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT", "ERR_TLS_CERT_ALTNAME_INVALID"]);

function neverSent(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return false;
  // TLS verification failures (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) end the handshake before any request.
  return NOT_SENT_CODES.has(code) || /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/.test(code);
}

/**
 * Statuses that say nothing sure about whether the call ran: an internal error (it may have failed
 * after acting), and those of a proxy or CDN in front of the API whose origin got the request but
 * whose answer was lost (502, 504; Cloudflare's 520 and 524). 503 and the others say it was not done.
 */
const UNSURE_STATUSES = new Set([500, 502, 504, 520, 524]);

/**
 * POSTs to a provider API with a bearer token and returns the parsed JSON
 * reply ({} when a 2xx reply is empty or not JSON). Any transport error,
 * timeout or non-2xx status is a ProviderError carrying the status and a
 * bounded excerpt of the provider's own message.
 */
export async function postJson(call: ProviderCall): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(call.url, {
      method: "POST",
      headers: { Authorization: `Bearer ${call.token}`, "Content-Type": "application/json", Accept: "application/json" },
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: AbortSignal.timeout(call.timeoutMs),
      // Not "error": with it, a response whose body stalls after the headers is never given up if
      // the collector runs meanwhile (undici), and the delivery waits for good. A redirect is
      // refused below instead, by its status.
      redirect: "manual",
    });
  } catch (err) {
    const e = err as Error;
    const cause = e.cause as Error | undefined;
    if (e.name === "TimeoutError") throw new ProviderError(`request failed: no answer within ${call.timeoutMs} ms`, true);
    throw new ProviderError(`request failed: ${cause?.message ?? e.message}`, !neverSent(cause));
  }
  const text = await res.text().catch(() => "");
  // A redirect is an answer: the API did not take the call where it was sent (and its Authorization
  // header is not for the place it names).
  if (res.status >= 300 && res.status < 400) throw new ProviderError(`HTTP ${res.status}: a redirect, not followed`);
  if (!res.ok) {
    // Never echo the token back, even if a provider (or a proxy) reflects headers.
    const excerpt = text.split(call.token).join("***").replace(/\s+/g, " ").slice(0, 200);
    throw new ProviderError(`HTTP ${res.status}${excerpt ? `: ${excerpt}` : ""}`, UNSURE_STATUSES.has(res.status));
  }
  try {
    return text ? (JSON.parse(text) as unknown) : {};
  } catch {
    // The status says the provider accepted the call (a proxy in front may have rewritten the body):
    // an error here would make the caller fall back to the runner, and reboot the server twice.
    return {};
  }
}

/** `action.id` of a provider's action reply, if present. */
export function actionId(reply: unknown): string | null {
  const action = (reply as { action?: { id?: unknown } } | null)?.action;
  return action && (typeof action.id === "number" || typeof action.id === "string") ? String(action.id) : null;
}

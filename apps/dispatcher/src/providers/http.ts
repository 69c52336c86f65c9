/** A cloud provider API refused or failed a call; the message is safe to show (no token). */
export class ProviderError extends Error {}

export interface ProviderCall {
  url: string;
  token: string;
  body?: unknown;
  timeoutMs: number;
}

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
      redirect: "error",
    });
  } catch (err) {
    const e = err as Error;
    const why = e.name === "TimeoutError" ? `no answer within ${call.timeoutMs} ms` : (e.cause as Error | undefined)?.message ?? e.message;
    throw new ProviderError(`request failed: ${why}`);
  }
  const text = await res.text().catch(() => "");
  if (!res.ok) {
    // Never echo the token back, even if a provider (or a proxy) reflects headers.
    const excerpt = text.split(call.token).join("***").replace(/\s+/g, " ").slice(0, 200);
    throw new ProviderError(`HTTP ${res.status}${excerpt ? `: ${excerpt}` : ""}`);
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

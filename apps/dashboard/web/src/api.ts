import type { Session } from "./types";

/** An API error: the status and the server's `detail`, shown to the user as is. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Same-origin fetch with the session cookie. The API key itself never reaches
 * this code after sign-in; only the CSRF token (from the session endpoint) is
 * held in memory and echoed on every change.
 */
let csrfToken = "";
/** Whose session this tab believes it holds: a CSRF refresh that finds another one must not replay the change there. */
let identity = "";
let onSignedOut: () => void = () => undefined;
let onSwitched: (s: Session) => void = () => undefined;

const identityOf = (s: Session) => `${s.tenant_id}/${s.api_key_id}`;

function adopt(s: Session | null): void {
  csrfToken = s?.csrf_token ?? "";
  identity = s ? identityOf(s) : "";
}

export function onSessionLost(handler: () => void): void {
  onSignedOut = handler;
}

/** Called when the cookie turns out to belong to another sign-in (made in another tab of this browser). */
export function onSessionSwitched(handler: (s: Session) => void): void {
  onSwitched = handler;
}

/**
 * The cookie is shared by every tab, the CSRF token is not: after a sign-out
 * and sign-in elsewhere this tab's token is stale. Re-read the session; the
 * change is retried only when it is still the same tenant and key, so nothing
 * is ever written into a tenant the user did not see on screen.
 */
async function refreshAfterCsrfRefusal(): Promise<boolean> {
  const before = identity;
  const s = await currentSession();
  if (!s) return false;
  if (identityOf(s) === before) return true;
  onSwitched(s);
  throw new ApiError(409, `This browser is now signed in as ${s.tenant_name ?? "another tenant"} (from another tab). Nothing was changed; the page now shows that tenant.`);
}

/** How long a request may go unanswered (its headers and body) before it is given up. */
const ANSWER_WITHIN_MS = 30_000;

export async function request<T>(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}, retried = false): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", "X-Requested-With": "runbridge-dashboard", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let res: Response;
  let text: string;
  // A request a proxy or a half-open connection holds would otherwise leave the page showing old
  // data as current, its polling stopped, with nothing said.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), ANSWER_WITHIN_MS);
  try {
    res = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body), signal: deadline.signal });
    text = res.status === 204 ? "" : await res.text();
  } catch {
    if (!deadline.signal.aborted) throw new ApiError(0, "Cannot reach the runbridge gateway. Check your connection and retry.");
    const seconds = ANSWER_WITHIN_MS / 1000;
    throw new ApiError(0, method === "GET" ? `The gateway did not answer within ${seconds} s. Retry.` : `The gateway did not answer within ${seconds} s: the change may or may not have been made. Reload to see.`);
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 204) return undefined as T;
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const detail = json && typeof json === "object" && "detail" in json ? String((json as { detail: unknown }).detail) : `HTTP ${res.status}`;
    // Only the management API's 401 means the session is gone (not a pasted automation key's).
    if (res.status === 401 && !extraHeaders.Authorization) onSignedOut();
    if (res.status === 403 && !retried && !extraHeaders.Authorization && /X-CSRF-Token/.test(detail) && (await refreshAfterCsrfRefusal())) {
      return request<T>(method, path, body, extraHeaders, true);
    }
    throw new ApiError(res.status, detail);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body: unknown) => request<T>("POST", path, body),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

export async function signIn(apiKey: string): Promise<Session> {
  const s = await request<Session>("POST", "/dashboard/session", { api_key: apiKey });
  adopt(s);
  announceSessionChange();
  return s;
}

export async function currentSession(): Promise<Session | null> {
  try {
    const s = await request<Session>("GET", "/dashboard/session");
    adopt(s);
    return s;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      adopt(null);
      return null;
    }
    throw e;
  }
}

export async function signOut(): Promise<void> {
  await request<void>("DELETE", "/dashboard/session");
  adopt(null);
  announceSessionChange();
}

/*
 * Tabs of one browser share the session cookie: a sign-in or sign-out in one
 * tells the others to re-read the session at once, instead of them showing
 * the new tenant's data under the old tenant's name until a change fails.
 */
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("runbridge-dashboard-session") : null;

function announceSessionChange(): void {
  channel?.postMessage("changed");
}

export function onSessionChangedElsewhere(handler: () => void): void {
  if (channel) channel.onmessage = () => handler();
}

/** Query string from defined, non-empty values. */
export function qs(params: Record<string, string | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

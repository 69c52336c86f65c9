/** Human-readable times: relative for recent ones, with the exact time in a title. */
export function relativeTime(iso: string | null | undefined): string {
  if (!iso) return "never";
  const t = new Date(iso).getTime();
  const s = Math.round((Date.now() - t) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const unit = a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86400)}d`;
  if (a < 5) return "just now";
  return future ? `in ${unit}` : `${unit} ago`;
}

/** In the viewer's time zone, named: the Audit page's day filters are UTC days, and an unnamed local time read as outside them. */
export function exactTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString(undefined, { timeZoneName: "short" }) : "";
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  // Rounded as a whole first: 119.6 s is 2m 0s, not 1m 60s.
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

/** A commit URL for well-known hosts when the run context names a repository and sha. */
function parsesAsUrl(text: string): boolean {
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

export function commitUrl(ctx: { provider?: string; repository?: string; sha?: string; server_url?: unknown } | null): string | null {
  if (!ctx?.repository || !ctx.sha || !/^[0-9a-f]{7,40}$/i.test(ctx.sha)) return null;
  if (!/^[\w.-]+\/[\w./-]+$/.test(ctx.repository)) return null;
  if (typeof ctx.server_url === "string" && /^https:\/\/[\w.-]+(:\d+)?$/.test(ctx.server_url)) {
    // Written by whoever holds an automation key: only an address the browser itself can parse
    // (a port above 65535, an IP with a 999 in it, would make every reader of it throw).
    return parsesAsUrl(ctx.server_url) ? `${ctx.server_url}/${ctx.repository}/commit/${ctx.sha}` : null;
  }
  if (ctx.provider === "gitlab_ci" || ctx.provider === "gitlab") return `https://gitlab.com/${ctx.repository}/-/commit/${ctx.sha}`;
  if (!ctx.provider || ctx.provider === "github_actions" || ctx.provider === "github") return `https://github.com/${ctx.repository}/commit/${ctx.sha}`;
  return null;
}

/**
 * An id an automation key still names after its server or registry credential
 * was deleted (the API keeps such ids: a list of one must not turn into "all").
 */
export function deletedLabel(what: string, id: string): string {
  return `deleted ${what} (${id.slice(0, 8)}…)`;
}

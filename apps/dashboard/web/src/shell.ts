/**
 * A POSIX shell word that is exactly `s`: single quotes take everything literally but a single
 * quote, which is closed, escaped and reopened. What the dashboard offers to paste into a shell
 * quotes every value this way: they come from other users of the tenant (an application's
 * deploy branch), and a paste must never run anything but the command shown.
 */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The curl command that starts a deploy as the dialog would, for CI; the key stays in $RUNBRIDGE_API_KEY. */
export function deployCurl(origin: string, applicationId: string, commitRef: string): string {
  const body = JSON.stringify({ application_id: applicationId, ...(commitRef.trim() ? { commit_ref: commitRef.trim() } : {}) });
  return `curl -sS -X POST ${shellQuote(`${origin}/api/automation/v1/deploy`)} \\
  -H "Authorization: Bearer $RUNBRIDGE_API_KEY" -H "Content-Type: application/json" \\
  -d ${shellQuote(body)}`;
}

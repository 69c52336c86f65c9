/**
 * The statement that records a runner connection's health on its server's row — what keeps the runner
 * from taking operations (runner_problem), since when, and the connection that said it — with a
 * `runner.degraded` / `runner.recovered` audit event when the server enters or leaves that state, in
 * one statement (see operation-store.ts).
 *
 * Only the live connection's report counts: of a server's runner connections the newest by admission
 * number (socket.data.seq, handed out by Redis in admission order) is the one requests go to and the one
 * that stays (dispatcher runner-link.ts). A report counts when its connection's number is at least the
 * one stored with the row's report (runner_health_seq): a connection replaced by a newer one — still
 * open a moment on another dispatcher, or whose write was slow — never overwrites the newer one's report,
 * whichever dispatcher holds which and in whatever order their writes land. A connection without a number
 * (admitted while Redis did not answer) ranks below every numbered one, as runner-link.ts ranks it: its
 * report counts only over a row no numbered connection has reported on.
 *
 * `p` names the statement's placeholders: the server's id, the problem (text, null for none), the
 * connection's admission number (bigint, null for none) and its client address (text).
 * `admission`: also the admission's own write: last_seen_at, whether or not the health counts (that
 * connection was seen), and runner_version as `p.version` only when it does (an older connection's
 * admission landing late would otherwise show the version the server ran before its upgrade).
 */
export function runnerHealthText(p: { serverId: string; problem: string; seq: string; clientIp: string; version?: string }): string {
  // False, not NULL, for a connection without a number over a numbered report: NULL would reach the ELSE of
  // runner_problem_since's CASE below and leave a problem and its `since` disagreeing.
  const counts = `COALESCE(runner_health_seq IS NULL OR runner_health_seq <= ${p.seq}::bigint, false)`;
  return `WITH before AS (
     SELECT id, runner_problem, runner_problem_since, ${counts} AS counts FROM servers WHERE id = ${p.serverId} FOR NO KEY UPDATE
   ), after AS (
     UPDATE servers s SET ${p.version ? `last_seen_at = now(), runner_version = CASE WHEN b.counts THEN ${p.version}::text ELSE s.runner_version END,` : ""}
            runner_problem = CASE WHEN b.counts THEN ${p.problem}::text ELSE s.runner_problem END,
            runner_problem_since = CASE WHEN NOT b.counts THEN s.runner_problem_since WHEN ${p.problem}::text IS NULL THEN NULL
                                        ELSE COALESCE(s.runner_problem_since, now()) END,
            runner_health_seq = CASE WHEN b.counts THEN ${p.seq}::bigint ELSE s.runner_health_seq END
     FROM before b WHERE s.id = b.id${p.version ? "" : " AND b.counts"}
     RETURNING s.id, s.tenant_id, b.counts, b.runner_problem AS problem_before, b.runner_problem_since AS since_before, s.runner_problem AS problem_after
   ), audit AS (
     INSERT INTO audit_events (id, tenant_id, type, server_id, client_ip, data)
     SELECT gen_random_uuid(), tenant_id, CASE WHEN problem_after IS NULL THEN 'runner.recovered' ELSE 'runner.degraded' END, id, ${p.clientIp}::text,
            CASE WHEN problem_after IS NULL THEN jsonb_build_object('problem', problem_before, 'problem_since', since_before, 'client_ip', ${p.clientIp}::text)
                 ELSE jsonb_build_object('problem', problem_after, 'client_ip', ${p.clientIp}::text) END
     FROM after WHERE counts AND (problem_before IS NULL) <> (problem_after IS NULL)
   )
   SELECT counts FROM after`;
}

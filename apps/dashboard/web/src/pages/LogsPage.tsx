import { type FormEvent, useEffect, useState } from "react";
import { api, qs } from "../api";
import { EmptyState, ErrorNote, Loading, PageHeader, StatusBadge, Time } from "../components/bits";
import { CommitLink } from "../components/CommitLink";
import { duration } from "../format";
import { useLoad } from "../hooks";
import { useOlderPages } from "../olderPages";
import { href, navigate } from "../router";
import { OPERATION_STATUSES, type AutomationKey, type Operation, type Page, type RunContext, type Server } from "../types";

const FILTERS = ["automation_key_id", "server_id", "status", "run_id"] as const;
/** How many operations the gateway reads by id in one request (GET /dashboard/api/operations?ids=). */
const OPERATIONS_BY_ID_MAX = 100;
type Filters = Record<(typeof FILTERS)[number], string>;

interface Group {
  runId: string | null;
  context: RunContext | null;
  ops: Operation[];
}

/** Operations of one CI run sit together under their run_id, at the place of the run's newest operation. */
function groupByRun(ops: Operation[]): Group[] {
  const groups: Group[] = [];
  const byRun = new Map<string, Group>();
  for (const op of ops) {
    if (!op.run_id) {
      groups.push({ runId: null, context: null, ops: [op] });
      continue;
    }
    let g = byRun.get(op.run_id);
    if (!g) {
      g = { runId: op.run_id, context: op.run_context, ops: [] };
      byRun.set(op.run_id, g);
      groups.push(g);
    }
    g.ops.push(op);
  }
  return groups;
}

function RunHeader(props: { group: Group }) {
  const c = props.group.context;
  const facts: [string, string | undefined][] = [
    ["Repository", c?.repository],
    ["Workflow", c?.workflow],
    ["Trigger", c?.trigger],
    ["Actor", c?.actor],
    ["Ref", c?.ref],
  ];
  return (
    <div className="run-header">
      <div className="run-title">
        <span className="muted">Run</span> <code>{props.group.runId}</code>
        {c?.provider ? <span className="badge badge-muted">{c.provider}</span> : null}
      </div>
      <dl className="run-facts">
        {facts
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        {c?.sha ? (
          <div>
            <dt>Commit</dt>
            <dd>
              <CommitLink context={c} sha={c.sha} />
            </dd>
          </div>
        ) : null}
      </dl>
    </div>
  );
}

function OperationRow(props: { op: Operation }) {
  const op = props.op;
  const open = href(`/operations/${op.operation_id}`);
  return (
    <li className="op-row">
      <StatusBadge status={op.status} />
      <a
        className="op-main"
        href={open}
        onClick={(e) => {
          e.preventDefault();
          navigate(`/operations/${op.operation_id}`);
        }}
      >
        <span className="op-type">{op.operation_type}</span>{" "}
        <code className="op-command">{op.command ?? "—"}</code>
      </a>
      <span className="op-meta">
        <span>{op.server_name ?? op.server_id.slice(0, 8)}</span>
        {op.result?.exit_code !== undefined && op.result?.exit_code !== null ? <span>exit {op.result.exit_code}</span> : null}
        <span>{duration(op.result?.duration_ms)}</span>
        <Time iso={op.created_at} />
      </span>
    </li>
  );
}

export function LogsPage(props: { query: URLSearchParams }) {
  const filters: Filters = { automation_key_id: "", server_id: "", status: "", run_id: "" };
  for (const f of FILTERS) filters[f] = props.query.get(f) ?? "";
  const filterKey = FILTERS.map((f) => filters[f]).join("|");
  const [runId, setRunId] = useState(filters.run_id);
  useEffect(() => setRunId(filters.run_id), [filters.run_id]);

  const keys = useLoad(() => api.get<Page<AutomationKey>>("/api/v1/automation-keys"), []);
  const servers = useLoad(() => api.get<Page<Server>>("/api/v1/servers"), []);
  // Once older pages are loaded they hold every row shown then (the first page's included): a refreshed
  // first page only adds newer rows on top, it never pushes rows into the gap before the older pages' cursor.
  const older = useOlderPages<Operation>(filterKey, "operations");
  // The first page refreshes every few seconds: new operations appear on top, running ones change status.
  const first = useLoad(() => api.get<Page<Operation>>(`/api/v1/operations${qs({ ...filters, limit: "50", output: "false" })}`), [filterKey], {
    ms: 4000,
    while: () => true,
  });

  const setFilter = (name: keyof Filters, value: string) => {
    const next = { ...filters, [name]: value };
    navigate(`/logs${qs(next)}`, { replace: true });
  };
  const submitRunId = (e: FormEvent) => {
    e.preventDefault();
    setFilter("run_id", runId.trim());
  };
  // Each refresh of the first page also refreshes the rows of older pages that were still running and are not on
  // it: one request for their ids (none when there are none), so a loaded row never shows "running" for good.
  useEffect(() => {
    if (!first.data) return;
    const onFirst = new Set(first.data.data.map((o) => o.operation_id));
    void older.refresh(async (rows) => {
      const ids = rows.filter((o) => o.status === "running" && !onFirst.has(o.operation_id)).map((o) => o.operation_id);
      const fresh: Operation[] = [];
      for (let i = 0; i < ids.length; i += OPERATIONS_BY_ID_MAX) {
        const page = await api.get<{ data: Operation[] }>(`/dashboard/api/operations${qs({ ids: ids.slice(i, i + OPERATIONS_BY_ID_MAX).join(",") })}`);
        fresh.push(...page.data);
      }
      return fresh;
    }, (o) => o.operation_id);
    // Once per answer of the first page's poll.
  }, [first.data]);

  // The refreshed first page overlaps the rows kept: each operation once, the fresher copy (its status may have changed).
  const seen = new Set<string>();
  const ops = [...(first.data?.data ?? []), ...(older.rows ?? [])].filter((o) => !seen.has(o.operation_id) && seen.add(o.operation_id));
  const more = older.cursor === undefined ? (first.data?.next_cursor ?? null) : older.cursor;
  const loadMore = async () => {
    if (more) await older.load(more, ops, (cursor) => api.get<Page<Operation>>(`/api/v1/operations${qs({ ...filters, cursor, limit: "50", output: "false" })}`));
  };
  const activeFilters = FILTERS.filter((f) => filters[f]);
  const keyName = keys.data?.data.find((k) => k.id === filters.automation_key_id)?.name;

  return (
    <>
      <PageHeader title="Logs" description="Every operation, newest first. Operations of one CI run are grouped under its run_id." />
      <form className="filters" onSubmit={submitRunId} aria-label="Filter operations">
        <div className="field">
          <label htmlFor="f-key">Automation key</label>
          <select id="f-key" value={filters.automation_key_id} onChange={(e) => setFilter("automation_key_id", e.target.value)}>
            <option value="">All keys</option>
            {(keys.data?.data ?? []).map((k) => (
              <option key={k.id} value={k.id}>
                {k.name} ({k.prefix})
              </option>
            ))}
            {filters.automation_key_id && !keyName ? <option value={filters.automation_key_id}>{filters.automation_key_id}</option> : null}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-server">Server</label>
          <select id="f-server" value={filters.server_id} onChange={(e) => setFilter("server_id", e.target.value)}>
            <option value="">All servers</option>
            {(servers.data?.data ?? []).map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={filters.status} onChange={(e) => setFilter("status", e.target.value)}>
            <option value="">Any status</option>
            {OPERATION_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-run">Run ID</label>
          <div className="input-with-button">
            <input id="f-run" value={runId} onChange={(e) => setRunId(e.target.value)} placeholder="github-run-12345" />
            <button type="submit" className="btn">
              Apply
            </button>
          </div>
        </div>
        {activeFilters.length ? (
          <button type="button" className="btn btn-ghost clear-filters" onClick={() => navigate("/logs", { replace: true })}>
            Clear filters
          </button>
        ) : null}
      </form>
      {keyName ? (
        <p className="filter-note" data-testid="filter-note">
          Showing operations of key <strong>{keyName}</strong>
        </p>
      ) : null}
      <ErrorNote message={first.error} />
      {first.loading && !first.data ? (
        <Loading />
      ) : ops.length === 0 ? (
        activeFilters.length ? (
          <EmptyState title="No operations match these filters">Clear the filters, or check that the key or server has been used.</EmptyState>
        ) : (
          <EmptyState title="No operations yet">
            Operations appear here when a CI system calls the Automation API with an automation key, e.g.{" "}
            <code>POST /api/automation/v1/exec</code>. Create a key under API Keys → Automation Keys to start.
          </EmptyState>
        )
      ) : (
        // Not a live region: every poll re-renders each row's relative time ("12s ago"), which a screen
        // reader would read out again and again; the count below announces what changes.
        <div className="groups">
          <p className="visually-hidden" aria-live="polite">
            {ops.length} operation{ops.length === 1 ? "" : "s"}, {ops.filter((o) => o.status === "running").length} running
          </p>
          {groupByRun(ops).map((g) => (
            <section key={g.runId ?? g.ops[0]?.operation_id} className={g.runId ? "group group-run" : "group"} aria-label={g.runId ? `Run ${g.runId}` : undefined}>
              {g.runId ? <RunHeader group={g} /> : null}
              <ul className="op-list">
                {g.ops.map((op) => (
                  <OperationRow key={op.operation_id} op={op} />
                ))}
              </ul>
            </section>
          ))}
          <ErrorNote message={older.error} />
          {more ? (
            <button type="button" className="btn load-more" onClick={() => void loadMore()}>
              Load older operations
            </button>
          ) : null}
        </div>
      )}
    </>
  );
}

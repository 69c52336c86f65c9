import { type FormEvent, useEffect, useRef, useState } from "react";
import { api, qs } from "../api";
import { EmptyState, ErrorNote, Loading, NotAvailable, PageHeader, Time } from "../components/bits";
import { useLoad } from "../hooks";
import { useOlderPages } from "../olderPages";
import { href, navigate } from "../router";
import type { AutomationKey, Page } from "../types";

interface AuditEvent {
  id: string;
  type: string;
  automation_key_id: string | null;
  operation_id: string | null;
  server_id: string | null;
  run_id: string | null;
  client_ip: string | null;
  data: unknown;
  created_at: string;
}

const COMMON_TYPES = [
  "operation.created",
  "operation.finished",
  "operation.result_after_end",
  "key.created",
  "key.updated",
  "key.revoked",
  "rate_limited",
  "request.refused",
  "server.created",
  "server.runner_token_rotated",
  "server.deleted",
  "runner.replaced",
  "runner.degraded",
  "runner.recovered",
  "dashboard.signed_in",
  "dashboard.signed_out",
];

/** More than a browser tab should hold; a larger export is the API's job (docs/keys.md, "Audit trail"). */
const EXPORT_MAX_EVENTS = 100_000;
const DAY_MS = 86_400_000;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Midnight UTC of a YYYY-MM-DD day between the years 1000 and 9999, or null (not a day: 2026-13-01, 2026-02-30). */
function dayStart(s: string): number | null {
  if (!DATE.test(s)) return null;
  const ms = Date.parse(`${s}T00:00:00Z`);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === s && s >= "1000" ? ms : null;
}

/**
 * The days picked (UTC, both included) as the API's window [created_from,
 * created_before): the day after "to" is the end. A day that is not one (the
 * URL is typed by people), or a reversed range, is not sent.
 */
function windowOf(from: string, to: string): { created_from?: string; created_before?: string; problem: string | null } {
  const f = dayStart(from);
  const t = dayStart(to);
  if (from && f === null) return { problem: `“From” is not a day: ${from} (YYYY-MM-DD).` };
  if (to && t === null) return { problem: `“To” is not a day: ${to} (YYYY-MM-DD).` };
  if (f !== null && t !== null && t < f) return { problem: "The “To” day is before the “From” day: no events can match." };
  const before = t === null ? undefined : new Date(t + DAY_MS).toISOString().slice(0, 10);
  // The day after 9999-12-31 is no longer four digits: leave the end open.
  return { created_from: f === null ? undefined : from, created_before: before && DATE.test(before) ? before : undefined, problem: null };
}

/** Saves `lines` as a file the browser downloads. */
function download(fileName: string, lines: string[]): void {
  const url = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  // After the click has handed the file to the browser.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The tenant's audit trail: who did what, from where, newest first. */
export function AuditPage(props: { query: URLSearchParams }) {
  const type = props.query.get("type") ?? "";
  const keyId = props.query.get("automation_key_id") ?? "";
  const from = props.query.get("from") ?? "";
  const to = props.query.get("to") ?? "";
  const [typeInput, setTypeInput] = useState(type);
  useEffect(() => setTypeInput(type), [type]);
  const [exporting, setExporting] = useState<{ count: number; done: boolean; error?: string; file?: string } | null>(null);
  // An export still reading when the page is left stops there (nothing is downloaded).
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  const { problem, ...window } = windowOf(from, to);
  /** One page of the events the filters select. */
  const eventsPage = (limit: string, cursor: string | null = null) => api.get<Page<AuditEvent>>(`/api/v1/audit-events${qs({ type, automation_key_id: keyId, ...window, cursor, limit })}`);
  const keys = useLoad(() => api.get<Page<AutomationKey>>("/api/v1/automation-keys"), []);
  const older = useOlderPages<AuditEvent>(`${type}|${keyId}|${from}|${to}`, "events");
  const first = useLoad(
    () => (problem ? Promise.resolve({ data: [], next_cursor: null }) : eventsPage("50")),
    [type, keyId, from, to],
  );

  if (first.errorStatus === 404) {
    return (
      <>
        <PageHeader title="Audit trail" />
        <NotAvailable what="Audit events" />
      </>
    );
  }
  const go = (next: { type?: string; automation_key_id?: string; from?: string; to?: string }) =>
    navigate(`/audit${qs({ type, automation_key_id: keyId, from, to, ...next })}`, { replace: true });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    go({ type: typeInput.trim() });
  };
  const rows = [...(first.data?.data ?? []), ...(older.rows ?? [])];
  const more = older.cursor === undefined ? (first.data?.next_cursor ?? null) : older.cursor;
  const loadMore = async () => {
    if (more) await older.load(more, older.rows ?? [], (cursor) => eventsPage("50", cursor));
  };
  // Every event the filters select, page by page, as JSON Lines (what the export script of docs/keys.md writes).
  const exportAll = async () => {
    const file = `audit-events${from ? `-from-${from}` : ""}${to ? `-to-${to}` : ""}${type ? `-${type}` : ""}.jsonl`;
    const lines: string[] = [];
    setExporting({ count: 0, done: false });
    try {
      let cursor: string | null = null;
      do {
        if (!mounted.current) return;
        const page: Page<AuditEvent> = await eventsPage("200", cursor);
        for (const e of page.data) lines.push(`${JSON.stringify(e)}\n`);
        cursor = page.next_cursor ?? null;
        setExporting({ count: lines.length, done: false });
        if (cursor && lines.length >= EXPORT_MAX_EVENTS) {
          setExporting({ count: lines.length, done: true, error: `More than ${EXPORT_MAX_EVENTS.toLocaleString()} events match: pick fewer days, or export through the API (see the documentation, "Audit trail").` });
          return;
        }
      } while (cursor);
      if (!mounted.current) return;
      download(file, lines);
      setExporting({ count: lines.length, done: true, file });
    } catch (e) {
      setExporting({ count: lines.length, done: true, error: `Export stopped after ${lines.length} events: ${e instanceof Error ? e.message : String(e)}` });
    }
  };
  const keyName = (id: string | null) => (id ? (keys.data?.data.find((k) => k.id === id)?.name ?? id.slice(0, 8)) : "—");

  return (
    <>
      <PageHeader title="Audit trail" description="Every operation, key change, rate-limit hit and dashboard sign-in, newest first." />
      <form className="filters filters-audit" onSubmit={submit} aria-label="Filter audit events">
        <div className="field">
          <label htmlFor="a-type">Event type</label>
          <div className="input-with-button">
            <input id="a-type" list="a-types" value={typeInput} onChange={(e) => setTypeInput(e.target.value)} placeholder="key.revoked" />
            <datalist id="a-types">
              {COMMON_TYPES.map((t) => (
                <option key={t} value={t} />
              ))}
            </datalist>
            <button type="submit" className="btn">
              Apply
            </button>
          </div>
        </div>
        <div className="field">
          <label htmlFor="a-key">Automation key</label>
          <select id="a-key" value={keyId} onChange={(e) => go({ automation_key_id: e.target.value })}>
            <option value="">All keys</option>
            {(keys.data?.data ?? []).map((k) => (
              <option key={k.id} value={k.id}>
                {k.name} ({k.prefix})
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="a-from">From (UTC)</label>
          <input id="a-from" type="date" value={from} max={to || undefined} onChange={(e) => go({ from: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="a-to">To (UTC, included)</label>
          <input id="a-to" type="date" value={to} min={from || undefined} onChange={(e) => go({ to: e.target.value })} />
        </div>
        <div className="field field-action">
          <button type="button" className="btn" disabled={problem !== null || (exporting !== null && !exporting.done)} onClick={() => void exportAll()}>
            Export JSON Lines
          </button>
        </div>
      </form>
      {exporting ? (
        <p className="muted" role="status">
          {!exporting.done
            ? `Exporting… ${exporting.count.toLocaleString()} events so far`
            : exporting.file
              ? `Exported ${exporting.count.toLocaleString()} events to ${exporting.file}.`
              : null}
        </p>
      ) : null}
      <ErrorNote message={exporting?.error ?? null} />
      <ErrorNote message={problem} />
      <ErrorNote message={first.error} />
      {first.loading && !first.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title={type || keyId || from || to ? "No events match these filters" : "No audit events yet"}>
          Events are recorded as keys are created, changed or revoked and as operations run.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Audit events</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">Key</th>
                <th scope="col">Client IP</th>
                <th scope="col">Operation</th>
                <th scope="col">Run</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.id}>
                  <td data-label="When">
                    <Time iso={e.created_at} />
                  </td>
                  <td data-label="Event">
                    <code>{e.type}</code>
                  </td>
                  <td data-label="Key">{keyName(e.automation_key_id)}</td>
                  <td data-label="Client IP">{e.client_ip ?? "—"}</td>
                  <td data-label="Operation">
                    {e.operation_id ? (
                      <a
                        href={href(`/operations/${e.operation_id}`)}
                        onClick={(ev) => {
                          ev.preventDefault();
                          navigate(`/operations/${e.operation_id}`);
                        }}
                      >
                        <code>{e.operation_id.slice(0, 8)}</code>
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td data-label="Run">{e.run_id ? <code>{e.run_id}</code> : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorNote message={older.error} />
      {more ? (
        <div className="actions load-more-row">
          <button type="button" className="btn" onClick={() => void loadMore()}>
            Load older events
          </button>
        </div>
      ) : null}
    </>
  );
}

import { type FormEvent, useEffect, useState } from "react";
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

const COMMON_TYPES = ["operation.created", "operation.finished", "key.created", "key.updated", "key.revoked", "rate_limited", "dashboard.signed_in"];

/** The tenant's audit trail: who did what, from where, newest first. */
export function AuditPage(props: { query: URLSearchParams }) {
  const type = props.query.get("type") ?? "";
  const keyId = props.query.get("automation_key_id") ?? "";
  const [typeInput, setTypeInput] = useState(type);
  useEffect(() => setTypeInput(type), [type]);
  const keys = useLoad(() => api.get<Page<AutomationKey>>("/api/v1/automation-keys"), []);
  const older = useOlderPages<AuditEvent>(`${type}|${keyId}`, "events");
  const first = useLoad(() => api.get<Page<AuditEvent>>(`/api/v1/audit-events${qs({ type, automation_key_id: keyId, limit: "50" })}`), [type, keyId]);

  if (first.errorStatus === 404) {
    return (
      <>
        <PageHeader title="Audit trail" />
        <NotAvailable what="Audit events" />
      </>
    );
  }
  const go = (next: { type?: string; automation_key_id?: string }) => navigate(`/audit${qs({ type, automation_key_id: keyId, ...next })}`, { replace: true });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    go({ type: typeInput.trim() });
  };
  const rows = [...(first.data?.data ?? []), ...(older.rows ?? [])];
  const more = older.cursor === undefined ? (first.data?.next_cursor ?? null) : older.cursor;
  const loadMore = async () => {
    if (more) await older.load(more, older.rows ?? [], (cursor) => api.get<Page<AuditEvent>>(`/api/v1/audit-events${qs({ type, automation_key_id: keyId, cursor, limit: "50" })}`));
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
      </form>
      <ErrorNote message={first.error} />
      {first.loading && !first.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title={type || keyId ? "No events match these filters" : "No audit events yet"}>
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

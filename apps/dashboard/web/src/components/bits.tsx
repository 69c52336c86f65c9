import { type ReactNode } from "react";
import { exactTime, relativeTime } from "../format";

/** What to show when a list is empty: what it is for and what to do next. Its title is the heading under the page's (h1) or dialog's (h2). */
export function EmptyState(props: { title: string; children: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty" role="status">
      <h2>{props.title}</h2>
      <div className="muted">{props.children}</div>
      {props.action ? <div className="empty-action">{props.action}</div> : null}
    </div>
  );
}

export function ErrorNote(props: { message: string | null }) {
  if (!props.message) return null;
  return (
    <div className="error-note" role="alert">
      {props.message}
    </div>
  );
}

/** Shown when this gateway does not have an endpoint a page needs (an older or partial deployment). */
export function NotAvailable(props: { what: string }) {
  return (
    <EmptyState title={`${props.what} are not available on this gateway`}>
      This runbridge gateway does not serve the {props.what.toLowerCase()} API yet. Upgrade the gateway to manage them here.
    </EmptyState>
  );
}

const STATUS_CLASS: Record<string, string> = {
  active: "ok",
  completed: "ok",
  connected: "ok",
  degraded: "warn",
  running: "info",
  revoked: "bad",
  failed: "bad",
  timeout: "warn",
  expired: "warn",
  cancelled: "warn",
  disconnected: "muted",
};

export function StatusBadge(props: { status: string; label?: string }) {
  return <span className={`badge badge-${STATUS_CLASS[props.status] ?? "muted"}`}>{props.label ?? props.status}</span>;
}

export function Time(props: { iso: string | null | undefined }) {
  if (!props.iso) return <span className="muted">never</span>;
  return (
    <time dateTime={props.iso} title={exactTime(props.iso)}>
      {relativeTime(props.iso)}
    </time>
  );
}

export function PageHeader(props: { title: string; description?: ReactNode; action?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1>{props.title}</h1>
        {props.description ? <p className="muted">{props.description}</p> : null}
      </div>
      {props.action ? <div>{props.action}</div> : null}
    </div>
  );
}

export function Loading() {
  return (
    <p className="muted" role="status">
      Loading…
    </p>
  );
}

import { useEffect, useRef, useState } from "react";
import { api } from "../api";
import { ErrorNote, Loading, StatusBadge, Time } from "../components/bits";
import { CopyButton } from "../components/CopyButton";
import { CommitLink } from "../components/CommitLink";
import { duration } from "../format";
import { pollAfter, useLoad } from "../hooks";
import { href, navigate, openedFrom } from "../router";
import type { Operation } from "../types";

type Stream = "stdout" | "stderr";
type LiveEntry = { id: string; stream: Stream; offset: number; data: string } | { id: string; cut_off: { note: string; cut_at: number } };

interface LiveOutput {
  entries: LiveEntry[];
  last_id: string | null;
}

/** Entries the output API answers at most at once: a full page means more are waiting, read at once. */
const LIVE_OUTPUT_BATCH = 500;

/**
 * Where output is missing from the live view: the live log keeps the latest entries of a chatty command
 * only, and a view that fell behind finds older ones gone; a runner whose uplink is backed up sends no
 * live output meanwhile (the stored result has the complete tail either way).
 */
const SKIPPED = "\n[… output skipped: not all of it came live (a chatty command, or a slow link); the full output is shown when it ends …]\n";

const utf8Bytes = (text: string) => new TextEncoder().encode(text).length;

/** The text `entries` add to `stream`, with a marker wherever a chunk does not start where the last one ended. */
function textOf(entries: LiveEntry[], stream: Stream, next: Record<Stream, number>): string {
  let text = "";
  for (const e of entries) {
    if (!("stream" in e) || e.stream !== stream) continue;
    if (e.offset > next[stream]) text += SKIPPED;
    text += e.data;
    next[stream] = e.offset + utf8Bytes(e.data);
  }
  return text;
}

/** While the operation runs, output chunks are read from the live stream; once it ends, the stored result is shown. */
function useLiveOutput(id: string, running: boolean) {
  const [out, setOut] = useState<{ stdout: string; stderr: string; cutOff?: string }>({ stdout: "", stderr: "" });
  const last = useRef<string | null>(null);
  /** The byte offset where each stream's next chunk should start. */
  const next = useRef<Record<Stream, number>>({ stdout: 0, stderr: 0 });
  useEffect(() => {
    if (!running) return;
    let stop = false;
    let stopPoll: (() => void) | undefined;
    const tick = async () => {
      try {
        const after = last.current ? `?after=${encodeURIComponent(last.current)}` : "";
        const r = await api.get<LiveOutput>(`/dashboard/api/operations/${id}/output${after}`);
        if (stop) return;
        if (r.entries.length) {
          last.current = r.last_id;
          const cut = r.entries.find((e) => "cut_off" in e);
          const stdout = textOf(r.entries, "stdout", next.current);
          const stderr = textOf(r.entries, "stderr", next.current);
          setOut((o) => ({
            stdout: o.stdout + stdout,
            stderr: o.stderr + stderr,
            cutOff: o.cutOff ?? (cut && "cut_off" in cut ? cut.cut_off.note : undefined),
          }));
        }
        // A full page: more is waiting, and waiting a second each time is how a view falls behind.
        if (!stop && r.entries.length >= LIVE_OUTPUT_BATCH) return void tick();
      } catch {
        // Live output is best effort; the final result comes from the operation itself.
      }
      if (!stop) stopPoll = pollAfter(1000, () => void tick());
    };
    void tick();
    return () => {
      stop = true;
      stopPoll?.();
    };
  }, [id, running]);
  return out;
}

function OutputBlock(props: { title: string; text: string; truncated?: boolean; live?: boolean }) {
  return (
    <section className="output" aria-label={props.title}>
      <header className="output-header">
        <h2>
          {props.title} {props.live ? <span className="badge badge-info">live</span> : null}
        </h2>
        {props.text ? <CopyButton value={props.text} /> : null}
      </header>
      {props.truncated ? <p className="hint">Truncated: only the last part of this stream was kept.</p> : null}
      <pre className="output-text" data-testid={`output-${props.title.toLowerCase()}`} tabIndex={0}>
        {props.text || <span className="muted">(empty)</span>}
      </pre>
    </section>
  );
}

export function OperationPage(props: { id: string }) {
  const op = useLoad(() => api.get<Operation>(`/dashboard/api/operations/${encodeURIComponent(props.id)}`), [props.id], {
    ms: 1500,
    while: (o) => o.status === "running",
  });
  const running = op.data?.status === "running";
  const live = useLiveOutput(props.id, running);
  const o = op.data;
  const back = (
    <a
      href={href("/logs")}
      onClick={(e) => {
        e.preventDefault();
        // Back in history only to the Logs view this page was opened from: its filters (in the address) and where it
        // was scrolled come back. Opened from elsewhere (a key's or an application's page, a link, a bookmark), back
        // would go there, or out of the dashboard: then to Logs.
        if (openedFrom()?.path === "/logs") window.history.back();
        else navigate("/logs");
      }}
    >
      ← Back to Logs
    </a>
  );
  if (op.loading && !o) return <Loading />;
  if (!o) return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        {back}
      </nav>
      <div className="page-header">
        <div>
          <h1>Operation</h1>
          <p className="muted">
            <code>{props.id}</code>
          </p>
        </div>
      </div>
      <ErrorNote message={op.error ?? "Operation not found"} />
    </>
  );
  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        {back}
      </nav>
      {op.error ? (
        // The last refresh failed: what follows is as of the one before, not the operation now.
        <ErrorNote message={`Could not refresh this operation (${op.error}); what is shown below may be out of date.`} />
      ) : null}
      <div className="page-header">
        <div>
          <h1>
            {o.operation_type} on {o.server_name ?? o.server_id}
          </h1>
          <p className="muted">
            <code>{o.operation_id}</code>
          </p>
        </div>
        <StatusBadge status={o.status} />
      </div>
      <dl className="facts">
        <div>
          <dt>Status</dt>
          <dd data-testid="op-status">{o.status}</dd>
        </div>
        <div>
          <dt>Exit code</dt>
          <dd>{o.result?.exit_code ?? "—"}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{duration(o.result?.duration_ms)}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={o.created_at} />
          </dd>
        </div>
        {o.working_directory ? (
          <div>
            <dt>Working directory</dt>
            <dd>
              <code>{o.working_directory}</code>
            </dd>
          </div>
        ) : null}
        {o.env_keys.length ? (
          <div>
            <dt>Environment (names only)</dt>
            <dd>{o.env_keys.join(", ")}</dd>
          </div>
        ) : null}
        {o.automation_key_id ? (
          <div>
            <dt>Automation key</dt>
            <dd>
              <a
                href={href(`/logs?automation_key_id=${o.automation_key_id}`)}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/logs?automation_key_id=${o.automation_key_id}`);
                }}
              >
                other operations of this key
              </a>
            </dd>
          </div>
        ) : null}
        {o.run_id ? (
          <div className="fact-wide">
            <dt>Run</dt>
            <dd>
              <a
                href={href(`/logs?run_id=${encodeURIComponent(o.run_id)}`)}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/logs?run_id=${encodeURIComponent(o.run_id ?? "")}`);
                }}
              >
                <code>{o.run_id}</code>
              </a>
              {o.run_context?.repository ? ` · ${o.run_context.repository}` : ""}
              {o.run_context?.workflow ? ` · ${o.run_context.workflow}` : ""}
              {o.run_context?.actor ? ` · ${o.run_context.actor}` : ""}
              {o.run_context?.sha ? (
                <>
                  {" · "}
                  <CommitLink context={o.run_context} sha={o.run_context.sha} />
                </>
              ) : null}
            </dd>
          </div>
        ) : null}
      </dl>
      {o.command ? (
        <section className="output" aria-label="Command">
          <header className="output-header">
            <h2>Command</h2>
          </header>
          <pre className="output-text">{o.command}</pre>
        </section>
      ) : null}
      {o.error ? <ErrorNote message={o.error} /> : null}
      {running ? (
        <>
          <p className="muted" role="status">
            Running… output appears as the runner sends it.
          </p>
          <OutputBlock title="Stdout" text={live.stdout} live />
          <OutputBlock title="Stderr" text={live.stderr} live />
          {live.cutOff ? (
            <p className="hint" role="status" data-testid="live-cut-off">
              Live output stopped at its size limit; the end of each stream shows here when the operation ends. ({live.cutOff})
            </p>
          ) : null}
        </>
      ) : (
        <>
          <OutputBlock title="Stdout" text={o.result?.stdout ?? ""} truncated={o.result?.stdout_truncated} />
          <OutputBlock title="Stderr" text={o.result?.stderr ?? ""} truncated={o.result?.stderr_truncated} />
        </>
      )}
    </>
  );
}

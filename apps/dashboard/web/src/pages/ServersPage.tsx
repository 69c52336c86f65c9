import { type FormEvent, useState } from "react";
import { api } from "../api";
import { EmptyState, ErrorNote, Loading, PageHeader, Time } from "../components/bits";
import { CopyButton, OneTimeSecret } from "../components/CopyButton";
import { ConfirmDialog, Modal } from "../components/Modal";
import { RunnerState } from "../components/RunnerState";
import { useLoad, useSubmitOnce } from "../hooks";
import type { Page, Server } from "../types";

/**
 * The runner connects out to the dispatcher (port 8081 by default), assumed on
 * this dashboard's host. The token goes through stdin so it stays out of the
 * process list (deploy/runner/install.sh reads "-"); the pasted line itself
 * lands in the shell's history, which docs/operations.md says how to avoid.
 */
function installCommand(token: string): string {
  const host = window.location.hostname;
  const scheme = window.location.protocol === "https:" ? "https" : "http";
  return [
    "# On the server, next to install.sh and runbridge-runner.cjs (from deploy/runner/ and `pnpm build:runner`):",
    `echo '${token}' | sudo ./install.sh --url ${scheme}://${host}:8081 --token -`,
  ].join("\n");
}

/** A runner token as the API answers it once: at creation, or after a rotation. */
type ShownToken = { id: string; name: string; runner_token: string; rotated: boolean };

export function ServersPage() {
  const servers = useLoad(() => api.get<Page<Server>>("/api/v1/servers"), [], { ms: 10_000, while: () => true });
  const [adding, setAdding] = useState(false);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<ShownToken | null>(null);
  const [rotating, setRotating] = useState<Server | null>(null);
  const [deleting, setDeleting] = useState<Server | null>(null);

  const submitting = useSubmitOnce();
  const create = (e: FormEvent) => {
    e.preventDefault();
    void submitting.once(async () => {
      setError(null);
      try {
        const s = await api.post<Server & { runner_token: string }>("/api/v1/servers", { name: name.trim() });
        setAdding(false);
        setName("");
        setShown({ ...s, rotated: false });
        servers.reload();
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    });
  };
  // A refusal (404 for a server deleted meanwhile; 409 for a delete while one of its operations runs) throws: the dialog shows it and stays open.
  const rotate = async (s: Server) => {
    try {
      const r = await api.post<{ id: string; name: string; runner_token: string }>(`/api/v1/servers/${s.id}/runner-token`, {});
      setShown({ ...r, rotated: true });
    } finally {
      servers.reload();
    }
    setRotating(null);
  };
  const remove = async (s: Server) => {
    try {
      await api.del(`/api/v1/servers/${s.id}`);
    } finally {
      servers.reload();
    }
    setDeleting(null);
  };
  const addButton = (
    <button
      type="button"
      className="btn btn-primary"
      onClick={() => {
        // A reopened form starts without the last attempt's failure.
        setError(null);
        setAdding(true);
      }}
    >
      Add server
    </button>
  );
  const rows = servers.data?.data ?? [];
  return (
    <>
      <PageHeader title="Servers" description="Each server runs the runbridge runner, which connects out to the dispatcher: no inbound ports, no SSH." action={addButton} />
      <ErrorNote message={servers.error} />
      {servers.loading && !servers.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title="No servers yet" action={addButton}>
          Add a server to get its one-time runner token, then start the runner agent on that machine with the install command shown.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Servers</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Runner</th>
                <th scope="col">Last seen</th>
                <th scope="col">Server ID</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <tr key={s.id}>
                  <td data-label="Name">{s.name}</td>
                  <td data-label="Runner">
                    <RunnerState server={s} />
                  </td>
                  <td data-label="Last seen">
                    <Time iso={s.last_seen_at} />
                  </td>
                  <td data-label="Server ID">
                    <span className="id-cell">
                      <code>{s.id}</code> <CopyButton value={s.id} label="Copy ID" />
                    </span>
                  </td>
                  <td className="row-actions">
                    {/* Names start with the visible text (WCAG 2.5.3): speech input users say what they see. */}
                    <button type="button" className="btn btn-small" onClick={() => setRotating(s)} aria-label={`Rotate token of ${s.name}`}>
                      Rotate token
                    </button>
                    <button type="button" className="btn btn-small btn-danger" onClick={() => setDeleting(s)} aria-label={`Delete ${s.name}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {adding ? (
        <Modal title="Add server" onClose={() => setAdding(false)}>
          <form className="form" onSubmit={create}>
            <div className="field">
              <label htmlFor="server-name">Name</label>
              <input id="server-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} placeholder="web-1" data-autofocus />
            </div>
            <ErrorNote message={error} />
            <div className="actions">
              <button type="button" className="btn" onClick={() => setAdding(false)}>
                Cancel
              </button>
              <button type="submit" className="btn btn-primary" disabled={submitting.busy} aria-busy={submitting.busy}>
                Add server
              </button>
            </div>
          </form>
        </Modal>
      ) : null}
      {rotating ? (
        <ConfirmDialog
          title={`Rotate the runner token of ${rotating.name}?`}
          message={
            <p>
              A new token is made and shown once. The current one stops working at once: every runner connected with it is disconnected and stops until it is
              started again with the new token. Do this when the token may have leaked.
            </p>
          }
          confirmLabel="Rotate token"
          onConfirm={() => rotate(rotating)}
          onClose={() => setRotating(null)}
        />
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={`Delete server ${deleting.name}?`}
          message={
            <>
              <p>
                This deletes <strong>{deleting.name}</strong> from runbridge, and with it:
              </p>
              <ul>
                <li>its operation history, with the output of every operation;</li>
                <li>its applications and their deployment history.</li>
              </ul>
              <p>
                The audit trail keeps its events. The runner on the machine is disconnected and stops; uninstall it there (
                <code>systemctl disable --now runbridge-runner</code>, then remove <code>/etc/runbridge</code> and <code>/var/lib/runbridge</code>). Automation
                keys limited to this server can no longer start anything. This cannot be undone, and is refused while an operation is running on it.
              </p>
            </>
          }
          confirmLabel="Delete server"
          onConfirm={() => remove(deleting)}
          onClose={() => setDeleting(null)}
        />
      ) : null}
      {shown ? (
        <Modal title={shown.rotated ? `New runner token for ${shown.name}` : `Server ${shown.name} added`} onClose={() => setShown(null)} wide>
          <div className="stack">
            <OneTimeSecret label="Runner token" value={shown.runner_token} testId="runner-token" />
            <h3>{shown.rotated ? "Restart the runner with it" : "Install the runner"}</h3>
            <div className="secret-row">
              <pre className="output-text">{installCommand(shown.runner_token)}</pre>
              <CopyButton value={installCommand(shown.runner_token)} label="Copy command" />
            </div>
            <p className="muted">The server shows as connected here once its runner is up.</p>
            <div className="actions">
              <button type="button" className="btn btn-primary" onClick={() => setShown(null)}>
                Done
              </button>
            </div>
          </div>
        </Modal>
      ) : null}
    </>
  );
}

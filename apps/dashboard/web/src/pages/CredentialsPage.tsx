import { type FormEvent, useState } from "react";
import { api } from "../api";
import { EmptyState, ErrorNote, Loading, NotAvailable, PageHeader, Time } from "../components/bits";
import { CopyButton } from "../components/CopyButton";
import { ConfirmDialog, Modal } from "../components/Modal";
import { useLoad, useSubmitOnce } from "../hooks";
import type { Page, RegistryCredential } from "../types";

/** Registry credentials: the password is write-only (sent once, stored encrypted, never shown again). */
export function CredentialsPage() {
  const creds = useLoad(() => api.get<Page<RegistryCredential>>("/api/v1/registry-credentials"), []);
  const [adding, setAdding] = useState(false);
  const [deleting, setDeleting] = useState<RegistryCredential | null>(null);
  const [form, setForm] = useState({ name: "", registry_url: "", username: "", password: "" });
  const [error, setError] = useState<string | null>(null);
  // Before the early return below: the hooks a component calls must be the same on every render.
  const submitting = useSubmitOnce();

  if (creds.errorStatus === 404) {
    return (
      <>
        <PageHeader title="Registry credentials" />
        <NotAvailable what="Registry credentials" />
      </>
    );
  }
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const create = (e: FormEvent) => {
    e.preventDefault();
    void submitting.once(async () => {
      setError(null);
      try {
        // Trimmed (never the password), as the other forms do: a pasted host with a space after it was refused
        // as "not a registry host".
        await api.post("/api/v1/registry-credentials", { ...form, name: form.name.trim(), registry_url: form.registry_url.trim(), username: form.username.trim() });
        setForm({ name: "", registry_url: "", username: "", password: "" });
        setAdding(false);
        creds.reload();
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    });
  };
  const close = () => {
    // The typed password is dropped from memory as the form closes, and a reopened form starts without the last attempt's failure.
    setForm({ name: "", registry_url: "", username: "", password: "" });
    setError(null);
    setAdding(false);
  };
  const addButton = (
    <button type="button" className="btn btn-primary" onClick={() => setAdding(true)}>
      Add credential
    </button>
  );
  const rows = creds.data?.data ?? [];
  return (
    <>
      <PageHeader title="Registry credentials" description="Container registry logins that registry_login operations use on your servers. Passwords are encrypted at rest and never shown again." action={addButton} />
      <ErrorNote message={creds.error} />
      {creds.loading && !creds.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title="No registry credentials yet" action={addButton}>
          Add a registry login (for example ghcr.io with a token); CI can then log a server in with <code>POST /api/automation/v1/registry-auth/login</code> and its id.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Registry credentials</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Registry</th>
                <th scope="col">Username</th>
                <th scope="col">Password</th>
                <th scope="col">Created</th>
                <th scope="col">Credential ID</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <tr key={c.id}>
                  <td data-label="Name">{c.name}</td>
                  <td data-label="Registry">
                    <code>{c.registry_url}</code> {c.registry_type ? <span className="badge badge-muted">{c.registry_type}</span> : null}
                  </td>
                  <td data-label="Username">{c.username}</td>
                  <td data-label="Password">
                    {/* aria-label is not read on a plain span: the dots are hidden from screen readers, which read the words. */}
                    <span className="muted" aria-hidden="true">••••••••</span>
                    <span className="visually-hidden">not shown</span>
                  </td>
                  <td data-label="Created"><Time iso={c.created_at} /></td>
                  <td data-label="Credential ID">
                    <span className="id-cell"><code>{c.id.slice(0, 8)}</code> <CopyButton value={c.id} label="Copy ID" /></span>
                  </td>
                  <td className="row-actions">
                    <button type="button" className="btn btn-small btn-danger" onClick={() => setDeleting(c)} aria-label={`Delete ${c.name}`}>
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
        <Modal title="Add registry credential" onClose={close}>
          <form className="form" onSubmit={create}>
            <div className="field">
              <label htmlFor="cred-name">Name</label>
              <input id="cred-name" required value={form.name} onChange={set("name")} placeholder="ghcr-production" data-autofocus />
            </div>
            <div className="field">
              <label htmlFor="cred-url">Registry URL</label>
              <input id="cred-url" required value={form.registry_url} onChange={set("registry_url")} placeholder="ghcr.io" />
            </div>
            <div className="field">
              <label htmlFor="cred-user">Username</label>
              <input id="cred-user" required autoComplete="off" value={form.username} onChange={set("username")} />
            </div>
            <div className="field">
              <label htmlFor="cred-password">Password or token</label>
              <input id="cred-password" required type="password" autoComplete="new-password" value={form.password} onChange={set("password")} aria-describedby="cred-password-hint" />
              <p className="hint" id="cred-password-hint">
                Write-only: stored encrypted and never displayed again. To change it, delete the credential and add it again.
              </p>
            </div>
            <ErrorNote message={error} />
            <div className="actions">
              <button type="button" className="btn" onClick={close}>
                Cancel
              </button>
              <button type="submit" className="btn btn-primary" disabled={submitting.busy} aria-busy={submitting.busy}>
                Add credential
              </button>
            </div>
          </form>
        </Modal>
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={`Delete ${deleting.name}?`}
          message={<p>registry_login operations that use this credential will fail with 404. Servers already logged in stay logged in.</p>}
          confirmLabel="Delete credential"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            // A refusal throws: the confirmation shows it and stays open.
            try {
              await api.del(`/api/v1/registry-credentials/${deleting.id}`);
            } finally {
              creds.reload();
            }
            setDeleting(null);
          }}
        />
      ) : null}
    </>
  );
}

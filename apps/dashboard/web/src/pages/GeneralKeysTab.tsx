import { useState, type FormEvent } from "react";
import { api } from "../api";
import { EmptyState, ErrorNote, Loading, StatusBadge, Time } from "../components/bits";
import { OneTimeSecret } from "../components/CopyButton";
import { ConfirmDialog, Modal } from "../components/Modal";
import { useLoad, useSubmitOnce } from "../hooks";
import type { ApiKey, Page } from "../types";

/** General API keys (rbk_...): sign in here and call the management API. Created and revoked like automation keys. */
export function GeneralKeysTab() {
  const keys = useLoad(() => api.get<Page<ApiKey>>("/api/v1/api-keys"), []);
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<(ApiKey & { key: string }) | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  // The create form's failure (a 422, an unreachable gateway): shown in the form, which stays open with its input.
  const [error, setError] = useState<string | null>(null);
  const openForm = () => {
    setError(null);
    setCreating(true);
  };

  const submitting = useSubmitOnce();
  const create = (e: FormEvent) => {
    e.preventDefault();
    void submitting.once(async () => {
      setError(null);
      try {
        // Trimmed, as the other forms do: the API refuses a name with spaces around it rather than trim it.
        const k = await api.post<ApiKey & { key: string }>("/api/v1/api-keys", { name: name.trim() });
        setCreating(false);
        setName("");
        setError(null);
        setCreated(k);
        keys.reload();
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    });
  };
  // A refusal throws: the confirmation shows it and stays open.
  const revoke = async (k: ApiKey) => {
    try {
      await api.del(`/api/v1/api-keys/${k.id}`);
    } finally {
      keys.reload();
    }
    setRevoking(null);
  };

  if (keys.loading && !keys.data) return <Loading />;
  // Only when there is nothing else to show: a failed re-read (right after a create, say) must not take the
  // list — or the window with the new one-time key — away; it is shown above them instead.
  if (keys.error && !keys.data) return <ErrorNote message={keys.error} />;
  const rows = keys.data?.data ?? [];
  const createButton = (
    <button type="button" className="btn btn-primary" onClick={openForm}>
      Create API key
    </button>
  );
  return (
    <>
      <ErrorNote message={keys.error} />
      <div className="toolbar">
        <p className="muted">General keys sign in to this dashboard and call the management API. Give CI systems an automation key instead.</p>
        {createButton}
      </div>
      {rows.length === 0 ? (
        <EmptyState title="No general API keys" action={createButton}>
          Create one for each person or tool that manages runbridge.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">General API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((k) => (
                <tr key={k.id}>
                  <td data-label="Name">
                    {k.name} {k.current ? <span className="muted">(this session)</span> : null}
                  </td>
                  <td data-label="Prefix">
                    <code>{k.prefix}</code>
                  </td>
                  <td data-label="Created">
                    <Time iso={k.created_at} />
                  </td>
                  <td data-label="Last used">
                    <Time iso={k.last_used_at} />
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={k.revoked_at ? "revoked" : "active"} />
                  </td>
                  <td data-label="Actions">
                    <button type="button" className="btn btn-small btn-danger" onClick={() => setRevoking(k)} disabled={Boolean(k.revoked_at)} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating ? (
        <Modal title="Create API key" onClose={() => setCreating(false)}>
          <form className="form" onSubmit={create}>
            <div className="field">
              <label htmlFor="api-key-name">Name</label>
              <input id="api-key-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} placeholder="ops laptop" data-autofocus />
            </div>
            <ErrorNote message={error} />
            <div className="actions">
              <button type="button" className="btn" onClick={() => setCreating(false)}>
                Cancel
              </button>
              <button type="submit" className="btn btn-primary" disabled={submitting.busy} aria-busy={submitting.busy}>
                Create key
              </button>
            </div>
          </form>
        </Modal>
      ) : null}
      {created ? (
        <Modal title="API key created" onClose={() => setCreated(null)}>
          <OneTimeSecret label="New API key" value={created.key} testId="new-api-key" />
          <div className="actions">
            <button type="button" className="btn btn-primary" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </Modal>
      ) : null}
      {revoking ? (
        <ConfirmDialog
          title={`Revoke ${revoking.name}?`}
          message={
            <p>
              The management API will refuse this key at once (401){revoking.current ? ", and this dashboard session will end" : ""}. This cannot be undone.
            </p>
          }
          confirmLabel="Revoke key"
          onConfirm={() => revoke(revoking)}
          onClose={() => setRevoking(null)}
        />
      ) : null}
    </>
  );
}

import { useEffect, useState } from "react";
import { ApiError, api } from "../api";
import { EmptyState, ErrorNote, Loading, StatusBadge, Time } from "../components/bits";
import { OneTimeSecret } from "../components/CopyButton";
import { ConfirmDialog, Modal } from "../components/Modal";
import { deletedLabel } from "../format";
import { useLoad } from "../hooks";
import { href, navigate } from "../router";
import type { AutomationKey, Page, RegistryCredential, Server } from "../types";
import { KeyForm, type KeyFormValues } from "./KeyForm";

interface Choices {
  servers: Server[];
  credentials: RegistryCredential[];
  credentialsAvailable: boolean;
}

async function loadChoices(): Promise<Choices> {
  const servers = await api.get<Page<Server>>("/api/v1/servers");
  try {
    const creds = await api.get<Page<RegistryCredential>>("/api/v1/registry-credentials");
    return { servers: servers.data, credentials: creds.data, credentialsAvailable: true };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { servers: servers.data, credentials: [], credentialsAvailable: false };
    throw e;
  }
}

/** The ids the keys name that the loaded servers and credentials lack: deleted ones, or ones added since the lists were read. */
function unknownIds(keys: AutomationKey[], choices: Choices | null): string[] {
  if (!choices) return [];
  const known = new Set([...choices.servers, ...choices.credentials].map((x) => x.id));
  return [...new Set(keys.flatMap((k) => [...k.allowed_server_ids, ...k.allowed_credential_ids]))].filter((id) => !known.has(id)).sort();
}

function scopeSummary(k: AutomationKey, choices: Choices | null): string[] {
  // Until the lists are read, an id is shown short; once read, one that is not there was deleted.
  const name = (id: string, list: { id: string; name: string }[] | undefined, what: string) =>
    !list ? id.slice(0, 8) : (list.find((x) => x.id === id)?.name ?? deletedLabel(what, id));
  return [
    k.allowed_server_ids.length ? `Servers: ${k.allowed_server_ids.map((id) => name(id, choices?.servers, "server")).join(", ")}` : "All servers",
    k.allowed_operations.length ? `Operations: ${k.allowed_operations.join(", ")}` : "All operations",
    ...(k.allowed_credential_ids.length ? [`Credentials: ${k.allowed_credential_ids.map((id) => name(id, choices?.credentials, "registry credential")).join(", ")}`] : []),
    ...(k.ip_allowlist.length ? [`IPs: ${k.ip_allowlist.join(", ")}`] : []),
    `${k.rate_limit}/min`,
    ...(k.expires_at ? [`Expires ${new Date(k.expires_at).toLocaleDateString()}`] : []),
  ];
}

export function AutomationKeysTab() {
  // Refreshed every few seconds, so last-used times and operation counts follow CI activity.
  const keys = useLoad(() => api.get<Page<AutomationKey>>("/api/v1/automation-keys"), [], { ms: 5000, while: () => true });
  const choices = useLoad(loadChoices, []);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<AutomationKey | null>(null);
  const [revoking, setRevoking] = useState<AutomationKey | null>(null);
  const [created, setCreated] = useState<(AutomationKey & { key: string }) | null>(null);
  const rows = keys.data?.data ?? [];
  // A key may name a server or credential added after the lists were read (elsewhere): re-read them once per new set of
  // unknown ids, so only a really deleted one is shown as deleted.
  const unknown = unknownIds(rows, choices.data).join(",");
  const reloadChoices = choices.reload;
  useEffect(() => {
    if (unknown) reloadChoices();
  }, [unknown, reloadChoices]);

  // The forms list the servers and credentials to scope a key to: re-read them on opening, so ones added since the tab
  // was opened (on the Servers page, or in another tab) can be chosen without a reload.
  const openCreate = () => {
    reloadChoices();
    setCreating(true);
  };
  const openEdit = (k: AutomationKey) => {
    reloadChoices();
    setEditing(k);
  };

  const create = async (v: KeyFormValues) => {
    const k = await api.post<AutomationKey & { key: string }>("/api/v1/automation-keys", v);
    setCreating(false);
    setCreated(k);
    keys.reload();
  };
  const update = async (id: string, v: KeyFormValues) => {
    await api.patch(`/api/v1/automation-keys/${id}`, v);
    setEditing(null);
    keys.reload();
  };
  // A refusal throws: the confirmation shows it and stays open.
  const revoke = async (k: AutomationKey) => {
    try {
      await api.del(`/api/v1/automation-keys/${k.id}`);
    } finally {
      keys.reload();
    }
    setRevoking(null);
  };

  const createButton = (
    <button type="button" className="btn btn-primary" onClick={openCreate}>
      Create Key
    </button>
  );
  return (
    <>
      <div className="toolbar">
        <p className="muted">Give each CI pipeline its own key, scoped to the servers and operations it needs.</p>
        {createButton}
      </div>
      <ErrorNote message={keys.error} />
      {keys.loading && !keys.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title="No automation keys yet" action={createButton}>
          Create a key, store it as a secret in your CI system (for example <code>RUNBRIDGE_API_KEY</code>), and call the Automation API with{" "}
          <code>Authorization: Bearer rca_…</code>.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="keys-table">
            <caption className="visually-hidden">Automation keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">Operations</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((k) => (
                <tr key={k.id} data-key-id={k.id}>
                  <td data-label="Name">{k.name}</td>
                  <td data-label="Prefix">
                    <code>{k.prefix}</code>
                  </td>
                  <td data-label="Scopes">
                    <ul className="chips">
                      {scopeSummary(k, choices.data).map((s) => (
                        <li key={s}>{s}</li>
                      ))}
                    </ul>
                  </td>
                  <td data-label="Last used">
                    <Time iso={k.last_used_at} />
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={k.status} />
                  </td>
                  <td data-label="Operations">
                    <a
                      className="op-count"
                      href={href(`/logs?automation_key_id=${k.id}`)}
                      aria-label={`${k.operation_count ?? 0} operations of key ${k.name}: open in Logs`}
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(`/logs?automation_key_id=${k.id}`);
                      }}
                    >
                      {k.operation_count ?? 0}
                    </a>
                  </td>
                  <td className="row-actions">
                    <button type="button" className="btn btn-small" onClick={() => openEdit(k)} disabled={k.status === "revoked"} aria-label={`Edit ${k.name}`}>
                      Edit
                    </button>
                    <button type="button" className="btn btn-small btn-danger" onClick={() => setRevoking(k)} disabled={k.status === "revoked"} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {creating && choices.data ? (
        <Modal title="Create automation key" onClose={() => setCreating(false)} wide>
          <KeyForm servers={choices.data.servers} credentials={choices.data.credentials} credentialsAvailable={choices.data.credentialsAvailable} submitLabel="Create key" onSubmit={create} onCancel={() => setCreating(false)} />
        </Modal>
      ) : null}
      {creating && choices.error ? (
        <Modal title="Create automation key" onClose={() => setCreating(false)}>
          <ErrorNote message={choices.error} />
        </Modal>
      ) : null}
      {editing && choices.error && !choices.data ? (
        // As for Create: without the lists of servers and credentials there is no form to show, but the reason.
        <Modal title={`Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <ErrorNote message={choices.error} />
        </Modal>
      ) : null}
      {editing && choices.data ? (
        <Modal title={`Edit ${editing.name}`} onClose={() => setEditing(null)} wide>
          <KeyForm
            initial={editing}
            servers={choices.data.servers}
            credentials={choices.data.credentials}
            credentialsAvailable={choices.data.credentialsAvailable}
            submitLabel="Save changes"
            onSubmit={(v) => update(editing.id, v)}
            onCancel={() => setEditing(null)}
          />
        </Modal>
      ) : null}
      {created ? (
        <Modal title="Automation key created" onClose={() => setCreated(null)}>
          <div className="stack">
            <p>
              Key <strong>{created.name}</strong> is ready. Store it in your CI system's secrets.
            </p>
            <OneTimeSecret label="New automation key" value={created.key} testId="new-key" />
            <div className="actions">
              <button type="button" className="btn btn-primary" onClick={() => setCreated(null)}>
                I have copied the key
              </button>
            </div>
          </div>
        </Modal>
      ) : null}
      {revoking ? (
        <ConfirmDialog
          title={`Revoke ${revoking.name}?`}
          message={
            <p>
              Requests with this key will be refused at once (401), including from CI pipelines that still use it. This cannot be undone.
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

import { type FormEvent, useId, useState } from "react";
import { ErrorNote } from "../components/bits";
import { deletedLabel } from "../format";
import { useSubmitOnce } from "../hooks";
import { OPERATION_TYPES, type AutomationKey, type OperationType, type RegistryCredential, type Server } from "../types";

export interface KeyFormValues {
  name: string;
  allowed_server_ids: string[];
  allowed_operations: OperationType[];
  allowed_credential_ids: string[];
  ip_allowlist: string[];
  rate_limit: number;
  expires_at?: string | null;
}

const OPERATION_LABELS: Record<OperationType, string> = {
  exec: "exec — run a command",
  deploy: "deploy — deploy an application",
  restart: "restart — restart a container",
  reboot: "reboot — reboot the server",
  registry_login: "registry_login — log in to a registry",
  registry_logout: "registry_logout — log out of a registry",
};

/** datetime-local wants local "YYYY-MM-DDTHH:mm". */
function toLocalInput(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function toggle<T>(list: T[], item: T, on: boolean): T[] {
  return on ? [...list, item] : list.filter((x) => x !== item);
}

/**
 * Checkboxes for the ids a key already holds whose server or credential was deleted: shown (checked) so saving keeps
 * them, and the user can uncheck one to drop it. Dropping them silently could turn a list of one into an empty list,
 * which allows everything.
 */
function DeletedChoices(props: { what: string; ids: string[]; selected: string[]; onChange: (ids: string[]) => void }) {
  return (
    <>
      {props.ids.map((id) => (
        <label key={id} className="check" title={id}>
          <input type="checkbox" checked={props.selected.includes(id)} onChange={(e) => props.onChange(toggle(props.selected, id, e.target.checked))} />
          <span className="muted">{deletedLabel(props.what, id)}</span>
        </label>
      ))}
    </>
  );
}

/** Every scope of an automation key. Empty lists mean "all", as in the API. */
export function KeyForm(props: {
  initial?: AutomationKey;
  servers: Server[];
  credentials: RegistryCredential[];
  credentialsAvailable: boolean;
  submitLabel: string;
  onSubmit: (v: KeyFormValues) => Promise<void>;
  onCancel: () => void;
}) {
  const i = props.initial;
  const id = useId();
  const [name, setName] = useState(i?.name ?? "");
  const [servers, setServers] = useState<string[]>(i?.allowed_server_ids ?? []);
  const [operations, setOperations] = useState<OperationType[]>(i?.allowed_operations ?? []);
  const [credentials, setCredentials] = useState<string[]>(i?.allowed_credential_ids ?? []);
  const [ips, setIps] = useState((i?.ip_allowlist ?? []).join("\n"));
  const [rateLimit, setRateLimit] = useState(String(i?.rate_limit ?? 100));
  const [expires, setExpires] = useState(toLocalInput(i?.expires_at));
  const [error, setError] = useState<string | null>(null);
  const submitting = useSubmitOnce();
  const goneServers = (i?.allowed_server_ids ?? []).filter((sid) => !props.servers.some((s) => s.id === sid));
  const goneCredentials = (i?.allowed_credential_ids ?? []).filter((cid) => !props.credentials.some((c) => c.id === cid));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void submitting.once(() => save());
  };
  const save = async () => {
    setError(null);
    const values: KeyFormValues = {
      name: name.trim(),
      allowed_server_ids: servers,
      allowed_operations: operations,
      allowed_credential_ids: credentials,
      ip_allowlist: ips
        .split(/[\s,]+/)
        .map((s) => s.trim())
        .filter(Boolean),
      rate_limit: Number(rateLimit),
    };
    const expiresIso = expires ? new Date(expires).toISOString() : null;
    // On edit, send the expiry only when it changed (an unchanged past expiry would be refused).
    if (!i || toLocalInput(i.expires_at) !== expires) values.expires_at = expiresIso;
    try {
      await props.onSubmit(values);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <form className="form" onSubmit={submit}>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input id={`${id}-name`} required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} placeholder="github-deploy-production" data-autofocus />
      </div>

      <fieldset className="field">
        <legend>Servers</legend>
        <p className="hint">Leave all unchecked to allow every server (including ones added later).</p>
        {props.servers.length === 0 && goneServers.length === 0 ? (
          <p className="hint">No servers yet: the key will allow every server you add.</p>
        ) : (
          <div className="check-grid">
            {props.servers.map((s) => (
              <label key={s.id} className="check">
                <input type="checkbox" checked={servers.includes(s.id)} onChange={(e) => setServers(toggle(servers, s.id, e.target.checked))} />
                {s.name}
              </label>
            ))}
            <DeletedChoices what="server" ids={goneServers} selected={servers} onChange={setServers} />
          </div>
        )}
      </fieldset>

      <fieldset className="field">
        <legend>Operations</legend>
        <p className="hint">Leave all unchecked to allow every operation.</p>
        <div className="check-grid">
          {OPERATION_TYPES.map((op) => (
            <label key={op} className="check">
              <input type="checkbox" name="operation" value={op} checked={operations.includes(op)} onChange={(e) => setOperations(toggle(operations, op, e.target.checked))} />
              {OPERATION_LABELS[op]}
            </label>
          ))}
        </div>
      </fieldset>

      <fieldset className="field">
        <legend>Registry credentials</legend>
        <p className="hint">Which credentials registry_login may use. Leave all unchecked to allow every credential.</p>
        {!props.credentialsAvailable ? (
          <p className="hint">This gateway does not serve registry credentials yet.</p>
        ) : props.credentials.length === 0 && goneCredentials.length === 0 ? (
          <p className="hint">No registry credentials yet (add them under Registry credentials).</p>
        ) : (
          <div className="check-grid">
            {props.credentials.map((c) => (
              <label key={c.id} className="check">
                <input type="checkbox" checked={credentials.includes(c.id)} onChange={(e) => setCredentials(toggle(credentials, c.id, e.target.checked))} />
                {c.name} <span className="muted">({c.registry_url})</span>
              </label>
            ))}
            <DeletedChoices what="registry credential" ids={goneCredentials} selected={credentials} onChange={setCredentials} />
          </div>
        )}
      </fieldset>

      <div className="field">
        <label htmlFor={`${id}-ips`}>IP allowlist</label>
        <textarea id={`${id}-ips`} rows={3} value={ips} onChange={(e) => setIps(e.target.value)} placeholder={"203.0.113.7\n198.51.100.0/24"} aria-describedby={`${id}-ips-hint`} />
        <p className="hint" id={`${id}-ips-hint`}>
          IP addresses or CIDR ranges, one per line. Empty allows requests from anywhere.
        </p>
      </div>

      <div className="field-row">
        <div className="field">
          <label htmlFor={`${id}-rate`}>Rate limit (requests per minute)</label>
          <input id={`${id}-rate`} type="number" min={1} max={1000} required value={rateLimit} onChange={(e) => setRateLimit(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-expires`}>Expires</label>
          <input id={`${id}-expires`} type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} aria-describedby={`${id}-expires-hint`} />
          <p className="hint" id={`${id}-expires-hint`}>
            Optional. Empty means the key does not expire.
          </p>
        </div>
      </div>

      <ErrorNote message={error} />
      <div className="actions">
        <button type="button" className="btn" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={submitting.busy} aria-busy={submitting.busy}>
          {submitting.busy ? "Saving…" : props.submitLabel}
        </button>
      </div>
    </form>
  );
}

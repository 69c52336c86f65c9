import { type FormEvent, useId, useState } from "react";
import { api, request } from "../api";
import { EmptyState, ErrorNote, Loading, NotAvailable, PageHeader, StatusBadge, Time } from "../components/bits";
import { CopyButton } from "../components/CopyButton";
import { ConfirmDialog, Modal } from "../components/Modal";
import { useLoad, useSubmitOnce } from "../hooks";
import { href, navigate } from "../router";
import { deployCurl } from "../shell";
import type { Application, Page, Server } from "../types";

type AppInput = Omit<Application, "id" | "created_at">;
type AppText = Omit<AppInput, "allowed_env_overrides">;

/** How the table shows allowed_env_overrides: null is the default rules, [] takes no overrides. */
function envOverridesSummary(allowed: string[] | null): string {
  if (allowed === null) return "default rules";
  return allowed.length === 0 ? "none" : allowed.join(", ");
}

function AppForm(props: { initial?: Application; servers: Server[]; submitLabel: string; onSubmit: (v: AppInput) => Promise<void>; onCancel: () => void }) {
  const i = props.initial;
  const [v, setV] = useState<AppText>({
    name: i?.name ?? "",
    server_id: i?.server_id ?? props.servers[0]?.id ?? "",
    working_directory: i?.working_directory ?? "",
    deploy_branch: i?.deploy_branch ?? "main",
    deploy_command: i?.deploy_command ?? "",
  });
  const [restrictEnv, setRestrictEnv] = useState(Boolean(i?.allowed_env_overrides));
  const [allowedEnv, setAllowedEnv] = useState((i?.allowed_env_overrides ?? []).join("\n"));
  const [error, setError] = useState<string | null>(null);
  const set = (k: keyof AppText) => (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value });
  const submitting = useSubmitOnce();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void submitting.once(async () => {
      setError(null);
      try {
        // The name trimmed, as the other forms do: the API refuses one with spaces around it rather than trim it.
        await props.onSubmit({ ...v, name: v.name.trim(), allowed_env_overrides: restrictEnv ? allowedEnv.split(/[\s,]+/).filter(Boolean) : null });
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    });
  };
  return (
    <form className="form" onSubmit={submit}>
      <div className="field">
        <label htmlFor="app-name">Name</label>
        <input id="app-name" required value={v.name} onChange={set("name")} placeholder="shop-frontend" data-autofocus />
      </div>
      <div className="field">
        <label htmlFor="app-server">Server</label>
        <select id="app-server" required value={v.server_id} onChange={set("server_id")}>
          {props.servers.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="app-dir">Working directory</label>
        <input id="app-dir" required value={v.working_directory} onChange={set("working_directory")} placeholder="/srv/shop" />
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="app-branch">Deploy branch</label>
          <input id="app-branch" required value={v.deploy_branch} onChange={set("deploy_branch")} />
        </div>
      </div>
      <div className="field">
        <label htmlFor="app-command">Deploy command</label>
        <textarea id="app-command" required rows={3} value={v.deploy_command} onChange={set("deploy_command")} placeholder="git pull && docker compose up -d --build" />
      </div>
      <fieldset className="field">
        <legend>Env overrides a deploy may pass</legend>
        <p className="hint">
          A deploy key may only start this deploy command, but its env_overrides reach the programs that command runs. By default any name is accepted except a
          deny list of names known to make the usual programs run or load something (PATH, LD_*, GIT_*, NODE_OPTIONS…); other tools may read other
          names. Listing the names (Only these names) is the only guarantee: use it when the deploy key goes to CI.
        </p>
        <div className="check-grid">
          <label className="check">
            <input type="radio" name="app-env-mode" checked={!restrictEnv} onChange={() => setRestrictEnv(false)} />
            Any name except the refused ones
          </label>
          <label className="check">
            <input type="radio" name="app-env-mode" checked={restrictEnv} onChange={() => setRestrictEnv(true)} />
            Only these names
          </label>
        </div>
        {restrictEnv ? (
          <>
            <label htmlFor="app-env-allowed" className="visually-hidden">
              Allowed env override names
            </label>
            <textarea id="app-env-allowed" rows={3} value={allowedEnv} onChange={(e) => setAllowedEnv(e.target.value)} placeholder={"LOG_LEVEL\nFEATURE_*"} aria-describedby="app-env-allowed-hint" />
            <p className="hint" id="app-env-allowed-hint">
              One per line; NAME_* allows a prefix. Empty: no overrides at all. A refused name is allowed only by its exact name.
            </p>
          </>
        ) : null}
      </fieldset>
      <ErrorNote message={error} />
      <div className="actions">
        <button type="button" className="btn" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={submitting.busy} aria-busy={submitting.busy}>
          {props.submitLabel}
        </button>
      </div>
    </form>
  );
}

/**
 * Deploys go through the Automation API, so they are scoped, rate-limited and
 * audited like a CI deploy: the user pastes an automation key allowed to
 * deploy; it is used for this one request and never stored.
 */
function DeployDialog(props: { app: Application; onClose: () => void }) {
  const [ref, setRef] = useState(props.app.deploy_branch);
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const deploying = useSubmitOnce();
  const snippet = deployCurl(window.location.origin, props.app.id, ref);
  const deploy = (e: FormEvent) => {
    e.preventDefault();
    void deploying.once(async () => {
      setError(null);
      try {
        const r = await request<{ operation_id: string }>("POST", "/api/automation/v1/deploy", { application_id: props.app.id, commit_ref: ref.trim() || undefined }, { Authorization: `Bearer ${key.trim()}` });
        setKey("");
        navigate(`/operations/${r.operation_id}`);
      } catch (err) {
        setError(err instanceof Error ? err.message : String(err));
      }
    });
  };
  return (
    <Modal title={`Deploy ${props.app.name}`} onClose={props.onClose} wide>
      <form className="form" onSubmit={deploy}>
        <div className="field">
          <label htmlFor="deploy-ref">Commit, branch or tag</label>
          <input id="deploy-ref" value={ref} onChange={(e) => setRef(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="deploy-key">Automation key allowed to deploy</label>
          <input id="deploy-key" type="password" autoComplete="off" required value={key} onChange={(e) => setKey(e.target.value)} placeholder="rca_…" aria-describedby="deploy-key-hint" />
          <p className="hint" id="deploy-key-hint">
            Used for this request only and not stored. Deploys are recorded in Logs under that key.
          </p>
        </div>
        <ErrorNote message={error} />
        <div className="actions">
          <button type="button" className="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={deploying.busy} aria-busy={deploying.busy}>
            {deploying.busy ? "Starting…" : "Deploy"}
          </button>
        </div>
        <h3>From CI</h3>
        <div className="secret-row">
          <pre className="output-text">{snippet}</pre>
          <CopyButton value={snippet} />
        </div>
      </form>
    </Modal>
  );
}

interface Deployment {
  id: string;
  operation_id: string;
  commit_ref: string;
  status: string;
  exit_code: number | null;
  created_at: string;
}

/** The application's deployments, newest first, each linking to its operation's output. */
function HistoryDialog(props: { app: Application; onClose: () => void }) {
  const list = useLoad(() => api.get<Page<Deployment>>(`/api/v1/applications/${props.app.id}/deployments`), [props.app.id]);
  const rows = list.data?.data ?? [];
  return (
    <Modal title={`Deployments of ${props.app.name}`} onClose={props.onClose} wide>
      <ErrorNote message={list.error} />
      {list.loading && !list.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title="Not deployed yet">Use the Deploy button, or call POST /api/automation/v1/deploy from CI.</EmptyState>
      ) : (
        <ul className="op-list">
          {rows.map((d) => (
            <li key={d.id} className="op-row">
              <StatusBadge status={d.status} />
              <a
                className="op-main"
                href={href(`/operations/${d.operation_id}`)}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/operations/${d.operation_id}`);
                }}
              >
                <span className="op-type">deploy</span> <code className="op-command">{d.commit_ref}</code>
              </a>
              <span className="op-meta">
                {d.exit_code !== null ? <span>exit {d.exit_code}</span> : null}
                <Time iso={d.created_at} />
              </span>
            </li>
          ))}
        </ul>
      )}
    </Modal>
  );
}

/**
 * Add application with no server to add it on: says so, and where to add one, rather than a form whose Server list
 * is empty.
 */
function NoServersDialog(props: { onClose: () => void }) {
  const textId = useId();
  return (
    <Modal title="Add application" onClose={props.onClose} describedBy={textId}>
      <div className="stack">
        <p id={textId}>
          There are no servers yet, and an application is deployed on one. Add a server first on the{" "}
          <a href={href("/servers")} onClick={(e) => { e.preventDefault(); navigate("/servers"); }}>
            Servers
          </a>{" "}
          page.
        </p>
        <div className="actions">
          <button type="button" className="btn btn-primary" data-autofocus onClick={props.onClose}>
            OK
          </button>
        </div>
      </div>
    </Modal>
  );
}

/** What the Add dialog offers: the servers as read when it was opened, or why they could not be read. */
type AddChoices = { servers: Server[] } | { error: string };

export function ApplicationsPage() {
  const apps = useLoad(() => api.get<Page<Application>>("/api/v1/applications"), []);
  // Re-read every 5 s while there is none: the empty state's "add a server first" would otherwise stand after one
  // was added in another tab or through the API, until Add is pressed.
  const servers = useLoad(() => api.get<Page<Server>>("/api/v1/servers"), [], { ms: 5000, while: (d) => d.data.length === 0 });
  const [creating, setCreating] = useState<AddChoices | null>(null);
  const opening = useSubmitOnce();
  const [editing, setEditing] = useState<Application | null>(null);
  const [deleting, setDeleting] = useState<Application | null>(null);
  const [deploying, setDeploying] = useState<Application | null>(null);
  const [history, setHistory] = useState<Application | null>(null);
  const serverList = servers.data?.data ?? [];
  const serverName = (id: string) => serverList.find((s) => s.id === id)?.name ?? id.slice(0, 8);

  if (apps.errorStatus === 404) {
    return (
      <>
        <PageHeader title="Applications" />
        <NotAvailable what="Applications" />
      </>
    );
  }
  // The forms list the servers to choose from: re-read them on opening, so servers added since the page was opened (in
  // another tab, or through the API) can be chosen without a reload. Add waits for them: whether there is any to add
  // an application on is only known from a fresh list (the button is never disabled on the strength of an old one).
  const openCreate = () =>
    void opening.once(async () => {
      try {
        setCreating({ servers: (await api.get<Page<Server>>("/api/v1/servers")).data });
      } catch (err) {
        setCreating({ error: err instanceof Error ? err.message : String(err) });
      }
      servers.reload();
    });
  const openEdit = (a: Application) => {
    servers.reload();
    setEditing(a);
  };
  const addButton = (
    // Busy, not disabled, while the servers are read: a disabled button would drop the focus the dialog gives back.
    <button type="button" className="btn btn-primary" onClick={openCreate} aria-busy={opening.busy}>
      Add application
    </button>
  );
  const rows = apps.data?.data ?? [];
  return (
    <>
      <PageHeader title="Applications" description="An application is a deploy command run in a directory on a server; CI deploys it by id." action={addButton} />
      <ErrorNote message={apps.error} />
      {apps.loading && !apps.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <EmptyState title="No applications yet" action={serverList.length ? addButton : undefined}>
          {serverList.length ? (
            "Add an application with its server, working directory, branch and deploy command; then deploy it from here or from CI."
          ) : (
            <>
              Add a server first (on the{" "}
              <a href={href("/servers")} onClick={(e) => { e.preventDefault(); navigate("/servers"); }}>
                Servers
              </a>{" "}
              page), then add an application on it.
            </>
          )}
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Applications</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Server</th>
                <th scope="col">Directory</th>
                <th scope="col">Branch</th>
                <th scope="col">Deploy command</th>
                <th scope="col">Env overrides</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((a) => (
                <tr key={a.id}>
                  <td data-label="Name">{a.name}</td>
                  <td data-label="Server">{serverName(a.server_id)}</td>
                  <td data-label="Directory"><code>{a.working_directory}</code></td>
                  <td data-label="Branch"><code>{a.deploy_branch}</code></td>
                  <td data-label="Deploy command"><code className="clip">{a.deploy_command}</code></td>
                  <td data-label="Env overrides">{envOverridesSummary(a.allowed_env_overrides)}</td>
                  <td className="row-actions">
                    <button type="button" className="btn btn-small btn-primary" onClick={() => setDeploying(a)} aria-label={`Deploy ${a.name}`}>
                      Deploy
                    </button>
                    {/* Starts with the visible text (WCAG 2.5.3): speech input users say what they see. */}
                    <button type="button" className="btn btn-small" onClick={() => setHistory(a)} aria-label={`History: deployments of ${a.name}`}>
                      History
                    </button>
                    <button type="button" className="btn btn-small" onClick={() => openEdit(a)} aria-label={`Edit ${a.name}`}>
                      Edit
                    </button>
                    <button type="button" className="btn btn-small btn-danger" onClick={() => setDeleting(a)} aria-label={`Delete ${a.name}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && "error" in creating ? (
        <Modal title="Add application" onClose={() => setCreating(null)}>
          <ErrorNote message={`Could not read the servers to add an application on: ${creating.error}`} />
        </Modal>
      ) : null}
      {creating && "servers" in creating && creating.servers.length === 0 ? <NoServersDialog onClose={() => setCreating(null)} /> : null}
      {creating && "servers" in creating && creating.servers.length > 0 ? (
        <Modal title="Add application" onClose={() => setCreating(null)} wide>
          <AppForm
            servers={creating.servers}
            submitLabel="Add application"
            onCancel={() => setCreating(null)}
            onSubmit={async (v) => {
              await api.post("/api/v1/applications", v);
              setCreating(null);
              apps.reload();
            }}
          />
        </Modal>
      ) : null}
      {editing ? (
        <Modal title={`Edit ${editing.name}`} onClose={() => setEditing(null)} wide>
          <AppForm
            initial={editing}
            servers={serverList}
            submitLabel="Save changes"
            onCancel={() => setEditing(null)}
            onSubmit={async (v) => {
              await api.patch(`/api/v1/applications/${editing.id}`, v);
              setEditing(null);
              apps.reload();
            }}
          />
        </Modal>
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={`Delete ${deleting.name}?`}
          message={<p>Its deployment history is deleted with it. CI pipelines deploying it by id will get 404.</p>}
          confirmLabel="Delete application"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            // A refusal throws: the confirmation shows it and stays open.
            try {
              await api.del(`/api/v1/applications/${deleting.id}`);
            } finally {
              apps.reload();
            }
            setDeleting(null);
          }}
        />
      ) : null}
      {deploying ? <DeployDialog app={deploying} onClose={() => setDeploying(null)} /> : null}
      {history ? <HistoryDialog app={history} onClose={() => setHistory(null)} /> : null}
    </>
  );
}

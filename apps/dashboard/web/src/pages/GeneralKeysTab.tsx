import { api } from "../api";
import { EmptyState, ErrorNote, Loading, StatusBadge, Time } from "../components/bits";
import { useLoad } from "../hooks";
import type { ApiKey, Page } from "../types";

/** General API keys (rbk_...). Listed when the gateway serves /api/v1/api-keys; otherwise explains how to make them. */
export function GeneralKeysTab() {
  const keys = useLoad(() => api.get<Page<ApiKey>>("/api/v1/api-keys"), []);
  if (keys.loading && !keys.data) return <Loading />;
  if (keys.errorStatus === 404 || keys.errorStatus === 405) {
    return (
      <EmptyState title="General API keys are managed from the command line">
        Create one with <code>pnpm runbridge bootstrap --tenant NAME</code> on the server running runbridge. A general key signs in to this
        dashboard and calls the management API; give CI systems an automation key instead (see the Automation Keys tab).
      </EmptyState>
    );
  }
  if (keys.error) return <ErrorNote message={keys.error} />;
  const rows = keys.data?.data ?? [];
  if (rows.length === 0) return <EmptyState title="No general API keys">Create one with <code>pnpm runbridge bootstrap</code>.</EmptyState>;
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">General API keys</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Last used</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((k) => (
            <tr key={k.id}>
              <td data-label="Name">{k.name}</td>
              <td data-label="Prefix"><code>{k.prefix}</code></td>
              <td data-label="Last used"><Time iso={k.last_used_at} /></td>
              <td data-label="Status"><StatusBadge status={k.revoked_at ? "revoked" : "active"} /></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

import { createAutomationKey, createServer } from "../helpers/factories";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * A server or registry credential can be deleted while an automation key still
 * names it (the API keeps the id: a list of one must not become "all"). The
 * Automation Keys tab says it was deleted, and its edit form keeps the id on
 * save unless the user unchecks it.
 */
describe("dashboard: automation key scopes naming a deleted server or credential", () => {
  const s = useSignedInStack();

  const bearer = () => ({ Authorization: `Bearer ${s.apiKey}` });
  const scopesOf = async (id: string) => {
    const r = await s.stack.api().get(`/api/v1/automation-keys/${id}`).set(bearer());
    expect(r.status).toBe(200);
    return r.body as { allowed_server_ids: string[]; allowed_credential_ids: string[] };
  };

  it("shows them as deleted, keeps them on save, and drops one only when unchecked", async () => {
    const gone = (await createServer(s.tenantId, "web-gone")).server;
    const kept = (await createServer(s.tenantId, "web-kept")).server;
    const cred = await s.stack.api().post("/api/v1/registry-credentials").set(bearer()).send({ name: "ghcr-gone", registry_url: "ghcr.io", username: "bot", password: "pw" });
    expect(cred.status).toBe(201);
    const credId = (cred.body as { id: string }).id;
    const { key } = await createAutomationKey(s.tenantId, { allowedServerIds: [gone.id], allowedCredentialIds: [credId] });
    expect((await s.stack.api().delete(`/api/v1/servers/${gone.id}`).set(bearer())).status).toBe(204);
    expect((await s.stack.api().delete(`/api/v1/registry-credentials/${credId}`).set(bearer())).status).toBe(204);
    const goneServer = `deleted server (${gone.id.slice(0, 8)}…)`;
    const goneCred = `deleted registry credential (${credId.slice(0, 8)}…)`;

    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=automation`);
    const row = s.page.locator("tbody tr", { hasText: key.name });
    await waitForText(row, new RegExp(`Servers: ${escape(goneServer)}`));
    await waitForText(row, new RegExp(`Credentials: ${escape(goneCred)}`));

    // Saved unchanged: both ids stay.
    await s.page.getByRole("button", { name: `Edit ${key.name}` }).click();
    const edit = s.page.getByRole("dialog", { name: `Edit ${key.name}` });
    expect(await edit.getByRole("checkbox", { name: goneServer }).isChecked()).toBe(true);
    expect(await edit.getByRole("checkbox", { name: goneCred }).isChecked()).toBe(true);
    expect(await edit.getByRole("checkbox", { name: "web-kept" }).isChecked()).toBe(false);
    await edit.getByLabel("Rate limit (requests per minute)").fill("42");
    await edit.getByRole("button", { name: "Save changes" }).click();
    await edit.waitFor({ state: "detached" });
    expect(await scopesOf(key.id)).toMatchObject({ allowed_server_ids: [gone.id], allowed_credential_ids: [credId], rate_limit: 42 });

    // Unchecked, the deleted server goes; the credential nobody touched stays.
    await s.page.getByRole("button", { name: `Edit ${key.name}` }).click();
    await edit.getByRole("checkbox", { name: goneServer }).uncheck();
    await edit.getByRole("checkbox", { name: "web-kept" }).check();
    await edit.getByRole("button", { name: "Save changes" }).click();
    await edit.waitFor({ state: "detached" });
    expect(await scopesOf(key.id)).toMatchObject({ allowed_server_ids: [kept.id], allowed_credential_ids: [credId] });
    await waitForText(row, /Servers: web-kept(?!,)/);

    // A server added after the tab read its lists is named, not taken for a deleted one.
    const added = (await createServer(s.tenantId, "web-new")).server;
    expect((await s.stack.api().patch(`/api/v1/automation-keys/${key.id}`).set(bearer()).send({ allowed_server_ids: [kept.id, added.id] })).status).toBe(200);
    await waitForText(row, /Servers: web-kept, web-new/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

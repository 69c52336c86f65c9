import { createServer, createTenant } from "../helpers/factories";
import { signIn, useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * Forms that offer servers (and registry credentials) to choose from re-read
 * them each time they open: one added after the page was opened — in another
 * tab, on the Servers page of another session, through the API — can be
 * chosen without reloading the dashboard.
 */
describe("dashboard: forms offer servers added since the page was opened", () => {
  const s = useSignedInStack();

  it("automation key Create and Edit", async () => {
    await createServer(s.tenantId, "web-early");
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=automation`);
    await s.page.getByText("No automation keys yet").waitFor();
    // The form has read its lists once already.
    await s.page.getByRole("button", { name: "Create Key" }).first().click();
    const create = s.page.getByRole("dialog", { name: "Create automation key" });
    await create.getByRole("checkbox", { name: "web-early" }).waitFor();
    await create.getByRole("button", { name: "Cancel" }).click();
    await create.waitFor({ state: "detached" });

    await createServer(s.tenantId, "web-later");
    await s.page.getByRole("button", { name: "Create Key" }).first().click();
    await create.getByRole("checkbox", { name: "web-later" }).waitFor({ timeout: 10_000 });
    await create.getByLabel("Name", { exact: true }).fill("ci-later");
    await create.getByRole("checkbox", { name: "web-later" }).check();
    await create.getByRole("button", { name: "Create key" }).click();
    const shown = s.page.getByRole("dialog", { name: "Automation key created" });
    await shown.waitFor();
    await shown.getByRole("button", { name: "I have copied the key" }).click();

    await createServer(s.tenantId, "web-latest");
    await s.page.getByRole("button", { name: "Edit ci-later" }).click();
    const edit = s.page.getByRole("dialog", { name: "Edit ci-later" });
    await edit.getByRole("checkbox", { name: "web-latest" }).waitFor({ timeout: 10_000 });
    expect(await edit.getByRole("checkbox", { name: "web-later" }).isChecked()).toBe(true);
  });

  it("application Add and Edit", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/applications`);
    await s.page.getByText("No applications yet").waitFor();
    await createServer(s.tenantId, "app-later");
    await s.page.getByRole("button", { name: "Add application" }).first().click();
    const add = s.page.getByRole("dialog", { name: "Add application" });
    await add.locator("#app-server option", { hasText: "app-later" }).waitFor({ state: "attached", timeout: 10_000 });
  });

  it("Add application, opened with no server yet, then after one is added elsewhere", async () => {
    // A tenant with no server: the page reads an empty list of them.
    const t = await createTenant();
    await s.page.context().clearCookies();
    await signIn(s.page, s.stack.url, t.apiKey);
    await s.page.goto(`${s.stack.url}/dashboard/applications`);
    await s.page.getByText("Add a server first").waitFor();
    // The button is not disabled on the strength of that list: it opens a dialog that says there is none.
    await s.page.getByRole("button", { name: "Add application" }).first().click({ timeout: 5_000 });
    const none = s.page.getByRole("dialog", { name: "Add application" });
    await waitForText(none, /There are no servers yet/);
    expect(await none.getByRole("link", { name: "Servers" }).getAttribute("href")).toBe("/dashboard/servers");
    await none.getByRole("button", { name: "OK" }).click();
    await none.waitFor({ state: "detached" });

    // A server added in another tab (or by another operator): Add offers it, without a reload.
    await createServer(t.tenant.id, "app-elsewhere");
    // The empty state follows without a reload or a press of Add: it offers the Add button beside its text again.
    await s.page.getByText("then deploy it from here or from CI").waitFor({ timeout: 12_000 });
    expect(await s.page.getByText("Add a server first").count()).toBe(0);
    await s.page.getByRole("button", { name: "Add application" }).first().click({ timeout: 5_000 });
    const add = s.page.getByRole("dialog", { name: "Add application" });
    await add.getByLabel("Name", { exact: true }).waitFor();
    expect(await add.getByLabel("Server").inputValue()).not.toBe("");
    expect(await add.locator("#app-server option").allTextContents()).toEqual(["app-elsewhere"]);
    await add.getByLabel("Name", { exact: true }).fill("added-later");
    await add.getByLabel("Working directory").fill("/srv/later");
    await add.getByLabel("Deploy command").fill("true");
    await add.getByRole("button", { name: "Add application" }).click();
    await add.waitFor({ state: "detached" });
    await waitForText(s.page.getByRole("row", { name: /added-later/ }), /app-elsewhere/);
  });
});

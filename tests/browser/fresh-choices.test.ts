import { createServer } from "../helpers/factories";
import { useSignedInStack } from "./browser";

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
});

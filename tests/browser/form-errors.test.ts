import type { Locator, Route } from "playwright-core";
import { createAutomationKey, createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * Every create and edit form shows a failure (the API's 422 `detail`, or an
 * unreachable gateway) inside its open dialog, not on the page behind it, and
 * stays open with what was typed; reopened, it starts without the old message.
 */
describe("dashboard: a failed create or edit is shown in its form", () => {
  const s = useSignedInStack();

  /** Submits the open `dialog` with `submit` and checks the failure is shown in it, the dialog still open. */
  async function failsInDialog(dialog: Locator, submit: string, message: RegExp): Promise<void> {
    await dialog.getByRole("button", { name: submit, exact: true }).click();
    await waitForText(dialog.getByRole("alert"), message);
    expect(await dialog.isVisible()).toBe(true);
  }

  /** Makes every `method` request to `url` fail on the network until the returned function is called. */
  async function dropRequests(url: string | RegExp, method: string): Promise<() => Promise<void>> {
    const drop = (route: Route) => (route.request().method() === method ? route.abort("connectionreset") : route.continue());
    await s.page.route(url, drop);
    return () => s.page.unroute(url, drop);
  }

  /** Closes `dialog` with Cancel, reopens it with `open` and checks it starts without the last failure. */
  async function reopensClean(dialog: Locator, open: Locator): Promise<void> {
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    await open.click();
    await dialog.waitFor();
    expect(await dialog.getByRole("alert").count()).toBe(0);
  }

  const UNREACHABLE = /^Cannot reach the runbridge gateway/;

  it("general API key: a 422 and a network failure are shown in the form, which keeps its input", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=api`);
    await waitForText(s.page.getByRole("tabpanel"), /\(this session\)/);
    await s.page.getByRole("button", { name: "Create API key" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Create API key" });
    // Blank after trimming: the API refuses it (422).
    await dialog.getByLabel("Name", { exact: true }).fill("   ");
    await failsInDialog(dialog, "Create key", /"name"/);

    const restore = await dropRequests(`${s.stack.url}/api/v1/api-keys`, "POST");
    await dialog.getByLabel("Name", { exact: true }).fill("ops laptop");
    await failsInDialog(dialog, "Create key", UNREACHABLE);
    expect(await dialog.getByLabel("Name", { exact: true }).inputValue()).toBe("ops laptop");
    await restore();

    // Reopened, the form has no old message; a retry then creates the key.
    await reopensClean(dialog, s.page.getByRole("button", { name: "Create API key" }).first());
    await dialog.getByLabel("Name", { exact: true }).fill("ops laptop");
    await dialog.getByRole("button", { name: "Create key" }).click();
    await s.page.getByTestId("new-api-key").waitFor();
    expect(await s.page.getByRole("alert").count()).toBe(0);
  });

  it("general API key: a failed re-read of the list after a create keeps the one-time key on screen", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=api`);
    await waitForText(s.page.getByRole("tabpanel"), /\(this session\)/);
    await s.page.getByRole("button", { name: "Create API key" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Create API key" });
    await dialog.getByLabel("Name", { exact: true }).fill("shown once");
    // The list's re-read after the create fails on the network.
    const restore = await dropRequests(`${s.stack.url}/api/v1/api-keys`, "GET");
    try {
      await dialog.getByRole("button", { name: "Create key" }).click();
      await waitForText(s.page.getByRole("tabpanel").getByRole("alert"), UNREACHABLE);
      await s.page.getByTestId("new-api-key").waitFor();
      expect(await s.page.getByTestId("new-api-key").innerText()).toMatch(/^rbk_/);
      // The list read before the failure stays too.
      await waitForText(s.page.getByRole("tabpanel"), /\(this session\)/);
    } finally {
      await restore();
    }
    await s.page.getByRole("dialog", { name: "API key created" }).getByRole("button", { name: "Done" }).click();
  });

  it("server add: a 422 is shown in the form, and a reopened form starts without it", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/servers`);
    await s.page.getByRole("button", { name: "Add server" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Add server" });
    await dialog.getByLabel("Name", { exact: true }).fill("   ");
    await failsInDialog(dialog, "Add server", /"name"/);
    expect(await dialog.getByLabel("Name", { exact: true }).inputValue()).toBe("   ");
    await reopensClean(dialog, s.page.getByRole("button", { name: "Add server" }).first());
  });

  it("registry credential add: a network failure is shown in the form, and a reopened form starts without it", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/credentials`);
    await s.page.getByRole("button", { name: "Add credential" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Add registry credential" });
    await dialog.getByLabel("Name", { exact: true }).fill("ghcr-flaky");
    await dialog.getByLabel("Registry URL").fill("ghcr.io");
    await dialog.getByLabel("Username").fill("bot");
    await dialog.getByLabel("Password or token").fill("pw");
    const restore = await dropRequests(`${s.stack.url}/api/v1/registry-credentials`, "POST");
    await failsInDialog(dialog, "Add credential", UNREACHABLE);
    expect(await dialog.getByLabel("Name", { exact: true }).inputValue()).toBe("ghcr-flaky");
    await restore();
    await reopensClean(dialog, s.page.getByRole("button", { name: "Add credential" }).first());
  });

  it("automation key create and edit: failures are shown in the form", async () => {
    const { key } = await createAutomationKey(s.tenantId);
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=automation`);
    await s.page.locator("tbody tr", { hasText: key.name }).waitFor();
    await s.page.getByRole("button", { name: "Create Key" }).first().click();
    const create = s.page.getByRole("dialog", { name: "Create automation key" });
    await create.getByLabel("Name", { exact: true }).fill("ci-flaky");
    const restore = await dropRequests(`${s.stack.url}/api/v1/automation-keys`, "POST");
    await failsInDialog(create, "Create key", UNREACHABLE);
    expect(await create.getByLabel("Name", { exact: true }).inputValue()).toBe("ci-flaky");
    await restore();
    await create.getByRole("button", { name: "Cancel" }).click();
    await create.waitFor({ state: "detached" });

    await s.page.getByRole("button", { name: `Edit ${key.name}` }).click();
    const edit = s.page.getByRole("dialog", { name: `Edit ${key.name}` });
    await edit.getByLabel("Name", { exact: true }).fill("   ");
    await failsInDialog(edit, "Save changes", /"name"/);
    await edit.getByRole("button", { name: "Cancel" }).click();
  });

  it("application add and edit: failures are shown in the form", async () => {
    await createServer(s.tenantId, "app-host");
    await s.page.goto(`${s.stack.url}/dashboard/applications`);
    const add = s.page.getByRole("button", { name: "Add application" }).first();
    await waitFor(() => add.isEnabled(), 10_000, "Add application enabled");
    await add.click();
    const dialog = s.page.getByRole("dialog", { name: "Add application" });
    await dialog.getByLabel("Name", { exact: true }).fill("   ");
    await dialog.getByLabel("Working directory").fill("/srv/shop");
    await dialog.getByLabel("Deploy command").fill("true");
    await failsInDialog(dialog, "Add application", /"name"/);

    await dialog.getByLabel("Name", { exact: true }).fill("shop");
    await dialog.getByRole("button", { name: "Add application" }).click();
    await dialog.waitFor({ state: "detached" });
    await s.page.getByRole("button", { name: "Edit shop" }).click();
    const edit = s.page.getByRole("dialog", { name: "Edit shop" });
    const restore = await dropRequests(/\/api\/v1\/applications\/[0-9a-f-]+$/, "PATCH");
    await edit.getByLabel("Working directory").fill("/srv/shop-2");
    await failsInDialog(edit, "Save changes", UNREACHABLE);
    expect(await edit.getByLabel("Working directory").inputValue()).toBe("/srv/shop-2");
    await restore();
    await edit.getByRole("button", { name: "Cancel" }).click();
  });
});

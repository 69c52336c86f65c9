import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { TestStack } from "../helpers/stack";
import { launchChromium, signIn, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * Every confirmation of a change that can fail (delete an application or a
 * registry credential, revoke an automation or general key, rotate a runner
 * token) shows the API's refusal in its dialog and stays open, and the list
 * behind it is refreshed. The failures are real: the row is removed behind
 * the dashboard's back (through the API, or the database where the API has no
 * way to), so the gateway answers 404 with its `detail`.
 */
describe("dashboard: a refused confirmation stays open with the API's reason", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let tenantId: string;
  let apiKey: string;

  beforeAll(async () => {
    stack = await TestStack.start();
    const t = await createTenant();
    tenantId = t.tenant.id;
    apiKey = t.apiKey;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    await signIn(page, stack.url, apiKey);
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    await closeTestPrisma();
  });

  const bearer = () => ({ Authorization: `Bearer ${apiKey}` });

  /**
   * Opens `path`, clicks the button `action` of the row showing `name` (its
   * dialog is titled `title`, else `action?`), lets `meanwhile` make the change fail,
   * confirms, and checks the dialog shows `detail` and stays open while the
   * list behind it drops the row.
   */
  async function refusedInDialog(o: { path: string; name: string; action: string; title?: string; confirm: string; meanwhile: () => Promise<void>; detail: string }) {
    await page.goto(`${stack.url}/dashboard${o.path}`);
    const row = page.locator("tbody tr", { hasText: o.name });
    await row.waitFor();
    await page.getByRole("button", { name: o.action, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: o.title ?? `${o.action}?` });
    await dialog.waitFor();
    await o.meanwhile();
    await dialog.getByRole("button", { name: o.confirm }).click();
    expect(await waitForText(dialog.getByRole("alert"), /not found/)).toBe(o.detail);
    // The list was re-read under the open dialog: the row is gone.
    await row.waitFor({ state: "detached", timeout: 5000 });
    expect(await dialog.isVisible()).toBe(true);
    expect(await dialog.getByRole("button", { name: o.confirm }).isEnabled()).toBe(true);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
  }

  it("application delete: an application deleted meanwhile is a 404 shown in the dialog", async () => {
    const { server } = await createServer(tenantId, "app-host");
    const app = await testPrisma().application.create({ data: { tenantId, serverId: server.id, name: "shop-gone", workingDirectory: "/tmp", deployCommand: "true" } });
    await refusedInDialog({
      path: "/applications",
      name: "shop-gone",
      action: "Delete shop-gone",
      confirm: "Delete application",
      meanwhile: async () => expect((await stack.api().delete(`/api/v1/applications/${app.id}`).set(bearer())).status).toBe(204),
      detail: `Application ${app.id} not found`,
    });
  });

  it("application delete: a network failure is shown in the dialog, and a retry then deletes", async () => {
    const { server } = await createServer(tenantId, "app-host-2");
    const app = await testPrisma().application.create({ data: { tenantId, serverId: server.id, name: "shop-flaky", workingDirectory: "/tmp", deployCommand: "true" } });
    await page.goto(`${stack.url}/dashboard/applications`);
    const row = page.locator("tbody tr", { hasText: "shop-flaky" });
    await row.waitFor();
    const target = `${stack.url}/api/v1/applications/${app.id}`;
    const drop = (route: Route) => (route.request().method() === "DELETE" ? route.abort("connectionreset") : route.continue());
    await page.route(target, drop);
    await page.getByRole("button", { name: "Delete shop-flaky" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete shop-flaky?" });
    await dialog.getByRole("button", { name: "Delete application" }).click();
    await waitForText(dialog.getByRole("alert"), /^Cannot reach the runbridge gateway/);
    expect(await testPrisma().application.count({ where: { id: app.id } })).toBe(1);
    await row.waitFor();

    await page.unroute(target, drop);
    await dialog.getByRole("button", { name: "Delete application" }).click();
    await dialog.waitFor({ state: "detached" });
    await row.waitFor({ state: "detached", timeout: 5000 });
    expect(await testPrisma().application.count({ where: { id: app.id } })).toBe(0);
  });

  it("registry credential delete: a credential deleted meanwhile is a 404 shown in the dialog", async () => {
    const created = await stack
      .api()
      .post("/api/v1/registry-credentials")
      .set(bearer())
      .send({ name: "ghcr-gone", registry_url: "ghcr.io", username: "bot", password: "pw" });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    await refusedInDialog({
      path: "/credentials",
      name: "ghcr-gone",
      action: "Delete ghcr-gone",
      confirm: "Delete credential",
      meanwhile: async () => expect((await stack.api().delete(`/api/v1/registry-credentials/${id}`).set(bearer())).status).toBe(204),
      detail: `Registry credential ${id} not found`,
    });
  });

  it("automation key revoke: a key removed meanwhile is a 404 shown in the dialog", async () => {
    const { key } = await createAutomationKey(tenantId);
    await refusedInDialog({
      path: "/keys?tab=automation",
      name: key.name,
      action: `Revoke ${key.name}`,
      confirm: "Revoke key",
      // Revoking is idempotent through the API; only a key that no longer exists is refused.
      meanwhile: async () => void (await testPrisma().automationKey.delete({ where: { id: key.id } })),
      detail: `Automation key ${key.id} not found`,
    });
  });

  it("general key revoke: a key removed meanwhile is a 404 shown in the dialog", async () => {
    const created = await stack.api().post("/api/v1/api-keys").set(bearer()).send({ name: "laptop-gone" });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    await refusedInDialog({
      path: "/keys?tab=api",
      name: "laptop-gone",
      action: "Revoke laptop-gone",
      confirm: "Revoke key",
      meanwhile: async () => void (await testPrisma().apiKey.delete({ where: { id } })),
      detail: `API key ${id} not found`,
    });
  });

  it("runner token rotation: a server deleted meanwhile is a 404 shown in the dialog", async () => {
    const { server } = await createServer(tenantId, "rotate-gone");
    await refusedInDialog({
      path: "/servers",
      name: "rotate-gone",
      action: "Rotate token of rotate-gone",
      title: "Rotate the runner token of rotate-gone?",
      confirm: "Rotate token",
      meanwhile: async () => expect((await stack.api().delete(`/api/v1/servers/${server.id}`).set(bearer())).status).toBe(204),
      detail: `Server ${server.id} not found`,
    });
  });
});

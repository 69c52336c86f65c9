import type { Browser, BrowserContext, Page } from "playwright-core";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import { TestStack } from "../helpers/stack";
import { launchChromium, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * The Servers page's Delete action (DELETE /api/v1/servers/{id}): a
 * confirmation that says what goes with the server, the API's refusal shown in
 * the dialog, and the list refreshed after a delete. Real gateway, dispatcher,
 * runner and database.
 */
describe("dashboard: deleting a server", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let tenant: Awaited<ReturnType<typeof createTenant>>;

  beforeAll(async () => {
    stack = await TestStack.start();
    tenant = await createTenant();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    await page.goto(`${stack.url}/dashboard/`);
    await page.getByLabel("API key").fill(tenant.apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
  });
  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    await closeTestPrisma();
  });

  async function openServers(): Promise<void> {
    await page.goto(`${stack.url}/dashboard/servers`);
    await page.getByRole("heading", { name: "Servers", level: 1 }).waitFor();
  }

  it("deletes a server with its history after confirmation; the row disappears and its runner stops", async () => {
    const { server, runnerToken } = await createServer(tenant.tenant.id, "web-old");
    const keep = await createServer(tenant.tenant.id, "web-keep");
    const runner = await stack.startRunner(runnerToken, server.id);
    await stack.waitRunnerConnected(server.id);
    const { token } = await createAutomationKey(tenant.tenant.id);
    const ran = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send({ server_id: server.id, command: "echo bye" });
    expect(ran.body).toMatchObject({ status: "completed", exit_code: 0 });
    const app = await testPrisma().application.create({ data: { tenantId: tenant.tenant.id, serverId: server.id, name: "shop", workingDirectory: "/tmp", deployCommand: "true" } });

    await openServers();
    await waitForText(page.getByRole("row", { name: /web-old/ }).locator(".badge"), /^connected$/);
    await page.getByRole("button", { name: "Delete web-old" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete server web-old?" });
    // It says what goes, what stays, and what to do on the machine.
    const text = await dialog.innerText();
    expect(text).toMatch(/operation history, with the output of every operation/);
    expect(text).toMatch(/applications and their deployment history/);
    expect(text).toMatch(/audit trail keeps its events/);
    expect(text).toMatch(/runner on the machine is disconnected and stops; uninstall it/);
    // Cancel deletes nothing.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    expect(await testPrisma().server.count({ where: { id: server.id } })).toBe(1);

    await page.getByRole("button", { name: "Delete web-old" }).click();
    await dialog.getByRole("button", { name: "Delete server" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByRole("row", { name: /web-old/ }).waitFor({ state: "detached", timeout: 5000 });
    await page.getByRole("row", { name: /web-keep/ }).waitFor();

    expect(await testPrisma().server.count({ where: { id: server.id } })).toBe(0);
    expect(await testPrisma().server.count({ where: { id: keep.server.id } })).toBe(1);
    expect(await testPrisma().operation.count({ where: { serverId: server.id } })).toBe(0);
    expect(await testPrisma().application.count({ where: { id: app.id } })).toBe(0);
    expect(await testPrisma().auditEvent.count({ where: { serverId: server.id, type: "server.deleted" } })).toBe(1);
    // The change went through the session with its CSRF token, and the runner was told to stop for good.
    expect((await runner.exited).code).toBe(78);
  });

  it("shows the API's refusal in the dialog while an operation runs, and keeps the server", async () => {
    const { server } = await createServer(tenant.tenant.id, "busy-1");
    await createOperation(tenant.tenant.id, server.id, { status: "running" });

    await openServers();
    await page.getByRole("button", { name: "Delete busy-1" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete server busy-1?" });
    await dialog.getByRole("button", { name: "Delete server" }).click();
    await waitForText(dialog.getByRole("alert"), /has 1 operation in progress; cancel it or wait for it to end, then delete the server/);
    // The dialog stays for another try; the server stays in the list and in the database.
    expect(await dialog.getByRole("button", { name: "Delete server" }).isEnabled()).toBe(true);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByRole("row", { name: /busy-1/ }).waitFor();
    expect(await testPrisma().server.count({ where: { id: server.id } })).toBe(1);

    // Opened again, the dialog starts without the old refusal.
    await page.getByRole("button", { name: "Delete busy-1" }).click();
    await dialog.waitFor();
    expect(await dialog.getByRole("alert").count()).toBe(0);
    await dialog.getByRole("button", { name: "Cancel" }).click();
  });
});

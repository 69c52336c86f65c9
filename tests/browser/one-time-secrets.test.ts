import type { Browser, BrowserContext, Page } from "playwright-core";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createTenant } from "../helpers/factories";
import { TestStack } from "../helpers/stack";
import { launchChromium, waitForText } from "./browser";

/**
 * A one-time secret (a new key, a runner token) is shown once. If the session ends while it is on
 * screen — the key behind the session revoked, expiry, a sign-out in another tab — the page that
 * shows it goes away: the secret must stay on screen until the user says it is copied.
 */
describe("dashboard: one-time secrets outlive the session they were made in", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    stack = await TestStack.start();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
  });
  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    await closeTestPrisma();
  });

  it("keeps a new automation key on the sign-in page after the session ends, until dismissed", async () => {
    const { tenant, apiKey } = await createTenant();
    await page.goto(`${stack.url}/dashboard/`);
    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.getByRole("tab", { name: "Automation Keys" }).click();
    await page.getByRole("button", { name: "Create Key" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Create automation key" });
    await dialog.getByLabel("Name", { exact: true }).fill("kept-key");
    await dialog.getByRole("button", { name: "Create key" }).click();
    const created = page.getByRole("dialog", { name: "Automation key created" });
    const token = (await created.getByTestId("new-key").innerText()).trim();
    expect(token).toMatch(/^rca_/);

    // The general key behind the session is revoked; the keys list's own refresh meets the 401.
    await testPrisma().apiKey.updateMany({ where: { tenantId: tenant.id }, data: { revokedAt: new Date() } });
    await waitForText(page.getByRole("status"), /session ended/, 20_000);
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();

    const kept = page.getByRole("region", { name: "Copy before you go on" });
    expect((await kept.getByTestId("new-key").innerText()).trim()).toBe(token);
    await kept.getByRole("button", { name: "Copy" }).waitFor();
    await kept.getByRole("button", { name: "I have copied it" }).click();
    await kept.waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(token);
  });
});

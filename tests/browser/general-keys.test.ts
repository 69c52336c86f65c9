import type { Browser, BrowserContext, Page } from "playwright-core";
import { closeTestPrisma } from "../helpers/db";
import { createTenant } from "../helpers/factories";
import { TestStack } from "../helpers/stack";
import { launchChromium, waitForText } from "./browser";

/** The API Keys tab: general keys listed, created and shown once, revoked with confirmation. */
describe("dashboard: general API keys", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let apiKey: string;

  beforeAll(async () => {
    stack = await TestStack.start();
    apiKey = (await createTenant()).apiKey;
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

  it("creates a general key, shows it once, and revokes it", async () => {
    await page.goto(`${stack.url}/dashboard/`);
    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.getByRole("tab", { name: "API Keys" }).click();
    await waitForText(page.getByRole("tabpanel"), /\(this session\)/);

    await page.getByRole("button", { name: "Create API key" }).first().click();
    // With a space after it, as pasted: sent trimmed (the API refuses spaces around a name rather than trim them).
    await page.getByLabel("Name").fill("ops laptop ");
    await page.getByRole("button", { name: "Create key" }).click();
    const shown = await page.getByTestId("new-api-key").innerText();
    expect(shown).toMatch(/^rbk_[0-9A-Za-z]{42}$/);
    await page.getByRole("button", { name: "Done" }).click();
    await waitForText(page.getByRole("tabpanel"), /ops laptop/);
    expect(await page.content()).not.toContain(shown);

    // The new key works, until it is revoked from the tab.
    expect((await stack.api().get("/api/v1/servers").set("Authorization", `Bearer ${shown}`)).status).toBe(200);
    await page.getByRole("button", { name: "Revoke ops laptop" }).click();
    await page.getByRole("button", { name: "Revoke key" }).click();
    await waitForText(page.getByRole("row", { name: /ops laptop/ }), /revoked/i);
    expect((await stack.api().get("/api/v1/servers").set("Authorization", `Bearer ${shown}`)).status).toBe(401);
  });
});

import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { type Browser, type BrowserContext, type Locator, type Page, chromium } from "playwright-core";
import { closeTestPrisma } from "../helpers/db";
import { createTenant } from "../helpers/factories";
import { ROOT, waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/** Debian's Chromium (apt-get install -y chromium); playwright cannot download browsers here. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (or set CHROMIUM_PATH)`);
  }
  // playwright gives every launch a fresh temporary user-data-dir.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * Screenshots go to docs/screenshots/ when RUNBRIDGE_SCREENSHOTS=1 (how the
 * committed ones are regenerated: `pnpm screenshots`), else to a scratch
 * directory so an ordinary test run leaves the tree untouched.
 */
export function screenshotDir(): string {
  const dir = process.env.RUNBRIDGE_SCREENSHOTS === "1" ? path.join(ROOT, "docs/screenshots") : path.join(ROOT, "node_modules/.cache/dashboard-screenshots");
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function shot(page: Page, name: string, mask: Locator[] = []): Promise<void> {
  // Relative times and the caret would make every regeneration differ for nothing.
  await page.screenshot({ path: path.join(screenshotDir(), `${name}.png`), fullPage: true, mask, maskColor: "#9aa3ad", caret: "hide", animations: "disabled" });
}

/** Waits until the locator's text matches (playwright-core has no `expect`). */
export async function waitForText(locator: Locator, re: RegExp, timeoutMs = 15_000): Promise<string> {
  return waitFor(
    async () => {
      const t = await locator.first().textContent({ timeout: 1000 }).catch(() => null);
      return t !== null && re.test(t) ? t : null;
    },
    timeoutMs,
    `text ${re} in ${locator.toString()}`,
  );
}

/** Signs `page` in to the dashboard at `baseUrl` with a general API key and waits for the app. */
export async function signIn(page: Page, baseUrl: string, apiKey: string): Promise<void> {
  await page.goto(`${baseUrl}/dashboard/`);
  await page.getByLabel("API key").fill(apiKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}

/** Signs `context`'s browser out and in again behind its pages' backs, as another tab would (same cookie jar). */
export async function signInElsewhere(context: BrowserContext, baseUrl: string, apiKey: string): Promise<void> {
  const current = await context.request.get(`${baseUrl}/dashboard/session`);
  const { csrf_token } = (await current.json()) as { csrf_token: string };
  expect((await context.request.delete(`${baseUrl}/dashboard/session`, { headers: { "X-CSRF-Token": csrf_token } })).status()).toBe(204);
  const res = await context.request.post(`${baseUrl}/dashboard/session`, { data: { api_key: apiKey }, headers: { "X-Requested-With": "runbridge-dashboard" } });
  expect(res.status()).toBe(201);
}

/**
 * Replaces a one-time secret in the page's text with its prefix and dots, so a
 * committed screenshot shows the layout without a usable token. Call it only
 * after the assertions that read the secret from the page.
 */
export async function redact(page: Page, secret: string): Promise<void> {
  await page.evaluate((s) => {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.textContent?.includes(s)) n.textContent = n.textContent.split(s).join(`${s.slice(0, 12)}${"•".repeat(24)}`);
    }
  }, secret);
}

/** Form controls on the page that have no accessible name (no <label>, aria-label or aria-labelledby). */
export async function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>("input, select, textarea"))
      .filter((el) => el.type !== "hidden")
      .filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** A stack with one tenant, and a Chromium page signed in to its dashboard; `close` ends them all. */
export interface SignedInStack {
  stack: TestStack;
  page: Page;
  tenantId: string;
  apiKey: string;
  close: () => Promise<void>;
}

export async function startSignedIn(): Promise<SignedInStack> {
  const stack = await TestStack.start();
  const t = await createTenant();
  const browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await signIn(page, stack.url, t.apiKey);
  const close = async () => {
    await browser.close().catch(() => undefined);
    await stack.stop();
    await closeTestPrisma();
  };
  return { stack, page, tenantId: t.tenant.id, apiKey: t.apiKey, close };
}

/** For a describe block: starts a signed-in stack before its tests and ends it after them; its fields are set once started. */
export function useSignedInStack(): SignedInStack {
  const ctx = {} as SignedInStack;
  beforeAll(async () => {
    Object.assign(ctx, await startSignedIn());
  });
  afterAll(async () => {
    await ctx.close?.();
  });
  return ctx;
}

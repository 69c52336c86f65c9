import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";
import { launchChromium, signInElsewhere, waitForText } from "./browser";

jest.setTimeout(180_000);

/**
 * The dashboard when things go wrong: two tabs sharing one session cookie, a
 * gateway answering 503, a list growing while it is paged, double clicks.
 * Faults are injected with playwright's interception of the browser's own
 * requests; the gateway, dispatcher and database are real.
 */
describe("dashboard resilience (browser)", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let tenantA: { id: string; name: string; apiKey: string };
  let tenantB: { id: string; name: string; apiKey: string };
  let serverA1: { id: string; name: string };
  let serverA2: { id: string; name: string };

  const tenant = async (name: string) => {
    const t = await createTenant(`${name}-${Date.now().toString(36)}`);
    return { id: t.tenant.id, name: t.tenant.name, apiKey: t.apiKey };
  };

  beforeAll(async () => {
    stack = await TestStack.start();
    tenantA = await tenant("alpha");
    tenantB = await tenant("beta");
    serverA1 = (await createServer(tenantA.id, "app-1")).server;
    serverA2 = (await createServer(tenantA.id, "app-2")).server;
    browser = await launchChromium();
  });

  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  });

  afterEach(async () => {
    await context?.close().catch(() => undefined);
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await stack?.stop();
    await closeTestPrisma();
  });

  const url = (p: string) => `${stack.url}/dashboard${p}`;

  async function signIn(page: Page, apiKey: string): Promise<void> {
    await page.goto(url("/"));
    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
  }

  async function addServer(page: Page, name: string): Promise<void> {
    await page.getByRole("button", { name: "Add server" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Add server" });
    await dialog.getByLabel("Name", { exact: true }).fill(name);
    await dialog.getByRole("button", { name: "Add server" }).click();
  }

  it("refreshes a stale CSRF token after a sign-in elsewhere, and never replays a change into another tenant", async () => {
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.getByRole("link", { name: "Servers" }).click();
    await page.getByRole("row", { name: /app-1/ }).waitFor();

    // Same tenant and key, new session: the change goes through after one refresh of the token.
    await signInElsewhere(context, stack.url, tenantA.apiKey);
    await addServer(page, "after-relogin");
    await page.getByRole("dialog", { name: "Server after-relogin added" }).getByRole("button", { name: "Done" }).click();

    // Another tenant now: the change is refused here, and the page follows the new sign-in.
    await signInElsewhere(context, stack.url, tenantB.apiKey);
    await addServer(page, "not-for-beta");
    await waitForText(page.getByRole("alert"), /signed in as beta-.* in another tab/);
    await waitForText(page.locator(".who"), new RegExp(tenantB.name));
    expect(await testPrisma().server.count({ where: { name: "not-for-beta" } })).toBe(0);
  });

  it("follows a sign-out in another tab", async () => {
    const a = await context.newPage();
    await signIn(a, tenantA.apiKey);
    const b = await context.newPage();
    await b.goto(url("/"));
    await b.getByRole("button", { name: "Sign out" }).click();
    await b.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    // At once, not when the page's next poll happens to meet a 401.
    await a.getByRole("heading", { name: "Sign in to runbridge" }).waitFor({ timeout: 2000 });
  });

  it("keeps the user signed in and offers a retry when signing out fails", async () => {
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    let failures = 1;
    await page.route("**/dashboard/session", async (route: Route) => {
      if (route.request().method() === "DELETE" && failures-- > 0) {
        await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "Service unavailable" }) });
      } else await route.continue();
    });
    await page.getByRole("button", { name: "Sign out" }).click();
    await waitForText(page.getByRole("alert"), /Sign out failed.*still signed in/);
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.getByRole("button", { name: "Retry sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    // The server session is really gone: a fresh load lands on the sign-in form.
    await page.unroute("**/dashboard/session");
    await page.reload();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
  });

  it("recovers from a 503 on startup with a Retry button", async () => {
    const page = await context.newPage();
    let failures = 1;
    await page.route("**/dashboard/session", async (route: Route) => {
      if (failures-- > 0) await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "The gateway is starting" }) });
      else await route.continue();
    });
    await page.goto(url("/"));
    await waitForText(page.getByRole("alert"), /The gateway is starting/);
    await page.getByRole("button", { name: "Retry now" }).click();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
  });

  it("pages Logs without losing rows as new operations arrive, and says when an older page fails", async () => {
    const at = (i: number) => new Date(Date.now() - 3_600_000 + i * 1000);
    for (let i = 1; i <= 60; i++) {
      await createOperation(tenantA.id, serverA1.id, { command: `echo cmd-${String(i).padStart(3, "0")}`, status: "completed", exitCode: 0, createdAt: at(i), completedAt: at(i) });
    }
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.goto(url("/logs"));
    const commands = page.locator(".op-command");
    await waitFor(async () => (await commands.count()) === 50);

    // An older page that fails says so (once), and the button stays for another try.
    let failures = 1;
    await page.route(/\/api\/v1\/operations\?.*cursor=/, async (route: Route) => {
      if (failures-- > 0) await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "Service unavailable" }) });
      else await route.continue();
    });
    await page.getByRole("button", { name: "Load older operations" }).click();
    await waitForText(page.getByRole("alert"), /Could not load older operations/);
    await page.getByRole("button", { name: "Load older operations" }).click();
    await waitFor(async () => (await commands.count()) === 60);

    // Five new operations: after the next refresh all 65 are listed, none pushed into a gap.
    for (let i = 1; i <= 5; i++) await createOperation(tenantA.id, serverA1.id, { command: `echo new-${i}`, status: "completed", exitCode: 0, createdAt: new Date(Date.now() + i) });
    await waitFor(async () => (await commands.count()) === 65, 15_000);
    const shown = await commands.allInnerTexts();
    expect(shown[0]).toBe("echo new-5");
    expect(shown.slice(5)).toEqual(Array.from({ length: 60 }, (_, i) => `echo cmd-${String(60 - i).padStart(3, "0")}`));
  });

  it("shows no rows of the previous filter while a new filter loads", async () => {
    await createOperation(tenantA.id, serverA2.id, { command: "echo on-app-2", status: "completed", exitCode: 0 });
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.goto(url("/logs"));
    await page.locator(".op-command").first().waitFor();

    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route(new RegExp(`/api/v1/operations\\?.*server_id=${serverA2.id}`), async (route: Route) => {
      await held;
      await route.continue();
    });
    await page.getByLabel("Server").selectOption({ label: "app-2" });
    await page.getByText("Loading").first().waitFor();
    expect(await page.locator(".op-command").count()).toBe(0);
    release();
    await waitForText(page.locator(".op-command"), /on-app-2/);
    expect(await page.locator(".op-command").allInnerTexts()).toEqual(["echo on-app-2"]);
  });

  it("shows the host a commit link goes to, whatever run_context.server_url says", async () => {
    const runContext = { provider: "github_actions", repository: "acme/shop", sha: "0123456789abcdef", server_url: "https://git.attacker.example" };
    await createOperation(tenantA.id, serverA1.id, { command: "echo linked", status: "completed", exitCode: 0, runId: "run-host", runContext });
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.goto(url("/logs?run_id=run-host"));
    await waitForText(page.getByTestId("commit-host"), /^on git\.attacker\.example$/);
    expect(await page.getByRole("link", { name: "0123456789ab" }).getAttribute("href")).toBe("https://git.attacker.example/acme/shop/commit/0123456789abcdef");
  });

  it("keeps showing the Logs when a run_context.server_url cannot be parsed as an address (no link for that one)", async () => {
    // Matches the shape a server_url must have, yet the browser's URL parser refuses it (port above 65535).
    const runContext = { provider: "github_actions", repository: "acme/shop", sha: "fedcba9876543210", server_url: "https://x:99999" };
    await createOperation(tenantA.id, serverA1.id, { command: "echo unparseable", status: "completed", exitCode: 0, runId: "run-bad-host", runContext });
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.goto(url("/logs?run_id=run-bad-host"));
    await waitForText(page.locator(".op-command"), /echo unparseable/);
    expect(await page.getByRole("link", { name: "fedcba987654" }).count()).toBe(0);
    expect(await page.getByText("fedcba987654").count()).toBe(1);
    // What a screen reader hears as the list refreshes: the count, not every row's changing "… ago".
    expect(await page.locator(".groups[aria-live]").count()).toBe(0);
    await waitForText(page.locator('[aria-live="polite"]').filter({ hasText: /operations?, \d+ running/ }), /^1 operation, 0 running$/);
  });

  it("says registry credentials are not available on a gateway without their API, instead of going blank", async () => {
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.route("**/api/v1/registry-credentials*", (route: Route) => route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ detail: "Not found" }) }));
    await page.goto(url("/credentials"));
    await waitForText(page.getByText("Registry credentials are not available on this gateway"), /not available/);
    expect(await page.getByRole("heading", { level: 1, name: "Registry credentials" }).count()).toBe(1);
  });

  it("says so on a running operation's page when refreshing it fails, instead of showing the old state as current", async () => {
    const op = await createOperation(tenantA.id, serverA1.id, { command: "sleep 600", status: "running", dispatchedAt: new Date() });
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.goto(url(`/operations/${op.id}`));
    await page.getByRole("heading", { level: 1 }).waitFor();
    expect(await page.getByText(/Could not refresh this operation/).count()).toBe(0);
    await page.route(`**/dashboard/api/operations/${op.id}`, (route: Route) => route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "Service unavailable" }) }));
    await waitForText(page.getByText(/Could not refresh this operation/), /may be out of date/);
    await page.unroute(`**/dashboard/api/operations/${op.id}`);
    await page.getByText(/Could not refresh this operation/).waitFor({ state: "detached" });
  });

  it("gives up a refresh the gateway never answers and says so, instead of showing the old state as current for good", async () => {
    const op = await createOperation(tenantA.id, serverA1.id, { command: "sleep 600", status: "running", dispatchedAt: new Date() });
    const page = await context.newPage();
    // The page's timers run on a clock the test moves: 30 s of a held request take no time.
    await page.clock.install();
    await signIn(page, tenantA.apiKey);
    await page.goto(url(`/operations/${op.id}`));
    await page.getByRole("heading", { level: 1 }).waitFor();
    let held = 0;
    // Held for good, as by a stalled proxy or a half-open connection: never answered, never closed.
    await page.route(`**/dashboard/api/operations/${op.id}`, () => void held++);
    await page.clock.runFor(10_000);
    await waitFor(async () => held > 0 || null, 10_000, "the page's next refresh");
    expect(await page.getByText(/Could not refresh this operation/).count()).toBe(0);
    await page.clock.runFor(31_000);
    await waitForText(page.getByText(/Could not refresh this operation/), /did not answer within 30 s/);
    await page.unroute(`**/dashboard/api/operations/${op.id}`);
  });

  it("sends a confirmed change once however often the button is clicked", async () => {
    const page = await context.newPage();
    await signIn(page, tenantA.apiKey);
    await page.getByRole("link", { name: "Servers" }).click();
    let posts = 0;
    await page.route(`**/api/v1/servers/${serverA2.id}/runner-token`, async (route: Route) => {
      posts++;
      await new Promise((r) => setTimeout(r, 800));
      await route.continue();
    });
    await page.getByRole("button", { name: "Rotate token of app-2" }).click();
    const confirm = page.getByRole("dialog", { name: "Rotate the runner token of app-2?" });
    await confirm.getByRole("button", { name: "Rotate token" }).dblclick();
    await page.getByTestId("runner-token").waitFor();
    expect(posts).toBe(1);
  });

  it("refreshes the status of rows loaded with \"Load older\" until they end, and asks only for those", async () => {
    // A real operation that keeps running until the test creates a file, behind a full first page of newer ones.
    const { server, runnerToken } = await createServer(tenantA.id, "older-rows");
    await stack.startRunner(runnerToken, server.id);
    const { token } = await createAutomationKey(tenantA.id);
    const release = path.join(mkdtempSync(path.join(tmpdir(), "rb-older-")), "go");
    const command = `while [ ! -e ${release} ]; do sleep 0.1; done; echo older-row-done`;
    const held = stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send({ server_id: server.id, command, timeout_seconds: 120 }).then((r) => r);
    const running = await waitFor(() => testPrisma().operation.findFirst({ where: { serverId: server.id, startedAt: { not: null } } }), 20_000, "the operation to start");
    for (let i = 1; i <= 50; i++) {
      await createOperation(tenantA.id, server.id, { command: `echo newer-${i}`, status: "completed", exitCode: 0, createdAt: new Date(Date.now() + i), completedAt: new Date() });
    }

    const page = await context.newPage();
    const byIds: string[] = [];
    let listRefreshes = 0;
    page.on("request", (req) => {
      const u = new URL(req.url());
      if (u.pathname === "/dashboard/api/operations") byIds.push(u.searchParams.get("ids") ?? "");
      if (u.pathname === "/api/v1/operations" && !u.searchParams.has("cursor")) listRefreshes++;
    });
    await signIn(page, tenantA.apiKey);
    await page.goto(url(`/logs?server_id=${server.id}`));
    const rows = page.locator(".op-row");
    await waitFor(async () => (await rows.count()) === 50);
    await page.getByRole("button", { name: "Load older operations" }).click();
    const olderRow = page.locator(".op-row", { hasText: "older-row-done" });
    await waitForText(olderRow.locator(".badge"), /^running$/);

    writeFileSync(release, "");
    expect((await held).body).toMatchObject({ operation_id: running.id, status: "completed", exit_code: 0 });
    // Without the refresh of older rows it would say "running" for good.
    await waitForText(olderRow.locator(".badge"), /^completed$/, 15_000);
    await waitForText(olderRow, /exit 0/);
    // Only the row that could still change was asked for, and once it ended, nothing more is.
    expect(new Set(byIds)).toEqual(new Set([running.id]));
    const asked = byIds.length;
    const refreshes = listRefreshes;
    await waitFor(async () => listRefreshes >= refreshes + 2 || null, 15_000, "two more refreshes of the first page");
    expect(byIds.length).toBe(asked);
  });
});

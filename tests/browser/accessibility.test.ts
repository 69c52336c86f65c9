import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { BrowserContext, Locator, Page, Route } from "playwright-core";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createOperation, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { A11yAudit, focusLook } from "./axe";
import { signIn, signInElsewhere, useSignedInStack, waitForText } from "./browser";

jest.setTimeout(180_000);

/**
 * Every view and state of the dashboard a user can reach, checked with axe
 * (WCAG 2.0/2.1 A and AA, and best practices; colours in the light and the
 * dark theme), and what axe cannot check done from the keyboard: the skip
 * link, the navigation, a visible focus, and every dialog opened, used and
 * closed without a mouse, focus going into it and back to its opener.
 */
describe("dashboard accessibility (browser)", () => {
  const s = useSignedInStack();
  let stack: TestStack;
  let context: BrowserContext;
  let page: Page;
  let tenant: { id: string; apiKey: string };
  let otherApiKey: string;
  const audit = new A11yAudit();
  const url = (p: string) => `${stack.url}/dashboard${p}`;
  const UNREACHABLE = /^Cannot reach the runbridge gateway/;

  beforeAll(async () => {
    ({ stack, page } = s);
    context = page.context();
    tenant = { id: s.tenantId, apiKey: s.apiKey };
    otherApiKey = (await createTenant()).apiKey;
  });

  // A test that failed half-way leaves what it found to its own report, not the next test's.
  beforeEach(() => void audit.take());

  /** Makes every `method` request to `pattern` fail on the network until the returned function is called. */
  async function dropRequests(pattern: string | RegExp, method: string): Promise<() => Promise<void>> {
    const drop = (route: Route) => (route.request().method() === method ? route.abort("connectionreset") : route.continue());
    await page.route(pattern, drop);
    return () => page.unroute(pattern, drop);
  }

  const dialog = (name: string) => page.getByRole("dialog", { name });

  /** Opens a dialog with `opener`, checks it, and leaves it open. */
  async function openAndCheck(opener: Locator, name: string, where: string): Promise<Locator> {
    await opener.click();
    const d = dialog(name);
    await d.waitFor();
    await audit.check(page, where);
    return d;
  }

  /** Submits `d` with a blank name, which the API refuses (422), checks the page with the refusal shown, and types `name` instead. */
  async function blankNameRefused(d: Locator, submit: string, where: string, name: string): Promise<void> {
    await d.getByLabel("Name", { exact: true }).fill("   ");
    await d.getByRole("button", { name: submit }).click();
    await waitForText(d.getByRole("alert"), /"name"/);
    await audit.check(page, where);
    await d.getByLabel("Name", { exact: true }).fill(name);
  }

  async function cancel(d: Locator): Promise<void> {
    await d.getByRole("button", { name: "Cancel" }).click();
    await d.waitFor({ state: "detached" });
  }

  it("sign-in page: empty, with a refused key, and while the gateway is unavailable", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    await audit.check(page, "Sign in");

    await page.getByLabel("API key").fill("rbk_not-a-real-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitForText(page.getByRole("alert"), /Invalid API key/);
    await audit.check(page, "Sign in: key refused");

    const unavailable = (route: Route) =>
      route.request().method() === "GET" ? route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "The gateway is starting" }) }) : route.continue();
    await page.route("**/dashboard/session", unavailable);
    await page.reload();
    await waitForText(page.getByRole("alert"), /The gateway is starting/);
    await audit.check(page, "Startup: gateway unavailable");
    await page.unroute("**/dashboard/session", unavailable);
    await page.getByRole("button", { name: "Retry now" }).click();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    audit.expectNone();
  });

  it("empty lists, filters that match nothing, and a missing operation", async () => {
    await signIn(page, stack.url, tenant.apiKey);
    const visits: [string, string | RegExp, string][] = [
      ["/keys?tab=automation", "No automation keys yet", "Automation keys: empty"],
      ["/keys?tab=api", "(this session)", "API keys: only the session's own"],
      ["/logs", "No operations yet", "Logs: empty"],
      ["/logs?status=failed", "No operations match these filters", "Logs: filters match nothing"],
      ["/servers", "No servers yet", "Servers: empty"],
      ["/applications", "No applications yet", "Applications: empty, no server yet"],
      ["/credentials", "No registry credentials yet", "Registry credentials: empty"],
      ["/audit?type=nothing.matches", "No events match these filters", "Audit: filters match nothing"],
    ];
    for (const [p, text, where] of visits) {
      await page.goto(url(p));
      await page.getByText(text).first().waitFor();
      await audit.check(page, where);
    }
    // Add application with no server to add it on says so in its dialog.
    await page.goto(url("/applications"));
    const none = await openAndCheck(page.getByRole("button", { name: "Add application" }).first(), "Add application", "Add application: no server yet");
    await waitForText(none, /There are no servers yet/);
    await none.getByRole("button", { name: "OK" }).click();
    await none.waitFor({ state: "detached" });
    await page.goto(url("/audit?from=2026-02-30"));
    await waitForText(page.getByRole("alert"), /is not a day/);
    await audit.check(page, "Audit: a day that is not one");
    await page.goto(url(`/operations/${randomUUID()}`));
    await waitForText(page.getByRole("alert"), /not found/i);
    await audit.check(page, "Operation: not found");
    audit.expectNone();
  });

  let webId = "";

  it("servers: add (refused, then its one-time token), rotate and delete confirmations, a failed delete", async () => {
    await page.goto(url("/servers"));
    let d = await openAndCheck(page.getByRole("button", { name: "Add server" }).first(), "Add server", "Add server form");
    await blankNameRefused(d, "Add server", "Add server: refused (422)", "web-1");
    await d.getByRole("button", { name: "Add server" }).click();
    d = dialog("Server web-1 added");
    const token = (await d.getByTestId("runner-token").textContent())?.trim() ?? "";
    await audit.check(page, "Server added: one-time runner token and install command");
    webId = (await testPrisma().server.findFirstOrThrow({ where: { tenantId: tenant.id, name: "web-1" } })).id;
    await stack.startRunner(token, webId);
    await d.getByRole("button", { name: "Done" }).click();

    await createServer(tenant.id, "db-1");
    await page.goto(url("/servers"));
    await waitForText(page.getByRole("row", { name: /web-1/ }), /connected/);
    await page.getByRole("row", { name: /db-1/ }).waitFor();
    await audit.check(page, "Servers: list, one runner connected, one not");

    // A runner connected but degraded (its state directory cannot be written): the warning badge and its problem.
    const disk = await createServer(tenant.id, "disk-1");
    const degraded = scriptedRunner(stack.dispatcherPorts[0] as number, disk.runnerToken, {
      auth: { problem: "runner cannot record operations, so it refuses every operation until it can: state directory /var/lib/runbridge cannot be written (ENOSPC: no space left on device); free space on its disk" },
    });
    try {
      await untilConnected(degraded);
      await stack.waitRunnerConnected(disk.server.id);
      await page.reload();
      await waitForText(page.getByRole("row", { name: /disk-1/ }), /degraded.*ENOSPC/);
      await audit.check(page, "Servers: a runner connected but degraded, its problem shown");
    } finally {
      degraded.disconnect();
      // Gone again: the tests after this one see the servers they expect.
      await testPrisma().server.delete({ where: { id: disk.server.id } });
    }

    d = await openAndCheck(page.getByRole("button", { name: "Rotate token of db-1" }), "Rotate the runner token of db-1?", "Rotate runner token: confirmation");
    await d.getByRole("button", { name: "Rotate token" }).click();
    await dialog("New runner token for db-1").getByTestId("runner-token").waitFor();
    await audit.check(page, "Runner token rotated: one-time token");
    await dialog("New runner token for db-1").getByRole("button", { name: "Done" }).click();

    d = await openAndCheck(page.getByRole("button", { name: "Delete db-1" }), "Delete server db-1?", "Delete server: confirmation");
    const restore = await dropRequests(/\/api\/v1\/servers\/[0-9a-f-]+$/, "DELETE");
    await d.getByRole("button", { name: "Delete server" }).click();
    await waitForText(d.getByRole("alert"), UNREACHABLE);
    await audit.check(page, "Delete server: failed, reason in the dialog");
    await restore();
    await cancel(d);
    audit.expectNone();
  });

  it("registry credentials: add (refused, then listed) and the delete confirmation", async () => {
    await page.goto(url("/credentials"));
    const d = await openAndCheck(page.getByRole("button", { name: "Add credential" }).first(), "Add registry credential", "Add registry credential form");
    await d.getByLabel("Name", { exact: true }).fill("ghcr-prod");
    await d.getByLabel("Registry URL").fill("not a registry!");
    await d.getByLabel("Username").fill("deploy-bot");
    await d.getByLabel("Password or token").fill("pw");
    await d.getByRole("button", { name: "Add credential" }).click();
    await waitForText(d.getByRole("alert"), /registry_url/);
    await audit.check(page, "Add registry credential: refused (422)");
    // With spaces around it, as pasted: sent trimmed (the API would refuse it as "not a registry host").
    await d.getByLabel("Registry URL").fill(" ghcr.io ");
    await d.getByRole("button", { name: "Add credential" }).click();
    await waitForText(page.getByRole("row", { name: /ghcr-prod/ }), /deploy-bot/);
    await audit.check(page, "Registry credentials: list");
    await cancel(await openAndCheck(page.getByRole("button", { name: "Delete ghcr-prod" }), "Delete ghcr-prod?", "Delete registry credential: confirmation"));
    audit.expectNone();
  });

  it("automation and general keys: create (refused, then shown once), edit, revoke (failed, then done)", async () => {
    await page.goto(url("/keys?tab=automation"));
    let d = await openAndCheck(page.getByRole("button", { name: "Create Key" }).first(), "Create automation key", "Create automation key form");
    await d.getByLabel("web-1", { exact: true }).waitFor();
    await blankNameRefused(d, "Create key", "Create automation key: refused (422)", "github-deploy");
    await d.getByLabel("web-1", { exact: true }).check();
    await d.getByLabel(/^exec/).check();
    await d.getByRole("button", { name: "Create key" }).click();
    d = dialog("Automation key created");
    await d.getByTestId("new-key").waitFor();
    await audit.check(page, "Automation key created: shown once");
    await d.getByRole("button", { name: "I have copied the key" }).click();
    await d.waitFor({ state: "detached" });

    await cancel(await openAndCheck(page.getByRole("button", { name: "Edit github-deploy" }), "Edit github-deploy", "Edit automation key form"));
    // The servers to choose from cannot be read (from the page's load on): Edit says why instead of opening nothing.
    const noServers = await dropRequests(/\/api\/v1\/servers(\?|$)/, "GET");
    await page.reload();
    await page.getByRole("button", { name: "Edit github-deploy" }).click();
    await waitForText(dialog("Edit github-deploy").getByRole("alert"), UNREACHABLE);
    await noServers();
    await page.reload();
    d = await openAndCheck(page.getByRole("button", { name: "Revoke github-deploy" }), "Revoke github-deploy?", "Revoke automation key: confirmation");
    const restore = await dropRequests(/\/api\/v1\/automation-keys\/[0-9a-f-]+$/, "DELETE");
    await d.getByRole("button", { name: "Revoke key" }).click();
    await waitForText(d.getByRole("alert"), UNREACHABLE);
    await audit.check(page, "Revoke automation key: failed, reason in the dialog");
    await restore();
    await d.getByRole("button", { name: "Revoke key" }).click();
    await d.waitFor({ state: "detached" });
    await waitForText(page.getByRole("row", { name: /github-deploy/ }), /revoked/);

    await page.getByRole("tab", { name: "API Keys" }).click();
    d = await openAndCheck(page.getByRole("button", { name: "Create API key" }), "Create API key", "Create API key form");
    await blankNameRefused(d, "Create key", "Create API key: refused (422)", "ops laptop");
    await d.getByRole("button", { name: "Create key" }).click();
    await dialog("API key created").getByTestId("new-api-key").waitFor();
    await audit.check(page, "API key created: shown once");
    await dialog("API key created").getByRole("button", { name: "Done" }).click();
    await waitForText(page.getByRole("tabpanel"), /ops laptop/);
    await audit.check(page, "API keys: list");
    await cancel(await openAndCheck(page.getByRole("button", { name: "Revoke ops laptop" }), "Revoke ops laptop?", "Revoke API key: confirmation"));
    audit.expectNone();
  });

  it("applications: add (refused, then listed), edit, deploy (refused, then live), history, delete confirmation", async () => {
    await page.goto(url("/applications"));
    await page.getByText("No applications yet").waitFor();
    const add = page.getByRole("button", { name: "Add application" }).first();
    await waitFor(() => add.isEnabled(), 10_000, "Add application enabled");
    await audit.check(page, "Applications: empty, a server to add one on");
    let d = await openAndCheck(add, "Add application", "Add application form");
    await d.getByLabel("Name", { exact: true }).fill("shop");
    await d.getByLabel("Server").selectOption({ label: "web-1" });
    await d.getByLabel("Working directory").fill(mkdtempSync(path.join(tmpdir(), "rb-a11y-app-")));
    await d.getByLabel("Deploy command").fill("echo deploying; sleep 3; echo deployed");
    await d.getByLabel("Only these names").check();
    await d.getByLabel("Allowed env override names").fill("RUNBRIDGE_COMMIT_REF");
    await d.getByRole("button", { name: "Add application" }).click();
    await waitForText(d.getByRole("alert"), /RUNBRIDGE_/);
    await audit.check(page, "Add application: refused (422), names field shown");
    await d.getByLabel("Any name except the refused ones").check();
    await d.getByRole("button", { name: "Add application" }).click();
    await waitForText(page.getByRole("row", { name: /shop/ }), /web-1/);
    await testPrisma().application.create({ data: { tenantId: tenant.id, serverId: webId, name: "api", workingDirectory: "/srv/api", deployCommand: "true" } });
    await page.reload();
    await page.getByRole("row", { name: /api/ }).waitFor();
    await audit.check(page, "Applications: list");
    await cancel(await openAndCheck(page.getByRole("button", { name: "Edit shop" }), "Edit shop", "Edit application form"));

    d = await openAndCheck(page.getByRole("button", { name: "Deploy shop" }), "Deploy shop", "Deploy dialog");
    await d.getByLabel("Automation key allowed to deploy").fill("rca_not-a-real-key");
    await d.getByRole("button", { name: "Deploy", exact: true }).click();
    await waitForText(d.getByRole("alert"), /.+/);
    await audit.check(page, "Deploy: key refused");
    const { token } = await createAutomationKey(tenant.id, { allowedOperations: ["deploy"], allowedServerIds: [webId] });
    await d.getByLabel("Automation key allowed to deploy").fill(token);
    await d.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL((u) => u.pathname.startsWith("/dashboard/operations/"));
    await waitForText(page.getByTestId("output-stdout"), /deploying/, 15_000);
    await audit.check(page, "Operation: running, live output");
    await waitForText(page.getByTestId("op-status"), /completed/, 20_000);
    await audit.check(page, "Operation: deploy completed");

    await page.goto(url("/applications"));
    d = await openAndCheck(page.getByRole("button", { name: "Deployments of shop" }), "Deployments of shop", "Deployment history");
    await waitForText(d, /completed/);
    await audit.check(page, "Deployment history: one deployment");
    await d.getByRole("button", { name: "Close" }).click();
    d = await openAndCheck(page.getByRole("button", { name: "Deployments of api" }), "Deployments of api", "Deployment history");
    await d.getByText("Not deployed yet").waitFor();
    await audit.check(page, "Deployment history: none");
    await d.getByRole("button", { name: "Close" }).click();
    await cancel(await openAndCheck(page.getByRole("button", { name: "Delete api" }), "Delete api?", "Delete application: confirmation"));
    audit.expectNone();
  });

  let scopedKey = "";

  it("lists with data: keys of every status, Logs runs and pages, operation details, the audit trail and its export", async () => {
    const { key } = await createAutomationKey(tenant.id, { allowedServerIds: [webId, randomUUID()], ipAllowlist: ["203.0.113.0/24"] });
    scopedKey = key.name;
    await createAutomationKey(tenant.id, { expiresAt: new Date(Date.now() - 86_400_000) });
    const hourAgo = Date.now() - 3_600_000;
    // Enough older operations for "Load older operations".
    for (let i = 0; i < 52; i++) {
      await createOperation(tenant.id, webId, { status: "completed", command: `echo step-${i}`, exitCode: 0, durationMs: 20, stdout: `step-${i}\n`, createdAt: new Date(hourAgo + i * 1000) });
    }
    const context = { provider: "github_actions", repository: "acme/shop", workflow: "deploy", trigger: "push", actor: "octocat", ref: "refs/heads/main", sha: "0123456789abcdef0123456789abcdef01234567" };
    const done = await createOperation(tenant.id, webId, {
      status: "completed",
      automationKeyId: key.id,
      command: "echo deployed; echo careful >&2",
      workingDirectory: "/srv/shop",
      envKeys: ["DB_URL"],
      runId: "gha-4242",
      runContext: context,
      exitCode: 0,
      durationMs: 1234,
      stdout: "deployed\n",
      stderr: "careful\n",
    });
    const failed = await createOperation(tenant.id, webId, { status: "failed", automationKeyId: key.id, runId: "gha-4242", runContext: context, error: "runner lost: the runner disconnected and did not report a result in time" });
    const timedOut = await createOperation(tenant.id, webId, { status: "timeout", command: "yes", exitCode: null, durationMs: 60_000, stdout: "y\n".repeat(200), stdoutTruncated: true });
    await createOperation(tenant.id, webId, { status: "cancelled", command: "sleep 100" });
    const running = await createOperation(tenant.id, webId, { status: "running", command: "sleep 1000", runId: "local-7" });

    await page.goto(url("/keys?tab=automation"));
    await waitForText(page.locator(`tr[data-key-id="${key.id}"]`), /deleted server/);
    await waitForText(page.getByRole("table", { name: "Automation keys" }), /expired/);
    await audit.check(page, "Automation keys: active, revoked, expired, naming a deleted server");

    await page.goto(url("/logs"));
    await page.getByRole("region", { name: "Run gha-4242" }).waitFor();
    await audit.check(page, "Logs: runs with their CI context, every status");
    const rows = page.locator(".op-row");
    const before = await rows.count();
    await page.getByRole("button", { name: "Load older operations" }).click();
    await waitFor(async () => (await rows.count()) > before, 10_000, "older operations");
    await audit.check(page, "Logs: older operations loaded");
    await page.goto(url(`/logs?automation_key_id=${key.id}`));
    await page.getByTestId("filter-note").waitFor();
    await audit.check(page, "Logs: filtered by a key");

    for (const [op, text, where] of [
      [done, /deployed/, "Operation: completed, with its run, key and environment"],
      [failed, /runner lost/, "Operation: failed, with its error"],
      [timedOut, /Truncated/, "Operation: timed out, output truncated"],
      [running, /Running…/, "Operation: running, no output yet"],
    ] as const) {
      await page.goto(url(`/operations/${op.id}`));
      await waitForText(page.getByRole("main"), text);
      await audit.check(page, where);
    }

    await testPrisma().auditEvent.createMany({ data: Array.from({ length: 55 }, (_, i) => ({ tenantId: tenant.id, type: "export.probe", createdAt: new Date(hourAgo + i * 1000) })) });
    await page.goto(url("/audit"));
    await waitForText(page.getByRole("table", { name: "Audit events" }), /key\.revoked/);
    await audit.check(page, "Audit: events");
    await page.getByRole("button", { name: "Load older events" }).click();
    await page.getByRole("button", { name: "Load older events" }).waitFor({ state: "detached" });
    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: "Export JSON Lines" }).click();
    await download;
    await waitForText(page.getByRole("status"), /Exported \d+ events/);
    await audit.check(page, "Audit: all events loaded, exported");
    audit.expectNone();
  });

  async function addServer(name: string): Promise<void> {
    await page.getByRole("button", { name: "Add server" }).first().click();
    await dialog("Add server").getByLabel("Name", { exact: true }).fill(name);
    await dialog("Add server").getByRole("button", { name: "Add server" }).click();
  }

  it("session messages: a one-time secret kept past a sign-out in another tab, a switch of tenant, a failed sign-out", async () => {
    await page.goto(url("/servers"));
    await addServer("temp-1");
    await dialog("Server temp-1 added").waitFor();
    const tab = await context.newPage();
    try {
      await tab.goto(url("/"));
      await tab.getByRole("button", { name: "Sign out" }).click();
      await waitForText(page.getByRole("status"), /signed out in another tab/);
      await page.getByRole("heading", { name: "Copy before you go on" }).waitFor();
      await audit.check(page, "Sign in after a sign-out in another tab, a one-time token kept");
      await page.getByRole("button", { name: "I have copied it" }).click();
    } finally {
      await tab.close();
    }

    await signIn(page, stack.url, tenant.apiKey);
    await page.goto(url("/servers"));
    await page.getByRole("row", { name: /web-1/ }).waitFor();
    await signInElsewhere(context, stack.url, otherApiKey);
    await addServer("not-for-other");
    await waitForText(page.getByRole("alert"), /in another tab/);
    await audit.check(page, "Signed in as another tenant in another tab");
    await signInElsewhere(context, stack.url, tenant.apiKey);

    await page.goto(url("/servers"));
    await page.getByRole("row", { name: /web-1/ }).waitFor();
    const refuse = (route: Route) =>
      route.request().method() === "DELETE" ? route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ detail: "Service unavailable" }) }) : route.continue();
    await page.route("**/dashboard/session", refuse);
    await page.getByRole("button", { name: "Sign out" }).click();
    await waitForText(page.getByRole("alert"), /Sign out failed/);
    await audit.check(page, "Sign-out failed");
    await page.unroute("**/dashboard/session", refuse);
    audit.expectNone();
  });

  it("at phone width: lists as cards and a dialog", async () => {
    const browser = context.browser();
    if (!browser) throw new Error("the signed-in page has no browser");
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await phone.addCookies((await context.cookies()).filter((c) => c.name === "rb_session"));
      const p = await phone.newPage();
      await p.goto(url("/keys?tab=automation"));
      // Tables are cards here: rows found by their markup.
      await p.locator("tr", { hasText: "github-deploy" }).waitFor();
      await audit.check(p, "Phone: automation keys");
      await p.goto(url("/logs"));
      await p.getByRole("region", { name: "Run gha-4242" }).waitFor();
      await audit.check(p, "Phone: Logs");
      await p.goto(url("/servers"));
      await p.locator("tr", { hasText: "web-1" }).waitFor();
      await audit.check(p, "Phone: servers");
      await p.getByRole("button", { name: "Add server" }).first().click();
      await p.getByRole("dialog", { name: "Add server" }).waitFor();
      await audit.check(p, "Phone: Add server form");
    } finally {
      await phone.close();
    }
    audit.expectNone();
  });

  // What axe cannot see: the keyboard alone.

  /** A description of the focused element, to compare and to read in a failure. */
  const focused = (p: Page = page) =>
    p.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return "(nothing: the page itself)";
      const name = el.getAttribute("aria-label") ?? (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement ? el.labels?.[0]?.textContent : el.textContent);
      return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""} "${(name ?? "").trim()}"${el.closest("dialog") ? " in a dialog" : ""}`;
    });

  /** Presses Tab until `name` has focus (at most `max` times), so it is known to be reachable from the keyboard. */
  async function tabTo(name: RegExp, max = 60): Promise<void> {
    const seen: string[] = [];
    for (let i = 0; i < max; i++) {
      await page.keyboard.press("Tab");
      const now = await focused();
      if (name.test(now)) return;
      seen.push(now);
    }
    throw new Error(`${name} is not reached with Tab; focus went through:\n${seen.join("\n")}`);
  }

  /**
   * Opens a dialog from `opener` with `key` (Enter or Space), checks focus went into it and stays there as
   * Tab goes round, closes it with Escape and checks focus is back on the opener.
   */
  async function dialogByKeyboard(opener: Locator, name: string, key: "Enter" | " ", firstFocus?: RegExp): Promise<void> {
    await opener.focus();
    const before = await focused();
    await page.keyboard.press(key);
    const d = dialog(name);
    await d.waitFor();
    const first = await focused();
    expect({ dialog: name, focus: first }).toEqual({ dialog: name, focus: expect.stringMatching(/ in a dialog$/) });
    if (firstFocus) expect(first).toMatch(firstFocus);
    for (let i = 0; i < 25; i++) {
      await page.keyboard.press("Tab");
      // Past the dialog's last control the browser's own UI may take focus (the page then has none); never the page behind.
      expect({ dialog: name, focus: await focused() }).toEqual({ dialog: name, focus: expect.stringMatching(/ in a dialog$|^\(nothing/) });
    }
    await page.keyboard.press("Escape");
    await d.waitFor({ state: "detached" });
    expect({ dialog: name, focusAfterEscape: await focused() }).toEqual({ dialog: name, focusAfterEscape: before });
  }

  it("keyboard: skip link, main navigation, visible focus everywhere Tab goes", async () => {
    await page.goto(url("/keys?tab=automation"));
    await page.getByRole("row", { name: /github-deploy/ }).waitFor();
    await page.keyboard.press("Tab");
    expect(await focused()).toBe('a "Skip to content"');
    expect((await focusLook(page))?.contrast).toBeGreaterThanOrEqual(3);
    // Shown when focused: on screen, not parked off to the side.
    expect(await page.evaluate(() => document.activeElement?.getBoundingClientRect().left ?? -1)).toBeGreaterThanOrEqual(0);
    await page.keyboard.press("Enter");
    expect(await focused()).toMatch(/^main#main/);

    // Every page of the main navigation from the keyboard: the page is named in the title, and focus starts at its content.
    await page.goto(url("/keys?tab=automation"));
    await page.getByRole("row", { name: /github-deploy/ }).waitFor();
    for (const [label, heading] of [
      ["Logs", "Logs"],
      ["Servers", "Servers"],
      ["Applications", "Applications"],
      ["Registry credentials", "Registry credentials"],
      ["Audit", "Audit trail"],
      ["API Keys", "API Keys"],
    ] as const) {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label }).focus();
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { level: 1, name: heading }).waitFor();
      expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label }).getAttribute("aria-current")).toBe("page");
      expect({ title: await page.title(), focus: await focused() }).toEqual({ title: `${label} · runbridge dashboard`, focus: expect.stringMatching(/^main#main/) });
    }

    // Wherever Tab goes, the focus shows, with an outline that stands out (3:1) from what is around it, in both themes.
    const weak: string[] = [];
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const p of ["/servers", "/keys?tab=automation", "/logs", "/applications"]) {
        await page.goto(url(p));
        await page.getByRole("heading", { level: 1 }).waitFor();
        await page.locator(".table-wrap, .groups").first().waitFor();
        for (let i = 0; i < 40; i++) {
          await page.keyboard.press("Tab");
          const look = await focusLook(page);
          if (look && look.contrast < 3) weak.push(`${scheme} ${p}: ${look.element}: ${look.outline} (${look.contrast}:1)`);
        }
      }
    }
    await page.emulateMedia({ colorScheme: "light" });
    expect(weak).toEqual([]);
  });

  it("keyboard: every dialog opens with Enter or Space, holds focus, closes with Escape and gives focus back", async () => {
    await page.goto(url("/servers"));
    await page.getByRole("row", { name: /web-1/ }).waitFor();
    await dialogByKeyboard(page.getByRole("button", { name: "Add server" }).first(), "Add server", "Enter", /input#server-name/);
    await dialogByKeyboard(page.getByRole("button", { name: "Rotate token of web-1" }), "Rotate the runner token of web-1?", " ", /"Cancel"/);
    await dialogByKeyboard(page.getByRole("button", { name: "Delete web-1" }), "Delete server web-1?", "Enter", /"Cancel"/);

    await page.goto(url("/keys?tab=automation"));
    await page.getByRole("row", { name: /github-deploy/ }).waitFor();
    await dialogByKeyboard(page.getByRole("button", { name: "Create Key" }).first(), "Create automation key", "Enter", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: `Edit ${scopedKey}` }), `Edit ${scopedKey}`, " ", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: `Revoke ${scopedKey}` }), `Revoke ${scopedKey}?`, "Enter", /"Cancel"/);

    await page.getByRole("tab", { name: "API Keys" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("tab", { name: "API Keys", selected: true }).waitFor();
    await waitForText(page.getByRole("tabpanel"), /ops laptop/);
    await dialogByKeyboard(page.getByRole("button", { name: "Create API key" }).first(), "Create API key", " ", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: "Revoke ops laptop" }), "Revoke ops laptop?", "Enter", /"Cancel"/);

    await page.goto(url("/applications"));
    await page.getByRole("row", { name: /shop/ }).waitFor();
    await dialogByKeyboard(page.getByRole("button", { name: "Add application" }).first(), "Add application", "Enter", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: "Deploy shop" }), "Deploy shop", "Enter");
    await dialogByKeyboard(page.getByRole("button", { name: "Deployments of shop" }), "Deployments of shop", " ");
    await dialogByKeyboard(page.getByRole("button", { name: "Edit shop" }), "Edit shop", "Enter", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: "Delete shop" }), "Delete shop?", " ", /"Cancel"/);

    await page.goto(url("/credentials"));
    await page.getByRole("row", { name: /ghcr-prod/ }).waitFor();
    await dialogByKeyboard(page.getByRole("button", { name: "Add credential" }).first(), "Add registry credential", "Enter", /"Name"/);
    await dialogByKeyboard(page.getByRole("button", { name: "Delete ghcr-prod" }), "Delete ghcr-prod?", "Enter", /"Cancel"/);
  });

  it("keyboard: add a server, read its token, delete it, switch tabs, pick scopes and open an operation without a mouse", async () => {
    await page.goto(url("/servers"));
    await page.getByRole("row", { name: /web-1/ }).waitFor();
    await tabTo(/^button "Add server"/);
    await page.keyboard.press("Enter");
    await page.keyboard.type("kbd-1");
    await page.keyboard.press("Enter");
    const added = dialog("Server kbd-1 added");
    await added.waitFor();
    expect(await focused()).toMatch(/ in a dialog$/);
    await tabTo(/^button "Done"/);
    await page.keyboard.press("Enter");
    await added.waitFor({ state: "detached" });
    expect(await focused()).toBe('button "Add server"');

    // Once the row (and with it the button that opened the dialog) is gone, focus is not dropped on the page.
    await page.getByRole("button", { name: "Delete kbd-1" }).focus();
    await page.keyboard.press("Enter");
    const confirm = dialog("Delete server kbd-1?");
    await confirm.waitFor();
    await page.keyboard.press("Tab");
    expect(await focused()).toMatch(/^button "Delete server"/);
    await page.keyboard.press("Enter");
    await confirm.waitFor({ state: "detached" });
    await page.getByRole("row", { name: /kbd-1/ }).waitFor({ state: "detached" });
    expect(await focused()).toMatch(/^main#main/);

    // Nor once the button that opened it is disabled (a revoked key's).
    const { key } = await createAutomationKey(tenant.id);
    await page.goto(url("/keys?tab=automation"));
    await page.getByRole("button", { name: `Revoke ${key.name}` }).focus();
    await page.keyboard.press("Enter");
    await dialog(`Revoke ${key.name}?`).waitFor();
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await waitForText(page.locator(`tr[data-key-id="${key.id}"]`), /revoked/);
    expect(await focused()).toMatch(/^main#main/);

    // Tabs follow the arrow keys, Home and End.
    await page.getByRole("tab", { name: "Automation Keys" }).focus();
    for (const [key, selected] of [
      ["ArrowLeft", "API Keys"],
      ["ArrowRight", "Automation Keys"],
      ["Home", "API Keys"],
      ["End", "Automation Keys"],
    ] as const) {
      await page.keyboard.press(key);
      await page.getByRole("tab", { name: selected, selected: true }).waitFor();
      expect(await focused()).toBe(`button#tab-${selected === "API Keys" ? "api" : "automation"} "${selected}"`);
    }

    // Scopes are checked with Space.
    await page.getByRole("button", { name: "Create Key" }).first().focus();
    await page.keyboard.press("Enter");
    const form = dialog("Create automation key");
    await form.getByLabel("web-1", { exact: true }).waitFor();
    await tabTo(/^input "web-1"/);
    await page.keyboard.press(" ");
    expect(await form.getByLabel("web-1", { exact: true }).isChecked()).toBe(true);
    await page.keyboard.press("Escape");
    await form.waitFor({ state: "detached" });

    // An operation opens from Logs with Enter, and "Back to Logs" too.
    await page.goto(url("/logs?run_id=gha-4242"));
    await page.getByRole("region", { name: "Run gha-4242" }).waitFor();
    await tabTo(/^a "exec echo deployed/);
    await page.keyboard.press("Enter");
    await page.waitForURL((u) => u.pathname.startsWith("/dashboard/operations/"));
    await page.getByTestId("output-stdout").waitFor();
    await tabTo(/^a "← Back to Logs"/);
    await page.keyboard.press("Enter");
    await page.waitForURL((u) => u.pathname === "/dashboard/logs");
  });
});

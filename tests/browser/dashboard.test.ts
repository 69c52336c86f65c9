import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { RUNNER_VERSION } from "../../apps/runner/src/agent";
import { closeTestPrisma, testPrisma } from "../helpers/db";
import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";
import { launchChromium, redact, shot, unlabelledControls, waitForText } from "./browser";

jest.setTimeout(240_000);

/**
 * The dashboard in a real browser against the real stack: Debian's Chromium
 * driven by playwright-core, the gateway serving the built SPA, a real
 * dispatcher and runner executing what the Automation API is asked to run.
 */
describe("dashboard (browser)", () => {
  let stack: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let apiKey: string;
  let tenantId: string;
  let web: { id: string; name: string };
  let db: { id: string; name: string };

  beforeAll(async () => {
    stack = await TestStack.start();
    const t = await createTenant(`acme-${Date.now().toString(36)}`);
    apiKey = t.apiKey;
    tenantId = t.tenant.id;
    const s1 = await createServer(tenantId, "web-1");
    const s2 = await createServer(tenantId, "db-1");
    web = s1.server;
    db = s2.server;
    await stack.startRunner(s1.runnerToken, s1.server.id);
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

  const url = (p: string) => `${stack.url}/dashboard${p}`;

  it("signs in with a general API key into an HttpOnly SameSite=Strict session, keeping the key out of page storage", async () => {
    await page.goto(url("/"));
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    await shot(page, "sign-in");

    // A wrong key is refused with the API's detail.
    await page.getByLabel("API key").fill("rbk_not-a-real-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitForText(page.getByRole("alert"), /Invalid API key/);

    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.getByRole("tab", { name: "Automation Keys", selected: true }).waitFor();

    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "rb_session");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/" });
    expect(session?.value).not.toContain(apiKey);
    const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    expect(storage).not.toContain(apiKey);
    expect(storage).not.toContain("rb_session");
  });

  let keyToken = "";
  let keyId = "";

  it("creates a scoped automation key and shows it exactly once", async () => {
    await page.getByRole("tab", { name: "Automation Keys" }).click();
    await page.getByText("No automation keys yet").waitFor();
    await shot(page, "automation-keys-empty");

    await page.getByRole("button", { name: "Create Key" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Create automation key" });
    await dialog.waitFor();
    await dialog.getByLabel("Name", { exact: true }).fill("github-deploy");
    await dialog.getByLabel("web-1", { exact: true }).check();
    await dialog.getByLabel(/^exec/).check();
    await dialog.getByLabel(/^restart/).check();
    await dialog.getByLabel("IP allowlist").fill("127.0.0.0/8\n::1");
    await dialog.getByLabel("Rate limit (requests per minute)").fill("60");
    const expiry = new Date(Date.now() + 90 * 24 * 3600 * 1000);
    const local = `${expiry.getFullYear()}-${String(expiry.getMonth() + 1).padStart(2, "0")}-${String(expiry.getDate()).padStart(2, "0")}T12:00`;
    await dialog.getByLabel("Expires").fill(local);
    await shot(page, "create-key-form");
    await dialog.getByRole("button", { name: "Create key" }).click();

    const created = page.getByRole("dialog", { name: "Automation key created" });
    await created.waitFor();
    keyToken = (await created.getByTestId("new-key").textContent())?.trim() ?? "";
    expect(keyToken).toMatch(/^rca_[A-Za-z0-9_]+$/);
    await created.getByRole("button", { name: "Copy" }).waitFor();

    // Stored with every scope the form set, and only as a hash.
    const row = await testPrisma().automationKey.findFirstOrThrow({ where: { tenantId, name: "github-deploy" } });
    keyId = row.id;
    expect(row.allowedServerIds).toEqual([web.id]);
    expect(row.allowedOperations.sort()).toEqual(["exec", "restart"]);
    expect(row.ipAllowlist.length).toBe(2);
    expect(row.rateLimit).toBe(60);
    expect(row.expiresAt?.getTime()).toBeGreaterThan(Date.now() + 80 * 24 * 3600 * 1000);
    expect(row.keyHash).not.toContain(keyToken);

    await redact(page, keyToken);
    await shot(page, "key-created-once");
    await created.getByRole("button", { name: "I have copied the key" }).click();
    await created.waitFor({ state: "detached" });
    const keyRow = page.locator(`tr[data-key-id="${keyId}"]`);
    await waitForText(keyRow, /github-deploy/);
    expect(await keyRow.textContent()).toMatch(/Servers: web-1/);
    expect(await keyRow.textContent()).toMatch(/Operations: exec, restart|Operations: restart, exec/);
    // Gone for good: neither the page nor a reload shows it again.
    expect(await page.content()).not.toContain(keyToken);
    await page.reload();
    await waitForText(page.locator(`tr[data-key-id="${keyId}"]`), /github-deploy/);
    expect(await page.content()).not.toContain(keyToken);
  });

  let operationId = "";

  it("counts the key's operations as the Automation API is called with it", async () => {
    const countLink = page.locator(`tr[data-key-id="${keyId}"] .op-count`);
    await waitForText(countLink, /^0$/);

    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${keyToken}`)
      .send({
        server_id: web.id,
        command: "echo deployed-from-dashboard-test; echo careful >&2",
        run_id: "gha-4242",
        run_context: { provider: "github_actions", repository: "acme/shop", workflow: "deploy", actor: "octocat", sha: "0123456789abcdef0123456789abcdef01234567", ref: "refs/heads/main" },
      });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "deployed-from-dashboard-test\n" });
    operationId = res.body.operation_id;

    // A second step of the same CI run, and a failing step of the next run.
    const ctx = { provider: "github_actions", repository: "acme/shop", workflow: "deploy", actor: "octocat", ref: "refs/heads/main" };
    const step2 = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${keyToken}`)
      .send({ server_id: web.id, command: "echo migrations applied", run_id: "gha-4242", run_context: { ...ctx, sha: "0123456789abcdef0123456789abcdef01234567" } });
    expect(step2.body.status).toBe("completed");
    const failing = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${keyToken}`)
      .send({ server_id: web.id, command: "echo 'health check failed' >&2; exit 3", run_id: "gha-4243", run_context: { ...ctx, actor: "hubot", sha: "fedcba9876543210fedcba9876543210fedcba98" } });
    expect(failing.body).toMatchObject({ status: "completed", exit_code: 3 });

    // The key's scope holds: db-1 is not among its servers.
    const refused = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${keyToken}`).send({ server_id: db.id, command: "true" });
    expect(refused.status).toBe(403);

    // The list refreshes on its own; the count goes from 0 to 3 without a reload.
    await waitForText(countLink, /^3$/, 20_000);
    await waitForText(page.locator(`tr[data-key-id="${keyId}"]`), /ago|just now/);
    await shot(page, "automation-keys");
  });

  it("opens Logs filtered by the key from its operation count, grouped by run with the CI context", async () => {
    await page.locator(`tr[data-key-id="${keyId}"] .op-count`).click();
    await page.waitForURL((u) => u.pathname === "/dashboard/logs" && u.searchParams.get("automation_key_id") === keyId);
    await waitForText(page.getByTestId("filter-note"), /github-deploy/);
    const group = page.getByRole("region", { name: "Run gha-4242" });
    await group.waitFor();
    const text = (await group.textContent()) ?? "";
    expect(text).toContain("acme/shop");
    expect(text).toContain("octocat");
    expect(text).toContain("deploy");
    expect(await group.getByRole("link", { name: "0123456789ab" }).getAttribute("href")).toBe(
      "https://github.com/acme/shop/commit/0123456789abcdef0123456789abcdef01234567",
    );
    expect(await group.locator(".op-row").count()).toBe(2);
    await page.getByRole("region", { name: "Run gha-4243" }).waitFor();
    expect(await page.locator(".op-row").count()).toBe(3);
    expect(await page.locator("#f-key").inputValue()).toBe(keyId);
    await shot(page, "logs");
  });

  it("shows the operation's stdout and stderr in its detail view", async () => {
    await page.getByRole("link", { name: /deployed-from-dashboard-test/ }).click();
    await page.waitForURL((u) => u.pathname === `/dashboard/operations/${operationId}`);
    await waitForText(page.getByTestId("output-stdout"), /deployed-from-dashboard-test/);
    await waitForText(page.getByTestId("output-stderr"), /careful/);
    expect(await page.getByTestId("op-status").textContent()).toBe("completed");
    await shot(page, "operation-detail");
  });

  it("follows a running operation live until it finishes", async () => {
    const pending = stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${keyToken}`)
      .send({ server_id: web.id, command: "echo live-first; sleep 4; echo live-second" })
      .then((r) => r);
    const op = await waitFor(async () => testPrisma().operation.findFirst({ where: { tenantId, command: { contains: "live-first" } } }), 15_000, "the running operation");
    await page.goto(url(`/operations/${op.id}`));
    await waitForText(page.getByTestId("op-status"), /running/);
    // The output's first line shows up while the command still sleeps.
    await waitForText(page.getByTestId("output-stdout"), /live-first/, 15_000);
    // Then the page turns to the stored result on its own.
    await waitForText(page.getByTestId("op-status"), /completed/, 20_000);
    await waitForText(page.getByTestId("output-stdout"), /live-first\s+live-second/);
    expect((await pending).body.status).toBe("completed");
  });

  it("marks where the live view missed output (trimmed from the live log before it was read)", async () => {
    const pending = stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${keyToken}`)
      .send({ server_id: web.id, command: "sleep 6; echo gap-test-done" })
      .then((r) => r);
    const op = await waitFor(async () => testPrisma().operation.findFirst({ where: { tenantId, command: { contains: "gap-test-done" } } }), 15_000, "the running operation");
    // The live log as a very chatty command leaves it once the oldest entries were trimmed away: the chunk
    // at byte 0 is there, those up to byte 4096 are gone, and the stream goes on from there.
    const key = stack.keys.operationLog(op.id);
    await stack.redis.xadd(key, "*", "stream", "stdout", "offset", "0", "data", "chatty-start\n", "server", web.id);
    await stack.redis.xadd(key, "*", "stream", "stdout", "offset", "4096", "data", "chatty-later\n", "server", web.id);
    await page.goto(url(`/operations/${op.id}`));
    await waitForText(page.getByTestId("output-stdout"), /chatty-start\s+\[… output skipped: not all of it came live[^\]]*\]\s+chatty-later/, 15_000);
    await waitForText(page.getByTestId("op-status"), /completed/, 20_000);
    expect((await pending).body.status).toBe("completed");
  });

  it("edits a key's scopes", async () => {
    await page.getByRole("link", { name: "API Keys" }).click();
    await page.getByRole("button", { name: "Edit github-deploy" }).click();
    const dialog = page.getByRole("dialog", { name: "Edit github-deploy" });
    expect(await dialog.getByLabel("web-1", { exact: true }).isChecked()).toBe(true);
    expect(await dialog.getByLabel("IP allowlist").inputValue()).toContain("127.0.0.0/8");
    await dialog.getByLabel("Rate limit (requests per minute)").fill("120");
    await dialog.getByLabel(/^restart/).uncheck();
    await dialog.getByRole("button", { name: "Save changes" }).click();
    await dialog.waitFor({ state: "detached" });
    await waitForText(page.locator(`tr[data-key-id="${keyId}"]`), /120\/min/);
    const row = await testPrisma().automationKey.findUniqueOrThrow({ where: { id: keyId } });
    expect(row).toMatchObject({ rateLimit: 120, allowedOperations: ["exec"], allowedServerIds: [web.id] });
  });

  it("revokes the key after confirmation, and the Automation API then refuses it", async () => {
    await page.getByRole("link", { name: "API Keys" }).click();
    await page.getByRole("button", { name: "Revoke github-deploy" }).click();
    const confirm = page.getByRole("dialog", { name: "Revoke github-deploy?" });
    await confirm.waitFor();
    // Cancel first: nothing changes.
    await confirm.getByRole("button", { name: "Cancel" }).click();
    expect((await testPrisma().automationKey.findUniqueOrThrow({ where: { id: keyId } })).revokedAt).toBeNull();

    await page.getByRole("button", { name: "Revoke github-deploy" }).click();
    await page.getByRole("dialog", { name: "Revoke github-deploy?" }).getByRole("button", { name: "Revoke key" }).click();
    await waitForText(page.locator(`tr[data-key-id="${keyId}"]`), /revoked/);

    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${keyToken}`).send({ server_id: web.id, command: "true" });
    expect(res.status).toBe(401);
    expect(res.body.detail).toMatch(/revoked/i);
  });

  it("lists servers with runner state, and adds one showing its runner token once with an install command", async () => {
    await page.getByRole("link", { name: "Servers" }).click();
    const webRow = page.getByRole("row", { name: /web-1/ });
    await waitForText(webRow, /connected/);
    expect(await webRow.textContent()).not.toMatch(/not connected/);
    // The version its runner reported; none for a server whose runner never connected.
    expect(await webRow.getByRole("cell").nth(1).textContent()).toBe(`connected v${RUNNER_VERSION}`);
    await waitForText(page.getByRole("row", { name: /db-1/ }), /not connected/);
    expect(await page.getByRole("row", { name: /db-1/ }).getByRole("cell").nth(1).textContent()).toBe("not connected");
    await shot(page, "servers");

    await page.getByRole("button", { name: "Add server" }).first().click();
    await page.getByLabel("Name", { exact: true }).fill("worker-7");
    await page.getByRole("dialog", { name: "Add server" }).getByRole("button", { name: "Add server" }).click();
    const created = page.getByRole("dialog", { name: "Server worker-7 added" });
    await created.waitFor();
    const token = (await created.getByTestId("runner-token").textContent())?.trim() ?? "";
    expect(token).toMatch(/^rbr_/);
    expect(await created.textContent()).toContain(`echo '${token}' | sudo ./install.sh --url http://127.0.0.1:8081 --token -`);
    await redact(page, token);
    await shot(page, "server-added");
    await created.getByRole("button", { name: "Done" }).click();
    // Shown once: a fresh render of the page never has it.
    await page.reload();
    await waitForText(page.getByRole("row", { name: /worker-7/ }), /not connected/);
    expect(await page.content()).not.toContain(token);
  });

  it("manages applications and deploys one with its Deploy button", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-dash-app-"));
    await page.getByRole("link", { name: "Applications" }).click();
    await page.getByText("No applications yet").waitFor();
    await shot(page, "applications-empty");
    await page.getByRole("button", { name: "Add application" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Add application" });
    await dialog.getByLabel("Name", { exact: true }).fill("shop");
    await dialog.getByLabel("Server").selectOption({ label: "web-1" });
    await dialog.getByLabel("Working directory").fill(dir);
    await dialog.getByLabel("Deploy command").fill('echo "deploying $RUNBRIDGE_APPLICATION_NAME at $RUNBRIDGE_COMMIT_REF in $(pwd)"');
    await dialog.getByRole("button", { name: "Add application" }).click();
    await waitForText(page.getByRole("row", { name: /shop/ }), /web-1/);
    await shot(page, "applications");

    // Deploys go through the Automation API with a deploy-scoped automation key pasted for this one request.
    const { token } = await createAutomationKey(tenantId, { allowedOperations: ["deploy"], allowedServerIds: [web.id] });
    await page.getByRole("button", { name: "Deploy shop" }).click();
    const deploy = page.getByRole("dialog", { name: "Deploy shop" });
    expect(await deploy.getByLabel("Commit, branch or tag").inputValue()).toBe("main");
    await deploy.getByLabel("Automation key allowed to deploy").fill(token);
    await shot(page, "deploy-dialog"); // a password field: the key shows as dots
    await deploy.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL((u) => u.pathname.startsWith("/dashboard/operations/"));
    await waitForText(page.getByTestId("op-status"), /completed/, 30_000);
    await waitForText(page.getByTestId("output-stdout"), new RegExp(`deploying shop at main in ${dir}`));
    expect(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }))).not.toContain(token);

    // The deployment is in the application's history.
    await page.getByRole("link", { name: "Applications" }).click();
    await page.getByRole("button", { name: "Deployments of shop" }).click();
    const history = page.getByRole("dialog", { name: "Deployments of shop" });
    await waitForText(history, /completed/);
    expect(await history.textContent()).toContain("main");
    await history.getByRole("button", { name: "Close" }).click();

    // Which env_overrides a deploy may pass: the default rules, or only the names listed.
    const row = page.getByRole("row", { name: /shop/ });
    await waitForText(row, /default rules/);
    await page.getByRole("button", { name: "Edit shop" }).click();
    const edit = page.getByRole("dialog", { name: "Edit shop" });
    await edit.getByLabel("Only these names").check();
    await edit.getByLabel("Allowed env override names").fill("LOG_LEVEL\nFEATURE_*");
    expect(await unlabelledControls(page)).toEqual([]);
    await edit.getByRole("button", { name: "Save changes" }).click();
    await waitForText(row, /LOG_LEVEL, FEATURE_\*/);
    const shop = await testPrisma().application.findFirstOrThrow({ where: { tenantId, name: "shop" } });
    expect(shop.allowedEnvOverrides).toEqual(["LOG_LEVEL", "FEATURE_*"]);
    // A bad name comes back as the API's 422 detail, in the form.
    await page.getByRole("button", { name: "Edit shop" }).click();
    await edit.getByLabel("Allowed env override names").fill("RUNBRIDGE_COMMIT_REF");
    await edit.getByRole("button", { name: "Save changes" }).click();
    await waitForText(edit.getByRole("alert"), /cannot be allowed: RUNBRIDGE_\* variables are set by the platform/);
    await edit.getByLabel("Any name except the refused ones").check();
    await edit.getByRole("button", { name: "Save changes" }).click();
    await waitForText(row, /default rules/);
  });

  it("adds a registry credential whose password is write-only", async () => {
    await page.getByRole("link", { name: "Registry credentials" }).click();
    await page.getByText("No registry credentials yet").waitFor();
    const password = `pw-canary-${Date.now()}`;
    await page.getByRole("button", { name: "Add credential" }).first().click();
    const dialog = page.getByRole("dialog", { name: "Add registry credential" });
    await dialog.getByLabel("Name", { exact: true }).fill("ghcr-prod");
    await dialog.getByLabel("Registry URL").fill("ghcr.io");
    await dialog.getByLabel("Username").fill("deploy-bot");
    await dialog.getByLabel("Password or token").fill(password);
    await dialog.getByRole("button", { name: "Add credential" }).click();
    await waitForText(page.getByRole("row", { name: /ghcr-prod/ }), /deploy-bot/);
    expect(await page.content()).not.toContain(password);
    const stored = await testPrisma().registryCredential.findFirstOrThrow({ where: { tenantId, name: "ghcr-prod" } });
    expect(stored.passwordCiphertext).not.toContain(password);
    await shot(page, "registry-credentials");
  });

  it("shows the audit trail, filterable by event type", async () => {
    await page.getByRole("link", { name: "Audit" }).click();
    await waitForText(page.getByRole("table", { name: "Audit events" }), /key\.revoked/);
    await shot(page, "audit");
    await page.getByLabel("Event type").fill("key.created");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL((u) => u.searchParams.get("type") === "key.created");
    // Only key.created rows remain once the filtered page has loaded.
    await waitForText(page.getByRole("table", { name: "Audit events" }), /^(?!.*key\.revoked).*key\.created/);
    expect(await page.getByRole("table", { name: "Audit events" }).textContent()).not.toMatch(/operation\.created|key\.updated/);
  });

  it("works from the keyboard, and every form control has a label", async () => {
    await page.goto(url("/keys?tab=automation"));
    await page.getByRole("button", { name: "Create Key" }).focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Create automation key" });
    await dialog.waitFor();
    // Focus moves into the dialog, onto its first field.
    expect(await page.evaluate(() => document.activeElement?.closest("dialog") !== null)).toBe(true);
    expect(await unlabelledControls(page)).toEqual([]);
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    // Focus is back on the button that opened it, not at the top of the page.
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Create Key");
    // Tabs follow the arrow keys.
    await page.getByRole("tab", { name: "Automation Keys" }).focus();
    await page.keyboard.press("ArrowLeft");
    await page.getByRole("tab", { name: "API Keys", selected: true }).waitFor();
    await page.getByRole("button", { name: "Create API key" }).waitFor();
    for (const p of ["/logs", "/servers", "/applications", "/credentials", "/audit"]) {
      await page.goto(url(p));
      await page.getByRole("heading", { level: 1 }).waitFor();
      expect({ page: p, unlabelled: await unlabelledControls(page) }).toEqual({ page: p, unlabelled: [] });
    }
  });

  it("is usable at phone width", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await phone.addCookies((await context.cookies()).filter((c) => c.name === "rb_session"));
      const p = await phone.newPage();
      await p.goto(url("/keys?tab=automation"));
      await waitForText(p.locator(`tr[data-key-id="${keyId}"]`), /github-deploy/);
      // No sideways scrolling of the page itself.
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(1);
      await shot(p, "phone-automation-keys");
      await p.goto(url(`/logs?automation_key_id=${keyId}`));
      await p.getByRole("region", { name: "Run gha-4242" }).waitFor();
      await shot(p, "phone-logs");
    } finally {
      await phone.close();
    }
  });

  it("signs out: the session cookie no longer authenticates", async () => {
    const cookie = (await context.cookies()).find((c) => c.name === "rb_session");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
    const res = await stack.api().get("/api/v1/servers").set("Cookie", `rb_session=${cookie?.value ?? ""}`);
    expect(res.status).toBe(401);
  });

  it("drops back to sign-in, saying why, when the general API key behind the session is revoked", async () => {
    await page.getByLabel("API key").fill(apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await page.getByRole("link", { name: "API Keys" }).click();
    await page.getByRole("tab", { name: "Automation Keys" }).click();
    await waitForText(page.locator(`tr[data-key-id="${keyId}"]`), /github-deploy/);
    await testPrisma().apiKey.updateMany({ where: { tenantId }, data: { revokedAt: new Date() } });
    // The keys list refreshes on its own and meets the 401.
    await waitForText(page.getByRole("status"), /session ended/, 20_000);
    await page.getByRole("heading", { name: "Sign in to runbridge" }).waitFor();
  });
});

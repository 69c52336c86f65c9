import type { Locator, Request } from "playwright-core";
import { createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * A create form submitted twice before React re-renders (a double click, Enter
 * pressed twice) sends its request once: one key, one server, not two.
 */
describe("dashboard: a create form submitted twice at once", () => {
  const s = useSignedInStack();

  /** Submits the dialog's form twice in one task, as a fast double click does, and counts the POSTs to `path`. */
  async function submitTwice(dialog: Locator, path: string): Promise<number> {
    const posts: Request[] = [];
    const seen = (r: Request) => {
      if (r.method() === "POST" && new URL(r.url()).pathname === path) posts.push(r);
    };
    s.page.on("request", seen);
    try {
      await dialog.locator("form").evaluate((form: HTMLFormElement) => {
        form.requestSubmit();
        form.requestSubmit();
      });
      await dialog.waitFor({ state: "detached" });
      // Time for a second request to be sent, were one coming.
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      s.page.off("request", seen);
    }
    return posts.length;
  }

  it("general API key", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=api`);
    await waitForText(s.page.getByRole("tabpanel"), /\(this session\)/);
    await s.page.getByRole("button", { name: "Create API key" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Create API key" });
    await dialog.getByLabel("Name", { exact: true }).fill("twice-general");
    expect(await submitTwice(dialog, "/api/v1/api-keys")).toBe(1);
  });

  it("server", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/servers`);
    await s.page.getByRole("button", { name: "Add server" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Add server" });
    await dialog.getByLabel("Name", { exact: true }).fill("twice-server");
    expect(await submitTwice(dialog, "/api/v1/servers")).toBe(1);
  });

  it("registry credential", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/credentials`);
    await s.page.getByRole("button", { name: "Add credential" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Add registry credential" });
    await dialog.getByLabel("Name", { exact: true }).fill("twice-cred");
    await dialog.getByLabel("Registry URL").fill("ghcr.io");
    await dialog.getByLabel("Username").fill("bot");
    await dialog.getByLabel("Password or token").fill("pw");
    expect(await submitTwice(dialog, "/api/v1/registry-credentials")).toBe(1);
  });

  it("automation key", async () => {
    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=automation`);
    await s.page.getByRole("button", { name: "Create Key" }).first().click();
    const dialog = s.page.getByRole("dialog", { name: "Create automation key" });
    await dialog.getByLabel("Name", { exact: true }).fill("twice-automation");
    expect(await submitTwice(dialog, "/api/v1/automation-keys")).toBe(1);
  });

  it("application", async () => {
    await createServer(s.tenantId, "twice-host");
    await s.page.goto(`${s.stack.url}/dashboard/applications`);
    const add = s.page.getByRole("button", { name: "Add application" }).first();
    await waitFor(() => add.isEnabled(), 10_000, "Add application enabled");
    await add.click();
    const dialog = s.page.getByRole("dialog", { name: "Add application" });
    await dialog.getByLabel("Name", { exact: true }).fill("twice-app");
    await dialog.getByLabel("Working directory").fill("/srv/twice");
    await dialog.getByLabel("Deploy command").fill("true");
    expect(await submitTwice(dialog, "/api/v1/applications")).toBe(1);
  });
});

import { testPrisma } from "../helpers/db";
import { createOperation, createServer } from "../helpers/factories";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

/**
 * An operation's "Back to Logs" goes to Logs: back in history to the Logs view
 * (its filters) the operation was opened from, and to Logs itself when it was
 * opened from anywhere else — another page of the dashboard, a link or a
 * bookmark — where going back would have left for that page.
 */
describe("dashboard: an operation's Back to Logs", () => {
  const s = useSignedInStack();
  const url = (p: string) => `${s.stack.url}/dashboard${p}`;
  let opId = "";
  let appName = "";

  beforeAll(async () => {
    const { server } = await createServer(s.tenantId, "web-back");
    await createOperation(s.tenantId, server.id, { status: "completed", command: "echo back-other", exitCode: 0, durationMs: 5, stdout: "other\n" });
    const op = await createOperation(s.tenantId, server.id, { status: "failed", command: "echo back-failed", exitCode: 1, durationMs: 5, stdout: "failed\n" });
    opId = op.id;
    const app = await testPrisma().application.create({ data: { tenantId: s.tenantId, serverId: server.id, name: "back-app", workingDirectory: "/srv/back", deployCommand: "true" } });
    appName = app.name;
    await testPrisma().deployment.create({ data: { applicationId: app.id, operationId: op.id, commitRef: "back-ref", status: "failed" } });
  });

  const back = () => s.page.getByRole("link", { name: "← Back to Logs" });
  const onOperation = async () => {
    await s.page.waitForURL((u) => u.pathname === `/dashboard/operations/${opId}`);
    await waitForText(s.page.getByTestId("op-status"), /failed/);
  };

  it("opened from a filtered Logs view: back to it, filters kept (after a reload too)", async () => {
    await s.page.goto(url("/logs?status=failed"));
    await s.page.getByRole("link", { name: /back-failed/ }).click();
    await onOperation();
    await back().click();
    await s.page.waitForURL((u) => u.pathname === "/dashboard/logs" && u.search === "?status=failed");
    await s.page.getByRole("link", { name: /back-failed/ }).waitFor();
    expect(await s.page.getByRole("link", { name: /back-other/ }).count()).toBe(0);

    // The forward entry is the operation: the Back link went back in history, it added no entry.
    await s.page.goForward();
    await onOperation();
    await s.page.reload();
    await onOperation();
    await back().click();
    await s.page.waitForURL((u) => u.pathname === "/dashboard/logs" && u.search === "?status=failed");
  });

  it("opened from an application's deployment history: to Logs, not back to Applications", async () => {
    await s.page.goto(url("/applications"));
    await s.page.getByRole("button", { name: `History: deployments of ${appName}` }).click();
    await s.page.getByRole("dialog", { name: `Deployments of ${appName}` }).getByRole("link", { name: /back-ref/ }).click();
    await onOperation();
    await back().click();
    await s.page.waitForURL((u) => u.pathname === "/dashboard/logs" && u.search === "");
    await s.page.getByRole("link", { name: /back-other/ }).waitFor();
  });

  it("opened from a link or bookmark (another page before it in the tab): to Logs", async () => {
    await s.page.goto(url("/servers"));
    await s.page.getByRole("heading", { name: "Servers" }).waitFor();
    await s.page.goto(url(`/operations/${opId}`));
    await onOperation();
    await back().click();
    await s.page.waitForURL((u) => u.pathname === "/dashboard/logs" && u.search === "");
    await s.page.getByRole("link", { name: /back-other/ }).waitFor();
  });
});

import type { Page } from "playwright-core";
import { createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

const PROBLEM =
  "runner cannot record operations, so it refuses every operation until it can: state directory /var/lib/runbridge cannot be written (ENOSPC: no space left on device); free space on its disk";

/**
 * The Servers page shows a server whose runner is connected but reports a problem (its state directory
 * cannot be written: every operation sent to it fails) as degraded — a warning badge and the problem in
 * words — not as plainly connected, and as connected again once the runner says the problem is gone.
 * Real gateway and dispatcher; the runners speak the real protocol (runner:health).
 */
describe("dashboard: a degraded runner (browser)", () => {
  const s = useSignedInStack();
  let stack: TestStack;
  let page: Page;
  const sockets: ScriptedSocket[] = [];
  beforeAll(() => {
    ({ stack, page } = s);
  });
  afterAll(() => {
    for (const socket of sockets) socket.disconnect();
  });

  const connect = async (runnerToken: string, serverId: string, problem?: string) => {
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken, problem === undefined ? {} : { auth: { problem } });
    sockets.push(socket);
    await untilConnected(socket);
    await stack.waitRunnerConnected(serverId);
    return socket;
  };
  const runnerCell = (name: string) => page.getByRole("row", { name: new RegExp(name) }).getByRole("cell").nth(1);

  it("shows a warning badge and the problem for a degraded runner, a plain connected one beside it, and connected once it recovers", async () => {
    const disk = await createServer(s.tenantId, "disk-full-1");
    const ok = await createServer(s.tenantId, "healthy-1");
    const degraded = await connect(disk.runnerToken, disk.server.id, PROBLEM);
    await connect(ok.runnerToken, ok.server.id);

    await page.goto(`${stack.url}/dashboard/servers`);
    const badge = runnerCell("disk-full-1").locator(".badge");
    await waitForText(badge, /^degraded$/);
    // Amber, as the dashboard's other warning states, not the green of a healthy runner.
    expect(await badge.getAttribute("class")).toBe("badge badge-warn");
    const problem = runnerCell("disk-full-1").getByTestId("runner-problem");
    expect(await problem.textContent()).toMatch(new RegExp(`^${PROBLEM.replace(/[()]/g, "\\$&")} \\(since .+\\)$`));
    // When it began, exactly, for whoever points at the relative time.
    expect(await problem.locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await runnerCell("disk-full-1").textContent()).not.toMatch(/^connected/);

    await waitForText(runnerCell("healthy-1").locator(".badge"), /^connected$/);
    expect(await runnerCell("healthy-1").locator(".badge").getAttribute("class")).toBe("badge badge-ok");
    expect(await runnerCell("healthy-1").getByTestId("runner-problem").count()).toBe(0);

    // The disk is freed: the runner says so, and the next look at the page shows it connected.
    degraded.emit("runner:health", { problem: null });
    await waitFor(
      async () => {
        const res = await stack.api().get(`/api/v1/servers/${disk.server.id}`).set("Authorization", `Bearer ${s.apiKey}`);
        return res.body.runner_problem === null;
      },
      10_000,
      "the problem to be cleared",
    );
    await page.reload();
    await waitForText(runnerCell("disk-full-1").locator(".badge"), /^connected$/);
    expect(await runnerCell("disk-full-1").getByTestId("runner-problem").count()).toBe(0);
  });

  it("shows a runner that went away while degraded as not connected, without the problem it said then", async () => {
    const away = await createServer(s.tenantId, "gone-1");
    const socket = await connect(away.runnerToken, away.server.id, PROBLEM);
    socket.disconnect();
    await waitFor(
      async () => {
        const res = await stack.api().get(`/api/v1/servers/${away.server.id}`).set("Authorization", `Bearer ${s.apiKey}`);
        return res.body.runner_connected === false && res.body.runner_problem === PROBLEM;
      },
      10_000,
      "the runner shown away, its problem kept by the API",
    );
    await page.goto(`${stack.url}/dashboard/servers`);
    await waitForText(runnerCell("gone-1"), /^not connected$/);
    expect(await runnerCell("gone-1").getByTestId("runner-problem").count()).toBe(0);
  });
});

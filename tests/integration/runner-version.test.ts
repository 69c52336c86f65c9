import { readFileSync } from "node:fs";
import path from "node:path";
import { RUNNER_VERSION } from "../../apps/runner/src/agent";
import { createFixture, createServer } from "../helpers/factories";
import { ROOT, waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * Servers show the version their runner reported as it last connected
 * (`runner_version`), so an operator can find the servers still on an older
 * runner after an upgrade.
 */
describe("runner_version of servers", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const serverView = async (id: string, apiKey = fx.apiKey) => {
    const res = await stack.api().get(`/api/v1/servers/${id}`).set("Authorization", `Bearer ${apiKey}`);
    expect(res.status).toBe(200);
    return res.body as { runner_connected: boolean; runner_version: string | null };
  };

  it("is the runner's own version, the one its package is released as", async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "apps/runner/package.json"), "utf8")) as { version: string };
    expect(RUNNER_VERSION).toBe(pkg.version);
    expect(await serverView(fx.server.id)).toMatchObject({ runner_connected: true, runner_version: RUNNER_VERSION });
    const list = await stack.api().get("/api/v1/servers").set("Authorization", `Bearer ${fx.apiKey}`);
    expect(list.body.data.find((s: { id: string }) => s.id === fx.server.id)).toMatchObject({ runner_version: RUNNER_VERSION });
  });

  it("is null before any runner connected, and when a runner says nothing usable (an older one, or junk)", async () => {
    const { server, runnerToken } = await createServer(fx.tenant.id);
    expect(await serverView(server.id)).toMatchObject({ runner_connected: false, runner_version: null });

    for (const [reported, recorded] of [
      ["2.4.1-rc.1+build.7", "2.4.1-rc.1+build.7"],
      ["<script>alert(1)</script>", null],
      ["9".repeat(41), null],
      [undefined, null],
    ] as const) {
      const socket = scriptedRunner(stack.dispatcherPorts[0]!, runnerToken, { auth: reported === undefined ? {} : { version: reported } });
      await untilConnected(socket);
      await waitFor(async () => (await serverView(server.id)).runner_connected, 10_000, "runner shown connected");
      expect({ reported, view: await serverView(server.id) }).toEqual({ reported, view: expect.objectContaining({ runner_version: recorded }) });
      // The dispatcher's gauge counts it under that version (the suite's own runner is under RUNNER_VERSION).
      const metrics = await (await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`)).text();
      expect(metrics).toContain(`runbridge_dispatcher_connected_runners{version="${recorded ?? "unknown"}",service="dispatcher"} 1\n`);
      socket.disconnect();
      await waitFor(async () => !(await serverView(server.id)).runner_connected, 10_000, "runner shown disconnected");
    }
  });

  it("is kept while the runner is away, until another connects", async () => {
    const other = await createFixture();
    const socket = scriptedRunner(stack.dispatcherPorts[0]!, other.runnerToken, { auth: { version: "1.0.0" } });
    await untilConnected(socket);
    await waitFor(async () => (await serverView(other.server.id, other.apiKey)).runner_connected, 10_000, "connected");
    socket.disconnect();
    await waitFor(async () => !(await serverView(other.server.id, other.apiKey)).runner_connected, 10_000, "disconnected");
    expect(await serverView(other.server.id, other.apiKey)).toMatchObject({ runner_connected: false, runner_version: "1.0.0" });
  });
});

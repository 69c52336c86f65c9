import { createServer } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner } from "../helpers/scripted-runner";
import { useStackWithRunner } from "../helpers/suite";

/**
 * A runner token is all it takes to talk to a dispatcher. Whatever a runner
 * sends, malformed events included, must not throw inside the dispatcher:
 * one bad runner would otherwise crash every dispatcher it reaches.
 */
describe("dispatcher: events from a misbehaving runner", () => {
  const suite = useStackWithRunner();

  it("are dropped and logged; the dispatcher keeps serving", async () => {
    const { stack, fx } = suite;
    const { server, runnerToken } = await createServer(fx.tenant.id);
    const bad = scriptedRunner(stack.dispatcherPorts[0] as number, runnerToken);
    try {
      await stack.waitRunnerConnected(server.id);
      bad.emit("operation:started");
      bad.emit("operation:output", { operationId: 42 });
      bad.emit("operation:result");
      bad.emit("operation:result", { operationId: "not-a-uuid" });
      const answer = await bad.timeout(5_000).emitWithAck("operation:result", { operationId: fx.server.id, status: "completed" });
      expect(answer).toEqual({ stored: false });
      await waitFor(async () => (stack.dispatchers[0]?.output.match(/dropped a malformed event from a runner/g) ?? []).length >= 5, 5_000, "every bad event to be logged");
    } finally {
      bad.disconnect();
    }
    expect(stack.dispatchers[0]?.running).toBe(true);
    const r = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "echo still here" });
    expect(r.body).toMatchObject({ status: "completed", stdout: "still here\n" });
  });
});

import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FailureReason } from "@runbridge/contracts";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { type FakeProvider, useStackWithProvider } from "../helpers/fake-provider";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { report } from "./helpers";

/**
 * kill -9 of the dispatcher while it waits for the cloud provider's answer to a reboot: the
 * dispatcher that takes the job over cannot know whether the server rebooted, and must not
 * reboot it a second time through the runner.
 */
describe("chaos: a dispatcher dies during a provider reboot call", () => {
  const marker = path.join(mkdtempSync(path.join(tmpdir(), "rb-chaos-reboot-")), "reboots.log");
  // A short job lock: the dead dispatcher's delivery is taken over within a few seconds.
  const suite = useStackWithProvider();
  let stack: TestStack;
  let provider: FakeProvider;

  beforeAll(() => {
    ({ stack, provider } = suite);
  });

  it("the operation fails as 'reboot outcome unknown'; the runner never reboots the server", async () => {
    const fx = await createFixture();
    const linked = await stack.api().patch(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ provider: "hetzner", provider_server_id: "901", provider_token: "hc-token" });
    expect(linked.status).toBe(200);
    provider.delayAnswers(5000);
    const res = await stack.api().post("/api/automation/v1/reboot").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id });
    expect(res.status).toBe(202);
    const id = res.body.operation_id as string;

    await waitFor(async () => provider.requests.length === 1, 10_000, "the reboot to reach the provider");
    stack.dispatchers[0]?.child.kill("SIGKILL");
    const killedAt = Date.now();
    // Another dispatcher, with the server's runner connected to it, takes the job over.
    await stack.startDispatcher();
    await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 1, env: { RUNBRIDGE_REBOOT_COMMAND: `echo reboot >> ${marker}` } });

    // The dispatcher that takes the job over cannot tell a dead one from one only stalled past its job lock: it follows
    // the claim until the call and the recording of its answer are surely over (30 s after the claim).
    const row = await waitUntilEnded(id, 45_000, "the reboot to end");
    const recoveryMs = Date.now() - killedAt;
    // Time for a start that slipped through to run the runner's reboot command.
    await new Promise((r) => setTimeout(r, 2000));
    const runnerReboots = existsSync(marker) ? readFileSync(marker, "utf8").trim().split("\n").length : 0;
    report("kill -9 of the dispatcher during a provider reboot call", {
      operations: 1,
      kills: 1,
      status: row.status,
      error: row.error,
      provider_calls: provider.requests.length,
      runner_reboots: runnerReboots,
      recovery_ms: recoveryMs,
    });

    expect(row).toMatchObject({ status: "failed", error: FailureReason.RebootOutcomeUnknown });
    expect(row.params).toMatchObject({ reboot_path: "provider", reboot_provider: "hetzner" });
    expect(provider.requests).toHaveLength(1);
    expect(runnerReboots).toBe(0);
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: id } });
    expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished", "operation.reboot_path"]);
    // Its 45 s wait and the start-ups before it: past jest's default, whose time-out would not say what ran out.
  }, 120_000);
});

import { FailureReason } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** What a draining runner answers a start: not started, offer it again later. */
const ASK_LATER = { ok: false, error: "runner is shutting down", retryable: true };

/**
 * A registry login waits in the queue (here: its runner asked for it later). If its credential is
 * deleted meanwhile, the login must not run with the password the credential had when it was asked.
 */
describe("a registry login whose credential is deleted before it is delivered", () => {
  let socket: ScriptedSocket | undefined;
  // Declared before useStack, so it runs first: the scripted runner leaves before the stack stops.
  afterAll(() => socket?.disconnect());
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("fails as credential gone, and never reaches the runner with the old password", async () => {
    const fx = await createFixture();
    const password = `pw-${Date.now()}-deleted-canary`;
    const created = await stack
      .api()
      .post("/api/v1/registry-credentials")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "doomed", registry_url: "ghcr.io", username: "octo", password });
    expect(created.status).toBe(201);
    const credentialId = created.body.id as string;

    const starts: Array<Record<string, unknown>> = [];
    socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    socket.on("operation:start", (op: Record<string, unknown>, ack: (reply: unknown) => void) => {
      starts.push(op);
      if (starts.length > 1) return void ack({ ok: true, state: "started" });
      // The first delivery is put off; the credential is deleted before the next one.
      void stack
        .api()
        .delete(`/api/v1/registry-credentials/${credentialId}`)
        .set("Authorization", `Bearer ${fx.apiKey}`)
        .then((res) => {
          expect(res.status).toBe(204);
          ack(ASK_LATER);
        });
    });
    await stack.waitRunnerConnected(fx.server.id);

    const res = await stack
      .api()
      .post("/api/automation/v1/registry-auth/login")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, credential_id: credentialId });
    expect(res.status).toBe(202);
    const id = res.body.operation_id as string;

    const row = await waitFor(
      async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      },
      20_000,
      "the login to end",
    );
    expect(row).toMatchObject({ status: "failed", error: FailureReason.CredentialGone, exitCode: null });
    // Only the put-off start reached the runner (the one asked while the credential existed).
    expect(starts).toHaveLength(1);
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: id }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => a.type)).toEqual(["operation.created", "operation.finished"]);
  });
});

import { FailureReason } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { runnerResult, scriptedRunner, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

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
  // A short acknowledgement time-out and result grace: the second test's lost acknowledgement and overdue sweep within seconds.
  const suite = useStack({ dispatcher: { RUNNER_ACK_TIMEOUT_MS: "1000", RESULT_GRACE_SECONDS: "1" } });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  const createCredential = async (fx: Fixture, name: string, password: string): Promise<string> => {
    const created = await stack.api().post("/api/v1/registry-credentials").set("Authorization", `Bearer ${fx.apiKey}`).send({ name, registry_url: "ghcr.io", username: "octo", password });
    expect(created.status).toBe(201);
    return created.body.id as string;
  };
  const deleteCredential = (fx: Fixture, credentialId: string) =>
    stack
      .api()
      .delete(`/api/v1/registry-credentials/${credentialId}`)
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .then((res) => expect(res.status).toBe(204));
  const login = async (fx: Fixture, credentialId: string): Promise<string> => {
    const res = await stack.api().post("/api/automation/v1/registry-auth/login").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, credential_id: credentialId });
    expect(res.status).toBe(202);
    return res.body.operation_id as string;
  };
  const untilEnded = (id: string) =>
    waitFor(
      async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      },
      20_000,
      "the login to end",
    );

  it("fails as credential gone, and never reaches the runner with the old password", async () => {
    const fx = await createFixture();
    const credentialId = await createCredential(fx, "doomed", `pw-${Date.now()}-deleted-canary`);

    const starts: Array<Record<string, unknown>> = [];
    // Awaited below: the deletion's own check fails the test where it happened.
    let deleted: Promise<void> | undefined;
    socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    socket.on("operation:start", (op: Record<string, unknown>, ack: (reply: unknown) => void) => {
      starts.push(op);
      if (starts.length > 1) return void ack({ ok: true, state: "started" });
      // The first delivery is put off; the credential is deleted before the next one.
      deleted = deleteCredential(fx, credentialId).then(() => ack(ASK_LATER));
    });
    await stack.waitRunnerConnected(fx.server.id);

    const id = await login(fx, credentialId);
    await deleted;
    expect(await untilEnded(id)).toMatchObject({ status: "failed", error: FailureReason.CredentialGone, exitCode: null });
    // Only the put-off start reached the runner (the one asked while the credential existed).
    expect(starts).toHaveLength(1);
    const audit = await testPrisma().auditEvent.findMany({ where: { operationId: id }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => a.type)).toEqual(["operation.created", "operation.finished"]);
  });

  it("is not ended as never run once a start was handed over: the runner's ledger gives its outcome", async () => {
    socket?.disconnect();
    const fx = await createFixture();
    const credentialId = await createCredential(fx, "short-lived", "pw-not-a-secret");

    // The runner records and runs the first start, but its acknowledgement is lost; the credential is deleted
    // before the delivery is retried. Asked later (the overdue sweep), its ledger has the login's result.
    const starts: string[] = [];
    let deleted: Promise<void> | undefined;
    let resultOf: ((id: string) => unknown) | null = null;
    socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken);
    socket.on("operation:start", (op: { operationId: string }) => {
      starts.push(op.operationId);
      if (starts.length > 1) return;
      deleted = deleteCredential(fx, credentialId).then(() => {
        resultOf = (operationId) => runnerResult(operationId, { stdout: "Login Succeeded\n", durationMs: 40 });
      });
    });
    socket.on("operation:query", (q: { operationIds: string[] }, ack: (reply: unknown) => void) => {
      ack(Object.fromEntries(q.operationIds.map((id) => [id, resultOf && starts.includes(id) ? { state: "finished", result: resultOf(id) } : { state: "unknown" }])));
    });
    await stack.waitRunnerConnected(fx.server.id);

    const id = await login(fx, credentialId);
    // The delivery's retry after the lost acknowledgement finds the credential gone: it says so and leaves the
    // operation running (before the fix it ended it at once as never run).
    const dispatcher = stack.dispatchers[0];
    await waitFor(
      async () => dispatcher?.output.includes("cannot be sent again") || (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status !== "running",
      20_000,
      "the retried delivery to find the credential gone",
    );
    // A login's 60 s time-out and its delivery deadline, cut short so that the sweep finds it overdue now.
    await testPrisma().operation.updateMany({ where: { id, status: "running" }, data: { timeoutSeconds: 1, deliverBy: new Date() } });

    await deleted;
    expect(await untilEnded(id)).toMatchObject({ status: "completed", exitCode: 0, stdout: "Login Succeeded\n", error: null });
    expect(starts).toEqual([id]);
  });
});

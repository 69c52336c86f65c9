import { parseLogEntry } from "../../apps/gateway/src/services/log-entry";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { type Proc, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";
import { TcpBalancer } from "../helpers/tcp-balancer";

/**
 * A command that ends while its runner has no connection (a network outage, its dispatcher restarting):
 * the output it printed meanwhile was dropped from its live log, and the live log must say where the
 * stream ended — an empty chunk at its end, sent once the runner is back, before the result — or its
 * followers (the CLI, the Action, the dashboard) take the live part for the whole output and never print
 * the stored end, often the error that mattered.
 */
describe("live output of a command that ended during an outage", () => {
  // Answered "running" at once: the test follows the operation itself.
  const suite = useStack({ gateway: { EXEC_MAX_WAIT_SECONDS: "1" } });
  let stack: TestStack;
  // The runner's link to its dispatcher, which the test cuts (and refuses) for an outage.
  let link: TcpBalancer;
  let runner: Proc;
  let fx: Awaited<ReturnType<typeof createFixture>>;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    link = new TcpBalancer([stack.dispatcherPorts[0] as number]);
    await link.listen();
    runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: link.url } });
  });
  afterAll(async () => {
    await runner?.stop();
    await link?.close();
  });

  it("marks the end of each stream once the runner is back, before its result", async () => {
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "echo started; sleep 2; head -c 300000 /dev/zero | tr '\\0' a; echo; echo THE-END", timeout_seconds: 60 });
    const id = (res.body as { operation_id: string }).operation_id;
    const log = async () => (await stack.redis.xrange(stack.keys.operationLog(id), "-", "+")).map(([, fields]) => parseLogEntry(fields));
    await waitFor(async () => (await log()).some((e) => e.data === "started\n"), 10_000, "the first line live");

    link.refusing = true;
    link.cutAll();
    await waitFor(async () => /disconnected from dispatcher/.test(runner.output), 5_000, "the runner to lose its link");
    await waitFor(async () => /"operation finished"/.test(runner.output), 10_000, "the command to end during the outage");
    link.refusing = false;

    const row = await waitFor(
      async () => {
        const r = await testPrisma().operation.findUniqueOrThrow({ where: { id } });
        return r.status !== "running" ? r : null;
      },
      20_000,
      "the result once the runner is back",
    );
    expect(row).toMatchObject({ status: "completed", exitCode: 0 });
    const stdoutBytes = Buffer.byteLength(row.stdout ?? "");
    expect(stdoutBytes).toBe("started\n".length + 300_000 + "\nTHE-END\n".length);
    const stdout = (await log()).filter((e) => e.stream === "stdout");
    // Only the first line went live; the end mark says the stream went on to its full length.
    expect(stdout.map((e) => [e.offset, e.data])).toEqual([
      [0, "started\n"],
      [stdoutBytes, ""],
    ]);
  });
});
